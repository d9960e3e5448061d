"""Inference speed and size of every zoo model in every export format, on this CPU.

    .venv/bin/python benchmarks/inference.py --models=nns2,nn4,inception_resnet_v1 --output=results/inference_cpu.md
    .venv/bin/python benchmarks/inference.py --models=nns2 --formats=keras,int8 --threads=1

For each model (random weights, the paper's input size, 128-D; speed does not depend on the weights) and format
— Keras (one tf.function), the serving SavedModel (its ``embed_images`` signature), and each TFLite variant in
``ai_edge_litert`` with 1 and 2 interpreter threads — it measures:

- latency at batch 1: the median of ``--latency_runs`` calls, after warm-up;
- throughput at batch ``--batch_size``: the best of ``--throughput_runs`` calls (the best, because other jobs on a
  shared CPU only ever slow a run down), in images/s;
- size on disk: the .keras file, the SavedModel directory, the .tflite file;
- achieved multiply-adds per second at that throughput (``count_flops``: the model's multiply-adds per image) as
  a fraction of this machine's peak, measured in the same run as the best of several float32 matmuls
  (``--matmul_size``², TensorFlow, all cores: 2·n³ FLOP = n³ multiply-adds each) before every model and at the
  end (the best, since contention only lowers it).

TensorFlow uses every core (its default); TFLite rows say their thread count. int8 variants are calibrated on a
few random images (fine for speed). Prints a markdown table; ``--output`` writes it with the command and machine.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import dataclasses  # noqa: E402
import datetime  # noqa: E402
import shlex  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Callable  # noqa: E402

import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402

FORMATS = ("keras", "saved_model", "float32", "float16", "dynamic_int8", "int8")

_MODELS = flags.DEFINE_list("models", None, "Zoo models to measure (default: all).")
_FORMATS = flags.DEFINE_list("formats", list(FORMATS), f"Formats, from {list(FORMATS)} (the last four: TFLite).")
_THREADS = flags.DEFINE_list("threads", ["1", "2"], "TFLite interpreter thread counts.")
_BATCH = flags.DEFINE_integer("batch_size", 32, "Batch size of the throughput measurement.")
_LATENCY_RUNS = flags.DEFINE_integer("latency_runs", 15, "Timed batch-1 calls per row (median reported).")
_THROUGHPUT_RUNS = flags.DEFINE_integer("throughput_runs", 3, "Timed full-batch calls per row (best reported).")
_MATMUL = flags.DEFINE_integer("matmul_size", 4096, "Side of the square float32 matmul that measures the peak.")
_CALIBRATION = flags.DEFINE_integer("calibration_images", 8, "Random representative images for the int8 variant.")
_OUTPUT = flags.DEFINE_string("output", None, "Also write the table (with command and machine) to this file.")


@dataclasses.dataclass
class Row:
    model: str
    format: str
    threads: str
    size_bytes: int
    latency_ms: float
    images_per_second: float
    macs_per_image: int


def measure_peak(size: int, runs: int = 8) -> float:
    """Multiply-adds per second of the best of ``runs`` float32 ``size``×``size`` matmuls in TensorFlow."""
    import tensorflow as tf

    rng = np.random.default_rng(0)
    a = tf.constant(rng.standard_normal((size, size), dtype=np.float32))
    b = tf.constant(rng.standard_normal((size, size), dtype=np.float32))
    matmul = tf.function(lambda x, y: tf.reduce_sum(tf.linalg.matmul(x, y)))
    matmul(a, b).numpy()  # warm-up (and tracing)
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        matmul(a, b).numpy()
        best = min(best, time.perf_counter() - start)
    return size ** 3 / best


def time_calls(call: Callable[[np.ndarray], object], images_1: np.ndarray, images_n: np.ndarray,
               latency_runs: int, throughput_runs: int) -> tuple[float, float]:
    """(median batch-1 latency in ms, best throughput at the full batch in images/s)."""
    call(images_1)  # warm-up: tracing, allocation
    call(images_n)
    latencies = []
    for _ in range(latency_runs):
        start = time.perf_counter()
        call(images_1)
        latencies.append(time.perf_counter() - start)
    best = float("inf")
    for _ in range(throughput_runs):
        start = time.perf_counter()
        call(images_n)
        best = min(best, time.perf_counter() - start)
    return 1000 * statistics.median(latencies), len(images_n) / best


def directory_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def measure_model(name: str, formats: list[str], threads: list[int], batch_size: int, latency_runs: int,
                  throughput_runs: int, calibration_images: int, log: Callable[[str], None]) -> list[Row]:
    import tensorflow as tf

    from facenet_tf.export.saved_model import export_saved_model
    from facenet_tf.export.tflite import TFLiteEmbeddingModel, convert_saved_model, write_plain_saved_model
    from facenet_tf.models import count_flops, create_model

    model = create_model(name)
    macs = count_flops(model)
    height, width = int(model.input.shape[1]), int(model.input.shape[2])
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (batch_size, height, width, 3)).astype(np.float32)
    one = images[:1]
    rows = []

    def add(fmt: str, thread_label: str, size: int, call: Callable[[np.ndarray], object]) -> None:
        latency, throughput = time_calls(call, one, images, latency_runs, throughput_runs)
        rows.append(Row(name, fmt, thread_label, size, latency, throughput, macs))
        log(f"{name:>20} {fmt:>12} threads {thread_label:>3}: {latency:8.2f} ms, {throughput:8.1f} img/s")

    tf_threads = f"tf {os.cpu_count()}"
    with tempfile.TemporaryDirectory(prefix="facenet_tf_bench_") as scratch:
        scratch = Path(scratch)
        if "keras" in formats:
            model.save(scratch / f"{name}.keras")
            function = tf.function(lambda x: model(x, training=False))
            add("keras", tf_threads, (scratch / f"{name}.keras").stat().st_size, lambda x: function(x).numpy())
        if "saved_model" in formats:
            export = export_saved_model(model, scratch / "saved_model", threshold=1.0, check=False)
            signature = tf.saved_model.load(str(export.path)).signatures["embed_images"]
            add("saved_model", tf_threads, directory_size(export.path),
                lambda x: signature(images=tf.constant(x))["embeddings"].numpy())
        variants = [f for f in formats if f not in ("keras", "saved_model")]
        if variants:
            plain = write_plain_saved_model(model, scratch / "plain")
            representative = rng.uniform(0, 255, (calibration_images, height, width, 3)).astype(np.float32)
            representative[0, 0, 0] = (0, 255, 0)  # the int8 input range spans 0..255
            for variant in variants:
                flatbuffer = convert_saved_model(plain, variant, representative if variant == "int8" else None)
                for count in threads:
                    runner = TFLiteEmbeddingModel(flatbuffer, num_threads=count)
                    add(f"tflite {variant}", str(count), len(flatbuffer), runner.run)
    return rows


def format_table(rows: list[Row], peak: float) -> str:
    lines = ["| model | format | threads | size MB | latency b=1 ms (median) | throughput img/s "
             f"(b={_BATCH.value}) | multiply-adds/image | GMAC/s | % of peak |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for row in rows:
        achieved = row.macs_per_image * row.images_per_second
        lines.append(f"| {row.model} | {row.format} | {row.threads} | {row.size_bytes / 1e6:.2f} | "
                     f"{row.latency_ms:.2f} | {row.images_per_second:.1f} | {row.macs_per_image / 1e6:.0f}M | "
                     f"{achieved / 1e9:.2f} | {100 * achieved / peak:.1f} |")
    return "\n".join(lines)


def main(argv: list[str]) -> None:
    del argv
    from facenet_tf.export.evaluate import machine_description
    from facenet_tf.models import list_models

    models = _MODELS.value or list_models()
    unknown_models = sorted(set(models) - set(list_models()))
    unknown_formats = sorted(set(_FORMATS.value) - set(FORMATS))
    if unknown_models or unknown_formats:
        raise app.UsageError(f"unknown models {unknown_models} (choose from {list_models()}) or formats "
                             f"{unknown_formats} (choose from {list(FORMATS)})")
    try:
        threads = [int(t) for t in _THREADS.value]
    except ValueError:
        raise app.UsageError(f"--threads must be integers, got {_THREADS.value}")
    peaks = []
    rows = []
    for name in models:  # the peak is measured before every model and at the end; the best counts
        peaks.append(measure_peak(_MATMUL.value))
        print(f"peak (float32 {_MATMUL.value}² matmul): {peaks[-1] / 1e9:.1f} G multiply-adds/s")
        rows += measure_model(name, _FORMATS.value, threads, _BATCH.value, _LATENCY_RUNS.value,
                              _THROUGHPUT_RUNS.value, _CALIBRATION.value, print)
    peaks.append(measure_peak(_MATMUL.value))
    peak = max(peaks)
    command = " ".join([".venv/bin/python", *(shlex.quote(a) for a in sys.argv)])
    header = [
        "# Inference speed and size on CPU",
        "",
        f"Written by `{command}` on {datetime.date.today().isoformat()}; {machine_description()} at the end.",
        "",
        f"Peak: best float32 {_MATMUL.value}×{_MATMUL.value} matmul in TensorFlow (all cores) = "
        f"{peak / 1e9:.1f} G multiply-adds/s ({2 * peak / 1e9:.1f} GFLOP/s), the best of the measurements before "
        f"each model and at the end ({', '.join(f'{p / 1e9:.1f}' for p in peaks)}). % of peak = "
        "multiply-adds/image × throughput / peak. TensorFlow rows use every core; TFLite rows the interpreter "
        "threads shown (one thread can reach at most 1/cores of the peak). The int8 and dynamic_int8 rows do "
        "integer multiply-adds, which these CPUs execute several times faster than float32 ones, so they can "
        "exceed 100 % of the float32 peak; a float row above 100 % means its kernels do fewer multiply-adds than "
        "the nominal (direct convolution) count (possibly Winograd-style 3×3 convolutions in oneDNN) or that "
        "other jobs slowed every peak measurement. Random weights, paper input sizes, 128-D embeddings. The CPU is "
        "shared with other engineers' jobs: latency is a median, throughput the best of the runs, and both are "
        "noisy (with contention, 2 threads can be slower than 1).",
        "",
    ]
    text = "\n".join(header) + "\n" + format_table(rows, peak) + "\n"
    print()
    print(text)
    if _OUTPUT.value:
        from facenet_tf.atomic import write_file_atomically

        write_file_atomically(_OUTPUT.value, text.encode())
        print(f"wrote {_OUTPUT.value}")


if __name__ == "__main__":
    app.run(main)
