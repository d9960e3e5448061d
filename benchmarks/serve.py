"""``facenet-tf serve`` under concurrent clients on loopback, against the library in one process, in the same run.

    .venv/bin/python benchmarks/serve.py --output results/serve_cpu.md          # the pretrained model
    .venv/bin/python benchmarks/serve.py --quick                                # seconds: a tiny random model

Steps:
1. In this process, with the model loaded as ``serve`` loads it (``facenet_tf.api.FaceNet``, frozen to
   constants): the LFW photos through ``FaceNet.find``
   in one call (detection batched by image shape, embedding in batches of ``--batch-size``): the in-process
   batched rate, faces/s; and one photo per call in a loop.
2. A ``facenet-tf serve`` process on a free 127.0.0.1 port (SQLite gallery in a temporary folder), warmed up.
3. For each number of clients (``--clients``, default 1, 8, 32): that many threads, each with its own HTTP
   connection, each sending ``--requests`` ``POST /embed`` requests of one LFW photo (multipart). Latency of every
   request (p50, p99), requests/s and faces/s over the wall time of the round, 503s, and the batch sizes the server
   formed in the round (from ``GET /health``): embedding (faces per model call) and detection (images per MTCNN
   call).

Clients and server share this machine's cores: the clients' own CPU time is part of what is measured. Prints a
markdown table (and writes it to ``--output``).
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import argparse  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from photos import cpu_model, lfw_sample  # noqa: E402  (benchmarks/photos.py)



def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="msceleb", help="model source (default: %(default)s)")
    parser.add_argument("--weights", default=None)
    parser.add_argument("--clients", default=None, help="comma-separated client counts (default: 1,8,32)")
    parser.add_argument("--requests", type=int, default=None, help="requests per client (default: 16)")
    parser.add_argument("--photos", type=int, default=None, help="LFW photos cycled through (default: 64)")
    parser.add_argument("--batch-size", type=int, default=32, help="faces per model call, both sides")
    parser.add_argument("--max-wait-ms", type=float, default=5.0)
    parser.add_argument("--detect-batch", type=int, default=16)
    parser.add_argument("--max-queue", type=int, default=64)
    parser.add_argument("--data-dir", default=None, help="LFW root (default: FACENET_TF_LFW_DIR or ../shared)")
    parser.add_argument("--quick", action="store_true",
                        help="a tiny random model and (unless given) clients 1 and 4, 3 requests each, 8 photos: "
                             "checks that it works in seconds")
    parser.add_argument("--output", default=None, help="also write the table to this markdown file")
    args = parser.parse_args(argv)
    defaults = ("1,4", 3, 8) if args.quick else ("1,8,32", 16, 64)
    for name, default in zip(("clients", "requests", "photos"), defaults):
        if getattr(args, name) is None:
            setattr(args, name, default)
    args.client_counts = [int(n) for n in args.clients.split(",")]
    return args


def tiny_model(folder: Path) -> str:
    import keras

    from facenet_tf.models import create_model

    keras.utils.set_random_seed(0)
    path = folder / "tiny.keras"
    create_model("nns2", embedding_dim=16, input_shape=(64, 64, 3)).save(path)
    return str(path)


def in_process(model: str, weights: str | None, photos: list[Path], batch_size: int, thresholds: dict) -> dict:
    """Faces/s of ``FaceNet.find`` over all the photos in one call, and one photo per call."""
    from facenet_tf.api import FaceNet

    net = FaceNet(model, weights, batch_size=batch_size, frozen=True, **thresholds)  # as serve runs it
    net.find(photos)  # warm-up: graph tracing for these batch shapes, MTCNN build
    net.find(photos[:1])
    start = time.perf_counter()
    found, _ = net.find(photos)
    batched = time.perf_counter() - start
    start = time.perf_counter()
    looped = sum(len(net.find([photo])[0]) for photo in photos)
    loop = time.perf_counter() - start
    return {"faces": len(found), "batched_s": batched, "batched_faces_s": len(found) / batched,
            "loop_faces_s": looped / loop, "model": net.model_name}


def start_server(model: str, weights: str | None, folder: Path, args: argparse.Namespace, thresholds: dict):
    from facenet_tf.serving.process import ServerProcess

    options = ["--model", model, "--gallery", f"sqlite:///{folder / 'gallery.db'}", "--batch-size",
               str(args.batch_size), "--max-wait-ms", str(args.max_wait_ms), "--detect-batch", str(args.detect_batch),
               "--max-queue", str(args.max_queue), "--quiet"]
    if weights:
        options += ["--weights", weights]
    if "threshold" in thresholds:
        options += ["--threshold", str(thresholds["threshold"]), "--identify-threshold",
                    str(thresholds["identify_threshold"])]
    return ServerProcess(options, folder, start_timeout=300)


def batch_delta(before: dict, after: dict) -> tuple[float, dict[int, int]]:
    """Mean batch and {size: calls} formed between two /health snapshots of one batcher."""
    sizes = {int(k): v - before["batch_sizes"].get(k, 0) for k, v in after["batch_sizes"].items()}
    sizes = {k: v for k, v in sorted(sizes.items()) if v}
    calls = sum(sizes.values())
    return (sum(k * v for k, v in sizes.items()) / calls if calls else 0.0), sizes


def round_of(server, clients: int, requests: int, uploads: list[bytes]) -> dict:
    import httpx

    latencies: list[float] = []
    faces, refused, failed = [0], [0], []
    lock = threading.Lock()
    before = server.health()["batching"]

    def client(number: int) -> None:
        with httpx.Client(base_url=server.url, timeout=120) as session:
            for i in range(requests):
                data = uploads[(number * requests + i) % len(uploads)]
                start = time.perf_counter()
                response = session.post("/embed", files={"image": ("photo.jpg", data, "image/jpeg")},
                                        data={"embeddings": "false"})
                elapsed = time.perf_counter() - start
                with lock:
                    if response.status_code == 200:
                        latencies.append(elapsed)
                        faces[0] += len(response.json()["images"][0]["faces"])
                    elif response.status_code == 503:
                        refused[0] += 1
                    else:
                        failed.append(f"{response.status_code}: {response.text[:200]}")

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - start
    if failed:
        raise SystemExit(f"{len(failed)} request(s) failed, e.g. {failed[0]}")
    after = server.health()["batching"]
    embed_mean, embed_sizes = batch_delta(before["embedding"], after["embedding"])
    detect_mean, _ = batch_delta(before["detection"], after["detection"])
    ms = np.asarray(latencies) * 1000
    return {"clients": clients, "requests": len(latencies), "refused": refused[0], "wall": wall,
            "p50": float(np.percentile(ms, 50)) if len(ms) else float("nan"),
            "p99": float(np.percentile(ms, 99)) if len(ms) else float("nan"),
            "rps": len(latencies) / wall, "faces_s": faces[0] / wall, "embed_mean": embed_mean,
            "embed_sizes": embed_sizes, "detect_mean": detect_mean}


def table(args: argparse.Namespace, library: dict, rounds: list[dict], photos: int) -> str:
    command = "benchmarks/serve.py " + " ".join(sys.argv[1:])
    lines = [
        "# facenet-tf serve under concurrent clients",
        "",
        f"Command: `.venv/bin/python {command.strip()}`",
        "",
        f"Machine: {cpu_model()}, {os.cpu_count()} cores ({platform.machine()}); clients and server on this "
        f"machine over 127.0.0.1. Model {library['model']}; {photos} LFW photos (250×250), one per request "
        f"(`POST /embed`, multipart, no embeddings in the answer); server: --batch-size {args.batch_size} "
        f"--max-wait-ms {args.max_wait_ms:g} --detect-batch {args.detect_batch} --max-queue {args.max_queue}.",
        "",
        f"In this process (`FaceNet.find`, same model, frozen as the server runs it, same settings): all {photos} "
        "photos in one call "
        f"(batched): **{library['batched_faces_s']:.1f} faces/s**; one photo per call: "
        f"{library['loop_faces_s']:.1f} faces/s.",
        "",
        "| clients | requests | p50 (ms) | p99 (ms) | requests/s | faces/s | vs in-process batched | 503s | "
        "faces per model call (mean; sizes: calls) | images per MTCNN call (mean) |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: |",
    ]
    for r in rounds:
        sizes = ", ".join(f"{size}: {calls}" for size, calls in r["embed_sizes"].items())
        lines.append(f"| {r['clients']} | {r['requests']} | {r['p50']:.0f} | {r['p99']:.0f} | {r['rps']:.1f} | "
                     f"{r['faces_s']:.1f} | {r['faces_s'] / library['batched_faces_s']:.0%} | {r['refused']} | "
                     f"{r['embed_mean']:.1f} ({sizes}) | {r['detect_mean']:.1f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    from facenet_tf import paths

    photos = lfw_sample(args.photos, paths.command_lfw_root(args.data_dir))  # the LFW root, resolved once
    with tempfile.TemporaryDirectory(prefix="serve_bench_") as scratch:
        folder = Path(scratch)
        model, weights, thresholds = args.model, args.weights, {}
        if args.quick:
            model, weights = tiny_model(folder), None
            thresholds = {"threshold": 1.0, "identify_threshold": 0.5}
        library = in_process(model, weights, photos, args.batch_size, thresholds)
        server = start_server(model, weights, folder, args, thresholds)
        try:
            uploads = [photo.read_bytes() for photo in photos]
            round_of(server, min(4, max(args.client_counts)), 2, uploads)  # warm-up: traces, connections
            rounds = [round_of(server, clients, args.requests, uploads) for clients in args.client_counts]
        finally:
            server.stop()
    text = table(args, library, rounds, len(photos))
    print(text)
    if args.output:
        from facenet_tf.atomic import write_text_atomically

        write_text_atomically(args.output, text, overwrite=True)


if __name__ == "__main__":
    main()
