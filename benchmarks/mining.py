"""Speed and memory of semi-hard triplet mining: facenet_tf's O(B^2) loss beside the classic tiled O(B^3) one.

Forward + backward (tf.GradientTape w.r.t. the embeddings) of the semi-hard triplet loss inside tf.function, for
the paper's batch composition (40 faces per identity, "Triplet loss and selection") at several batch sizes,
on random L2-normalised 128-D embeddings. Reports the median wall time over the repetitions after warm-up, the
median CPU time of the process per run (all threads; on a machine shared with other jobs it moves less than the
wall time) and the peak resident-memory growth of the process. Both implementations' loss values are printed
side by side: they must agree.

Each (implementation, batch size) runs in a fresh subprocess, so peaks do not mix: the baseline is
``ru_maxrss`` after importing TensorFlow and running a trivial op, the peak is ``ru_maxrss`` after the timed
runs (``tf.config.experimental.get_memory_info`` reports nothing for the CPU device). The tiled
formulation (a B^2 x B tensor, as TF Addons' ``triplet_semihard_loss``) is skipped where its predicted
memory exceeds ``--max_gb`` or the memory the machine has available.

  .venv/bin/python benchmarks/mining.py [--batch_sizes 128,512,1024,1800] [--output results/mining_cpu.md]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import shlex
import subprocess
import sys
import time

os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

IMPLEMENTATIONS = ("facenet_tf", "tiled")
# Peak bytes per B^3 element of the tiled formulation, forward + backward, from this script's own measurements
# (about 18-19 at B = 256 and 512: float32 tiles, their masks and the gradient of the masked minimum are alive
# together). Recalibrated from each tiled run with B >= 256 of the same invocation.
TILED_BYTES_PER_CUBE = 19.0


def tiled_semi_hard_loss(labels, embeddings, margin: float = 0.2):
    """The classic tiled semi-hard loss (the formulation of TF Addons' ``triplet_semihard_loss``, squared L2,
    farthest-negative fallback, mean over anchor-positive pairs), written here for comparison.

    Row r = p * B + a of a (B^2, B) tiling of the distance matrix holds D(a, :); masking it with "negative of a
    and farther than D(a, p)" and taking the masked row minimum gives every pair's semi-hard negative at once,
    at the price of O(B^3) memory and time.
    """
    import tensorflow as tf

    from facenet_tf.losses import pairwise_squared_distances

    distances = pairwise_squared_distances(embeddings)
    batch_size = tf.shape(distances)[0]
    different = tf.not_equal(labels[:, None], labels[None, :])
    tiled = tf.tile(distances, [batch_size, 1])  # (B^2, B)
    pair_distances = tf.reshape(tf.transpose(distances), [-1, 1])  # D(a, p) for row p * B + a
    farther = tf.logical_and(tf.tile(different, [batch_size, 1]), tiled > pair_distances)
    row_maximum = tf.reduce_max(tiled, axis=1, keepdims=True)
    # Masked minimum: shift so the maximum is 0, zero out the masked entries, take the min, shift back.
    semi_hard = tf.reduce_min((tiled - row_maximum) * tf.cast(farther, tf.float32), axis=1,
                              keepdims=True) + row_maximum
    semi_hard = tf.transpose(tf.reshape(semi_hard, [batch_size, batch_size]))  # [a, p]
    found = tf.transpose(tf.reshape(tf.reduce_any(farther, axis=1), [batch_size, batch_size]))
    different_float = tf.cast(different, tf.float32)
    row_minimum = tf.reduce_min(distances, axis=1, keepdims=True)
    farthest = tf.reduce_max((distances - row_minimum) * different_float, axis=1, keepdims=True) + row_minimum
    negatives = tf.where(found, semi_hard, farthest)
    positive_mask = (1.0 - different_float) - tf.eye(batch_size)
    hinge = tf.nn.relu((distances - negatives + margin) * positive_mask)
    return tf.reduce_sum(hinge) / tf.reduce_sum(positive_mask)


def _batch(batch_size: int, dim: int, faces_per_identity: int, seed: int = 0):
    import numpy as np

    rng = np.random.default_rng(seed)
    labels = np.arange(batch_size) // faces_per_identity
    embeddings = rng.normal(size=(batch_size, dim))
    embeddings /= np.linalg.norm(embeddings, axis=1, keepdims=True)
    return labels.astype(np.int64), embeddings.astype(np.float32)


def _max_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # kilobytes on Linux


def worker(implementation: str, batch_size: int, dim: int, faces_per_identity: int, repetitions: int,
           warmup: int, max_seconds: float) -> dict:
    """Runs one configuration in this (fresh) process and returns its measurements."""
    import numpy as np
    import tensorflow as tf

    from facenet_tf.losses import triplet_loss

    tf.reduce_sum(tf.ones([8, 8])).numpy()  # TensorFlow's own start-up allocations belong to the baseline
    baseline = _max_rss_bytes()
    labels, embeddings = _batch(batch_size, dim, faces_per_identity)
    labels, embeddings = tf.constant(labels), tf.constant(embeddings)
    loss_function = tiled_semi_hard_loss if implementation == "tiled" else triplet_loss

    @tf.function
    def step(labels, embeddings):
        with tf.GradientTape() as tape:
            tape.watch(embeddings)
            loss = loss_function(labels, embeddings)
        return loss, tape.gradient(loss, embeddings)

    for _ in range(warmup):
        loss, gradient = step(labels, embeddings)
        loss.numpy()
    times, cpu_times = [], []
    started = time.perf_counter()
    while len(times) < repetitions and (len(times) < 3 or time.perf_counter() - started < max_seconds):
        start, cpu_start = time.perf_counter(), time.process_time()
        loss, gradient = step(labels, embeddings)
        loss.numpy(), gradient.numpy()
        times.append(time.perf_counter() - start)
        cpu_times.append(time.process_time() - cpu_start)
    return {"implementation": implementation, "batch_size": batch_size, "runs": len(times),
            "median_ms": 1e3 * float(np.median(times)), "min_ms": 1e3 * float(np.min(times)),
            "cpu_ms": 1e3 * float(np.median(cpu_times)), "peak_mb": (_max_rss_bytes() - baseline) / 2**20,
            "loss": float(loss), "gradient_norm": float(tf.norm(gradient))}


def _available_bytes() -> int | None:
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def machine_description() -> str:
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    total = None
    try:
        with open("/proc/meminfo") as meminfo:
            total = int(meminfo.readline().split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    memory = f", {total / 2**30:.0f} GiB RAM" if total else ""
    return f"{model}, {cores} cores available to the process{memory}, {platform.system()} {platform.release()}"


def _run_configuration(args: argparse.Namespace, implementation: str, batch_size: int) -> dict:
    command = [sys.executable, os.path.abspath(__file__), "--worker", implementation, "--batch_sizes",
               str(batch_size), "--dim", str(args.dim), "--faces_per_identity", str(args.faces_per_identity),
               "--repetitions", str(args.repetitions), "--warmup", str(args.warmup),
               "--max_seconds", str(args.max_seconds)]
    repository = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [repository,
                                                                             os.environ.get("PYTHONPATH")]))}
    result = subprocess.run(command, capture_output=True, text=True, env=environment)
    if result.returncode != 0:
        return {"error": f"failed (exit {result.returncode}): {result.stderr.strip().splitlines()[-1:]}"}
    return json.loads(result.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch_sizes", default="128,512,1024,1800", help="comma-separated batch sizes B")
    parser.add_argument("--dim", type=int, default=128, help="embedding dimension (paper: 128)")
    parser.add_argument("--faces_per_identity", type=int, default=40, help="paper: around 40")
    parser.add_argument("--repetitions", type=int, default=10, help="timed runs per configuration")
    parser.add_argument("--warmup", type=int, default=3, help="untimed runs first (tracing, allocator)")
    parser.add_argument("--max_seconds", type=float, default=30.0,
                        help="stop timing a configuration after this long (at least 3 runs)")
    parser.add_argument("--max_gb", type=float, default=16.0,
                        help="skip tiled configurations whose predicted B^3 memory exceeds this")
    parser.add_argument("--implementations", default=",".join(IMPLEMENTATIONS),
                        help=f"comma-separated subset of {', '.join(IMPLEMENTATIONS)}")
    parser.add_argument("--output", default=None, help="also write the table (markdown) to this file")
    parser.add_argument("--note", default="", help="a line added to the output file (e.g. machine load)")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    implementations = args.implementations.split(",")
    for implementation in implementations:
        if implementation not in IMPLEMENTATIONS:
            parser.error(f"--implementations must be a subset of {', '.join(IMPLEMENTATIONS)}; got {implementation!r}")

    if args.worker:
        print(json.dumps(worker(args.worker, batch_sizes[0], args.dim, args.faces_per_identity, args.repetitions,
                                args.warmup, args.max_seconds)))
        return

    bytes_per_cube = TILED_BYTES_PER_CUBE
    results: dict[tuple[str, int], dict] = {}
    for batch_size in sorted(batch_sizes):
        for implementation in implementations:
            if implementation == "tiled":
                predicted = bytes_per_cube * batch_size**3
                available = _available_bytes()
                limit = min(args.max_gb * 2**30, 0.9 * available if available else float("inf"))
                if predicted > limit:
                    reason = f"--max_gb {args.max_gb:g}" if limit == args.max_gb * 2**30 else "90% of available memory"
                    skipped = f"skipped (needs ~{predicted / 2**30:.0f} GB, over {reason})"
                    measured = [(b, r) for (i, b), r in results.items() if i == "tiled" and "median_ms" in r]
                    if measured:  # time grows as B^3: extrapolate from the largest measured batch
                        largest, result = max(measured)
                        estimate = result["median_ms"] * (batch_size / largest) ** 3
                        skipped += f"; ~{estimate:.0f} ms extrapolated as B^3 from B={largest}"
                    results[implementation, batch_size] = {"skipped": skipped, "extrapolated_ms": estimate
                                                           if measured else None}
                    print(f"{implementation} B={batch_size}: {results[implementation, batch_size]['skipped']}",
                          flush=True)
                    continue
            result = _run_configuration(args, implementation, batch_size)
            results[implementation, batch_size] = result
            if implementation == "tiled" and "peak_mb" in result and batch_size >= 256:
                # Recalibrate on the largest run so far (below B = 256 the fixed overhead dominates the peak).
                bytes_per_cube = result["peak_mb"] * 2**20 / batch_size**3
            print(f"{implementation} B={batch_size}: {json.dumps(result)}", flush=True)

    def cells(implementation: str, batch_size: int) -> list[str]:
        result = results.get((implementation, batch_size), {})
        if "median_ms" not in result:
            return [result.get("skipped") or result.get("error") or "-", "-", "-"]
        return [f"{result['median_ms']:.1f}", f"{result['cpu_ms']:.1f}", f"{result['peak_mb']:.0f}"]

    both = len(implementations) == 2
    header = ["B", "identities"] + [f"{i} {what}" for i in implementations
                                    for what in ("ms (median)", "CPU ms", "peak MB")]
    if both:
        header += ["speed-up", "loss facenet_tf / tiled"]
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for batch_size in sorted(batch_sizes):
        row = [str(batch_size), str(-(-batch_size // args.faces_per_identity))]
        for implementation in implementations:
            row += cells(implementation, batch_size)
        if both:
            ours, tiled = results.get(("facenet_tf", batch_size), {}), results.get(("tiled", batch_size), {})
            if "median_ms" in ours and "median_ms" in tiled:
                row.append(f"{tiled['median_ms'] / ours['median_ms']:.0f}x")
            elif "median_ms" in ours and tiled.get("extrapolated_ms"):
                row.append(f"~{tiled['extrapolated_ms'] / ours['median_ms']:.0f}x (extrapolated)")
            else:
                row.append("-")
            row.append(" / ".join(f"{r['loss']:.6f}" if "loss" in r else "-" for r in (ours, tiled)))
        lines.append("| " + " | ".join(row) + " |")
    table = "\n".join(lines)
    print(table)

    if args.output:
        import tensorflow as tf

        command = shlex.join([os.path.relpath(sys.executable), "benchmarks/mining.py"] + (argv or sys.argv[1:]))
        header = [
            "# Semi-hard triplet mining on CPU: forward + backward",
            "",
            f"Command: `{command}`",
            "",
            f"Machine: {machine_description()}; TensorFlow {tf.__version__}; "
            f"{datetime.datetime.now().strftime('%Y-%m-%d %H:%M')}.",
            "",
            f"Setup: D = {args.dim}, {args.faces_per_identity} faces per identity, random L2-normalised embeddings; "
            f"semi-hard loss (margin 0.2, farthest fallback) and its gradient w.r.t. the embeddings in one "
            f"tf.function; median wall time (ms) of up to {args.repetitions} runs (at least 3, at most "
            f"{args.max_seconds:g} s) after {args.warmup} warm-up runs, and the median CPU time of the process per "
            f"run (all threads: less sensitive than wall time to other users of the machine); peak = growth "
            f"of the process's peak RSS over its baseline after TensorFlow start-up (each configuration in a fresh "
            f"process; includes tracing). `tiled` is the classic O(B^3) formulation (TF Addons' "
            f"triplet_semihard_loss), skipped where its predicted memory exceeds --max_gb {args.max_gb:g} or 90% of "
            f"the memory available (its time is then extrapolated as B^3). The last column is each "
            f"implementation's loss value, which must agree.",
        ]
        if args.note:
            header += ["", args.note]
        with open(args.output, "w") as output:
            output.write("\n".join(header) + "\n\n" + table + "\n")


if __name__ == "__main__":
    main()
