"""Face alignment speed on this CPU: faces aligned per second for each mode, on real LFW images, no cache.

    .venv/bin/python benchmarks/align.py --num_images=100
    .venv/bin/python benchmarks/align.py --num_images=20 --modes=center,detect --batch_sizes=1,8,32

Times ``facenet_tf.align.align_images(..., cache=False)``: reading and decoding the JPEG, MTCNN (for ``detect`` and
``landmarks``), choosing the face, cropping and resizing. The detector is built and warmed up before timing (building
it once per process is a fixed cost of a few seconds, mostly the TensorFlow import). The images are spread evenly
over the sorted LFW tree. Prints a markdown table.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import logging  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

from absl import app, flags  # noqa: E402

from facenet_tf import paths  # noqa: E402
from facenet_tf.align import MODES, align_images, get_detector, read_image  # noqa: E402

_NUM_IMAGES = flags.DEFINE_integer("num_images", 100, "LFW images per measurement.")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "LFW root (default: FACENET_TF_LFW_DIR or ../shared/data/lfw).")
_MODES = flags.DEFINE_list("modes", ["center", "detect"], f"Modes to time, from {list(MODES)}.")
_BATCH_SIZES = flags.DEFINE_list("batch_sizes", ["1", "32"], "MTCNN batch sizes to time (detector modes only).")
_OUTPUT_SIZE = flags.DEFINE_integer("output_size", 160, "Square output size of the crops.")
_REPEATS = flags.DEFINE_integer("repeats", 2, "Timed repetitions per row; the fastest is reported.")


def lfw_sample(num_images: int, root: Path | None) -> list[Path]:
    """``num_images`` deep-funneled LFW images spread evenly over the sorted tree."""
    images_dir = paths.lfw_images_dir(root)
    files = sorted(images_dir.glob("*/*.jpg"))
    if len(files) < num_images:
        raise ValueError(f"asked for {num_images} images, {images_dir} holds {len(files)}")
    step = len(files) / num_images
    return [files[int(i * step)] for i in range(num_images)]


def time_mode(files: list[Path], mode: str, batch_size: int, output_size: int, repeats: int) -> tuple[float, int]:
    """Best wall time (s) of aligning ``files`` without cache, and the number of fallbacks."""
    best, fallbacks = float("inf"), 0
    for _ in range(repeats):
        start = time.perf_counter()
        result = align_images(files, mode, output_size, cache=False, progress=False, batch_size=batch_size)
        best = min(best, time.perf_counter() - start)
        fallbacks = result.fallback_count
    return best, fallbacks


def main(argv: list[str]) -> None:
    del argv
    logging.getLogger("facenet_tf.align").setLevel(logging.WARNING)  # no per-call summaries between the rows
    unknown = sorted(set(_MODES.value) - set(MODES))
    if unknown:
        raise app.UsageError(f"unknown modes {unknown}; choose from {list(MODES)}")
    files = lfw_sample(_NUM_IMAGES.value, paths.command_lfw_root(_DATA_DIR.value))
    rows = []
    if any(mode != "center" for mode in _MODES.value):
        start = time.perf_counter()
        detector = get_detector()
        detector.detect(read_image(files[0]))  # warm-up
        print(f"detector built and warmed up in {time.perf_counter() - start:.1f} s")
    for mode in _MODES.value:
        batch_sizes = [1] if mode == "center" else [int(b) for b in _BATCH_SIZES.value]
        for batch_size in batch_sizes:
            seconds, fallbacks = time_mode(files, mode, batch_size, _OUTPUT_SIZE.value, _REPEATS.value)
            rows.append((mode, "-" if mode == "center" else str(batch_size), len(files), seconds, fallbacks))
    cpus = os.cpu_count()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"\nFace alignment, {_OUTPUT_SIZE.value}×{_OUTPUT_SIZE.value} crops from 250×250 LFW JPEGs, no cache; "
          f"{platform.processor() or platform.machine()}, {cpus} CPUs, load average {load:.1f} at the end\n")
    print("| mode | MTCNN batch | images | seconds | images/s | ms/image | fallbacks |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for mode, batch, count, seconds, fallbacks in rows:
        print(f"| {mode} | {batch} | {count} | {seconds:.2f} | {count / seconds:.1f} | "
              f"{1000 * seconds / count:.1f} | {fallbacks} |")


if __name__ == "__main__":
    app.run(main)
