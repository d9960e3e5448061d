"""The TFRecord training set at scale: a million synthetic face-like images written through the library's streaming
writer (``facenet_tf.data.tfrecord.write_tfrecords_from_groups``) and streamed back through the identity-balanced
reader (``tfrecord_training_dataset``), with the reader's memory sampled while it streams.

    .venv/bin/python benchmarks/tfrecord_scale.py --output=results/tfrecord_scale_cpu.md

Images are drawn on the fly from a seeded generator (per identity a random low-resolution pattern; each image a
noisy, shifted copy), encoded as JPEG and written; none is ever a file. A second set ``--compare`` times smaller is
written and read the same way, so the memory columns show whether the reader's footprint grows with the set. Each
set is read in a fresh process (the benchmark runs itself with ``--read_set``), so its RSS is the reader's alone.
Reported: images written/s (drawing, encoding, serialising, writing), size on disk, the writer's peak RSS, time to
the first batch (dataset built, shuffle buffer filled, first batch decoded), reader images/s after ``--warmup``
batches, the reader's RSS after importing TensorFlow and its peak, and RSS against images delivered and distinct
identities seen. ``--quick``: 20,000 images, for CI (tests/data/test_tfrecord_scale.py checks the table's columns).
The sets live under ``--work_dir`` and are removed at the end unless ``--keep``.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import json  # noqa: E402
import resource  # noqa: E402
import shlex  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402

F = flags.FLAGS
flags.DEFINE_integer("num_images", 1_000_000, "Images in the large set.")
flags.DEFINE_integer("identities", 100_000, "Identities in the large set (images shared out evenly).")
flags.DEFINE_integer("batches", 1000, "Batches streamed from each set.")
flags.DEFINE_integer("warmup", 10, "Batches before the reader's clock starts.")
flags.DEFINE_integer("compare", 10, "Also write and read a set this many times smaller (0: none).")
flags.DEFINE_list("image_size", ["48", "40"], "height,width of the generated images.")
flags.DEFINE_list("input_size", ["40", "32"], "height,width the reader crops to (loads at 1.1x, random crop).")
flags.DEFINE_list("composition", ["30", "4", "60"], "P,K,R of each batch.")
flags.DEFINE_integer("images_per_record", 64, "Images per identity-group record at most.")
flags.DEFINE_integer("images_per_shard", 10_000, "Images per shard file (about).")
flags.DEFINE_integer("seed", 0, "Seed of the generated images.")
flags.DEFINE_string("work_dir", "/tmp/facenet_tf_tfrecord_scale", "Where the sets are written (removed at the end "
                    "unless --keep; only what this run made is removed).")
flags.DEFINE_bool("keep", False, "Keep the sets.")
flags.DEFINE_bool("quick", False, "20,000 images of 2,000 identities, 20 batches: checks the benchmark runs.")
flags.DEFINE_string("output", "results/tfrecord_scale_cpu.md", "The markdown report (written atomically).")
flags.DEFINE_string("read_set", None, "Internal: read this set and print the measurements as JSON.")

COLUMNS = ["set", "images", "identities", "written images/s", "size on disk", "bytes/image", "writer peak RSS",
           "time to first batch", "reader images/s", "reader RSS after import", "reader peak RSS"]
RSS_COLUMNS = ["set", "batch", "images delivered", "identities seen", "reader RSS"]


def _ints(values) -> list[int]:
    return [int(v) for v in values]


def rss_mb() -> float:
    """This process's resident set now (VmRSS), in MB."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")  # pragma: no cover - Linux has VmRSS


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def synthetic_groups(num_images: int, identities: int, size: tuple[int, int], seed: int):
    """``(identity, [uint8 images])`` for ``identities`` identities in a seeded random order; each identity a random
    pattern at a quarter of the resolution, each image a noisy copy shifted by its number."""
    import cv2

    h, w = size
    base_count, extra = divmod(num_images, identities)
    for i in np.random.default_rng(seed).permutation(identities):
        n = base_count + (1 if i < extra else 0)
        rng = np.random.default_rng([seed, int(i)])
        pattern = cv2.resize(rng.integers(0, 256, (max(1, h // 4), max(1, w // 4), 3), np.uint8), (w, h),
                             interpolation=cv2.INTER_NEAREST).astype(np.int16)
        noisy = np.clip(pattern + rng.integers(-20, 21, (n, h, w, 3), np.int16), 0, 255).astype(np.uint8)
        yield f"id_{i:07d}", [np.roll(image, j, axis=1) for j, image in enumerate(noisy)]


def read_set(directory: str, batches: int, warmup: int, input_size, composition) -> dict:
    """Streams ``batches`` batches from a set; times and RSS samples (run in a fresh process)."""
    from facenet_tf.data.sampling import BatchComposition
    from facenet_tf.data.tfrecord import read_metadata, tfrecord_training_dataset  # imports TensorFlow

    after_import = rss_mb()
    seen = np.zeros(read_metadata(directory)["num_labels"], bool)
    comp = BatchComposition(*composition)
    points = sorted({1, warmup, *(round(batches * f) for f in (0.1, 0.25, 0.5, 0.75, 1.0))} - {0})
    t0 = time.perf_counter()
    stream = iter(tfrecord_training_dataset(directory, tuple(input_size), comp, seed=0))
    samples, first, clock = [], None, None
    for step in range(1, batches + 1):
        _, labels = next(stream)
        if first is None:
            first = time.perf_counter() - t0
        seen[labels.numpy()] = True
        if step == warmup:
            clock = time.perf_counter()
        if step in points:
            samples.append({"batch": step, "images": step * comp.batch_size, "identities": int(seen.sum()),
                            "rss_mb": round(rss_mb(), 1)})
    timed = batches - warmup
    rate = timed * comp.batch_size / (time.perf_counter() - clock) if clock and timed > 0 else float("nan")
    peak = max(peak_rss_mb(), rss_mb(), *(s["rss_mb"] for s in samples))  # the kernel's high-water mark may lag
    return {"first_batch_s": first, "images_per_s": rate, "rss_after_import_mb": round(after_import, 1),
            "peak_rss_mb": round(peak, 1), "samples": samples}


def _lscpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=30).stdout
    except OSError:  # pragma: no cover - lscpu is in util-linux
        return "unknown CPU"
    return next((line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name")),
                "unknown CPU")


def _size_mb(directory: Path) -> float:
    return sum(p.stat().st_size for p in directory.iterdir() if p.is_file()) / 1e6


def write_set(directory: Path, num_images: int, identities: int) -> dict:
    from facenet_tf.data.tfrecord import write_tfrecords_from_groups

    t0 = time.perf_counter()
    metadata = write_tfrecords_from_groups(
        synthetic_groups(num_images, identities, tuple(_ints(F.image_size)), F.seed), directory,
        num_shards=max(1, round(num_images / F.images_per_shard)), images_per_record=F.images_per_record,
        overwrite=True, source=f"synthetic {num_images} images / {identities} identities, seed {F.seed}")
    seconds = time.perf_counter() - t0
    size = _size_mb(directory)
    return {"images": metadata["images"], "identities": metadata["identities"], "write_s": seconds,
            "images_per_s": metadata["images"] / seconds, "size_mb": size,
            "bytes_per_image": size * 1e6 / metadata["images"], "writer_peak_rss_mb": peak_rss_mb()}


def _read_in_fresh_process(directory: Path, batches: int, warmup: int) -> dict:
    args = [sys.executable, os.path.abspath(__file__), f"--read_set={directory}", f"--batches={batches}",
            f"--warmup={warmup}", f"--input_size={','.join(F.input_size)}",
            f"--composition={','.join(F.composition)}"]
    proc = subprocess.run(args, capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError(f"the reader of '{directory}' failed: {proc.stderr.strip().splitlines()[-1:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def report(runs: list[tuple[str, dict, dict]], loads: tuple[tuple, tuple], command: str, warmup: int) -> str:
    cores = os.cpu_count() or 1
    comp = _ints(F.composition)
    h, w = _ints(F.image_size)
    busy = max(loads[0][0], loads[1][0]) > cores
    lines = [f"# TFRecord training set at scale: {runs[-1][1]['images']:,} images written and streamed (CPU)", "",
             f"Command: `{command}`", "",
             f"CPU: {_lscpu_model()} (lscpu), {cores} cores. Load average (1, 5, 15 min) at the start "
             f"{', '.join(f'{v:.2f}' for v in loads[0])}, at the end {', '.join(f'{v:.2f}' for v in loads[1])}.", ""]
    if busy:
        lines += [f"The load average exceeded the {cores} cores: throughput (written images/s, reader images/s) was "
                  "measured while other processes ran and may be low; memory and time to the first batch are not "
                  "affected the same way.", ""]
    lines += [f"Synthetic {h}×{w} JPEG images (quality 95) drawn from a seeded generator, never files, written by "
              "`facenet_tf.data.tfrecord.write_tfrecords_from_groups` (identity groups of at most "
              f"{F.images_per_record}, ~{F.images_per_shard:,} images per shard); read by "
              f"`tfrecord_training_dataset` in a fresh process per set: {F.batches:,} batches of "
              f"P×K+R = {comp[0]}×{comp[1]}+{comp[2]} = {comp[0] * comp[1] + comp[2]} images, input "
              f"{'×'.join(F.input_size)} (random crop and flip), reader images/s after {warmup} batches. RSS is the "
              "resident set (VmRSS); peak is the process's high-water mark. Writer peak RSS is the writing process's "
              "high-water mark so far (the smaller set is written first).", "",
              "| " + " | ".join(COLUMNS) + " |", "|" + " ---: |" * len(COLUMNS)]
    for name, written, read in runs:
        lines.append(f"| {name} | {written['images']:,} | {written['identities']:,} | {written['images_per_s']:,.0f} | "
                     f"{written['size_mb']:,.1f} MB | {written['bytes_per_image']:,.0f} | "
                     f"{written['writer_peak_rss_mb']:,.0f} MB | {read['first_batch_s']:.2f} s | "
                     f"{read['images_per_s']:,.0f} | {read['rss_after_import_mb']:,.0f} MB | "
                     f"{read['peak_rss_mb']:,.0f} MB |")
    lines += ["", "The reader's RSS while streaming, against what it has delivered:", "",
              "| " + " | ".join(RSS_COLUMNS) + " |", "|" + " ---: |" * len(RSS_COLUMNS)]
    for name, _, read in runs:
        for s in read["samples"]:
            lines.append(f"| {name} | {s['batch']:,} | {s['images']:,} | {s['identities']:,} | {s['rss_mb']:,.0f} MB |")
    growth = [f"{r['samples'][-1]['rss_mb'] - next(s['rss_mb'] for s in r['samples'] if s['batch'] == warmup):+,.0f} "
              f"MB ({name} images)" for name, _, r in runs]
    lines += ["", f"Reader RSS from batch {warmup} to batch {F.batches:,}: {', '.join(growth)}."]
    if len(runs) > 1:
        small, large = runs[0][2], runs[-1][2]
        lines += ["", f"Reader peak RSS: {large['peak_rss_mb']:,.0f} MB for the {runs[-1][1]['images']:,}-image set, "
                  f"{small['peak_rss_mb']:,.0f} MB for the {runs[0][1]['images']:,}-image one "
                  f"({large['peak_rss_mb'] - small['peak_rss_mb']:+,.0f} MB for "
                  f"{runs[-1][1]['images'] / runs[0][1]['images']:.0f}× the images)."]
    return "\n".join(lines) + "\n"


def main(argv):
    del argv
    if F.read_set:
        print(json.dumps(read_set(F.read_set, F.batches, F.warmup, _ints(F.input_size), _ints(F.composition))))
        return
    if F.quick:
        for name, value in (("num_images", 20_000), ("identities", 2_000), ("batches", 20), ("images_per_shard",
                                                                                          2_000)):
            if not F[name].present:
                F[name].value = value
    from facenet_tf.atomic import OutputError, check_output, write_text_atomically

    try:
        check_output(F.output, overwrite=True, flag="--output")
    except OutputError as error:
        raise app.UsageError(str(error))
    if F.identities < 1 or F.num_images < 2 * F.identities:
        raise app.UsageError("--identities: expected at least 1 and at most --num_images / 2 (>= 2 images each).")
    warmup = min(F.warmup, max(1, F.batches // 4))
    command = " ".join([".venv/bin/python benchmarks/tfrecord_scale.py", *map(shlex.quote, sys.argv[1:])])
    loads = [os.getloadavg()]
    work = Path(F.work_dir)
    created = not work.exists()
    work.mkdir(parents=True, exist_ok=True)
    sets = [(F.num_images, F.identities)]
    if F.compare > 1:
        sets.insert(0, (F.num_images // F.compare, max(1, F.identities // F.compare)))
    runs, made = [], []
    try:
        for num_images, identities in sets:
            directory = work / f"set_{num_images}"
            made.append(directory)
            print(f"writing {num_images:,} images of {identities:,} identities to {directory}", flush=True)
            written = write_set(directory, num_images, identities)
            print(f"  {written['images_per_s']:,.0f} images/s, {written['size_mb']:,.1f} MB; reading", flush=True)
            runs.append((f"{num_images:,}", written, _read_in_fresh_process(directory, F.batches, warmup)))
    finally:
        if not F.keep:
            for directory in made:
                shutil.rmtree(directory, ignore_errors=True)
            if created:
                shutil.rmtree(work, ignore_errors=True)
    loads.append(os.getloadavg())
    text = report(runs, tuple(loads), command, warmup)
    write_text_atomically(F.output, text)
    print(text)


if __name__ == "__main__":
    app.run(main)
