"""The photo command's speed on this CPU: start-up, and photos per second of ``embed`` end to end.

    .venv/bin/python benchmarks/photos.py --num_photos=200 --output=results/photos_cpu.md

Rows:
- start-up: wall time of fresh processes: ``import tensorflow``; ``facenet-tf --help`` (no TensorFlow);
  ``facenet-tf verify A B`` on two LFW photos (import, model load, detect and embed two photos, answer);
- ``facenet-tf embed`` of one photo and of ``--num_photos`` LFW photos (spread over the sorted tree) in fresh
  processes: photos/s end to end, and of the photos after the first (the difference of the two runs);
- in one process with the model loaded (``facenet_tf.api.FaceNet.find``): detection (MTCNN, batched by image
  shape) and embedding timed apart, photos/s of each and of both.

The best of ``--repeats`` runs is reported. Prints a markdown table (and writes it to ``--output``).
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

from absl import app, flags  # noqa: E402

from facenet_tf import paths  # noqa: E402

_NUM_PHOTOS = flags.DEFINE_integer("num_photos", 200, "LFW photos embedded.")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "LFW root (default: FACENET_TF_LFW_DIR or ../shared/data/lfw).")
_REPEATS = flags.DEFINE_integer("repeats", 2, "Timed repetitions per row; the fastest is reported.")
_OUTPUT = flags.DEFINE_string("output", None, "Also write the table to this markdown file.")

CLI = [sys.executable, "-m", "facenet_tf.cli"]


def lfw_sample(num_photos: int, root: Path | None) -> list[Path]:
    """``num_photos`` LFW photos spread evenly over the sorted tree."""
    files = sorted(paths.lfw_images_dir(root).glob("*/*.jpg"))
    step = len(files) / num_photos
    return [files[int(i * step)] for i in range(num_photos)]


def wall(argv: list[str], repeats: int) -> float:
    """Best wall time (s) of a fresh process running ``argv`` (which must succeed)."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(argv, check=True, capture_output=True)
        best = min(best, time.perf_counter() - start)
    return best


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown CPU"


def main(argv: list[str]) -> None:
    del argv
    photos = lfw_sample(_NUM_PHOTOS.value, paths.command_lfw_root(_DATA_DIR.value))
    repeats = _REPEATS.value
    rows = [("`import tensorflow`", wall([sys.executable, "-c", "import tensorflow"], repeats), None),
            ("`facenet-tf --help`", wall([*CLI, "--help"], repeats), None)]
    verify = wall([*CLI, "verify", str(photos[0]), str(photos[1])], repeats)
    rows.append(("`facenet-tf verify A B` (start-up + 2 photos)", verify, None))
    with tempfile.TemporaryDirectory() as scratch:
        one = wall([*CLI, "embed", str(photos[0]), "--out", f"{scratch}/one.npz", "--overwrite"], repeats)
        embed = wall([*CLI, "embed", *map(str, photos), "--out", f"{scratch}/faces.npz", "--overwrite"], repeats)
    n = len(photos)
    rows.append(("`facenet-tf embed` 1 photo (start-up + 1 photo)", one, None))
    rows.append((f"`facenet-tf embed` {n} photos, end to end", embed, n / embed))
    rows.append((f"`facenet-tf embed`: the {n - 1} photos after the first (difference of the two)", embed - one,
                 (n - 1) / (embed - one)))

    from facenet_tf.api import FaceNet
    from facenet_tf.evaluation.embed import embed as embed_crops
    from facenet_tf.recognition import find_faces

    net = FaceNet()
    net.find(photos[:4])  # warm up (graph tracing, first detector calls)
    detect = embedding = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        found = find_faces(photos, output_size=net.embedder.input_size, margin=net.margin,
                           min_confidence=net.min_confidence, min_face_size=net.min_face_size)
        detect = min(detect, time.perf_counter() - start)
        start = time.perf_counter()
        embed_crops(net.embedder, found.crops, batch_size=net.batch_size)
        embedding = min(embedding, time.perf_counter() - start)
    rows.append((f"in process: detect and crop ({len(found)} faces)", detect, n / detect))
    rows.append((f"in process: embed {len(found)} faces (batch {net.batch_size})", embedding, n / embedding))
    rows.append(("in process: both", detect + embedding, n / (detect + embedding)))

    lines = [f"# Photo command speed ({cpu_model()}, {os.cpu_count()} cores)", "",
             f"Command: `.venv/bin/python benchmarks/photos.py --num_photos={n} --repeats={repeats}"
             + (f" --output={_OUTPUT.value}`" if _OUTPUT.value else "`"), "",
             "| what | wall (s) | photos/s |", "| --- | ---: | ---: |"]
    lines += [f"| {what} | {seconds:.2f} | {'' if rate is None else f'{rate:.1f}'} |" for what, seconds, rate in rows]
    text = "\n".join(lines) + "\n"
    print(text)
    if _OUTPUT.value:
        from facenet_tf.atomic import write_text_atomically

        write_text_atomically(_OUTPUT.value, text)


if __name__ == "__main__":
    app.run(main)
