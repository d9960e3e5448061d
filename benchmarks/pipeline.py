"""Training input pipeline throughput on real LFW: the image-folder source vs the sharded TFRecord source.

    .venv/bin/python benchmarks/pipeline.py --output results/pipeline_cpu.md

Converts LFW (all 13,233 images) to TFRecords in ``--tfrecord_dir`` first if it is not there (the conversion time
is reported), then times ``--batches`` batches of each source after ``--warmup`` batches: images per second
delivered to the training loop (decode, centre crop, resize, random crop and flip, batching), and the growth of the
process's peak RSS. Batch composition, crop and input size are those of the nns2_lfw_view1 config (30 x 4 + 60,
140 x 116, crop 0.56). Compare with what training consumes: nns2 with these batches trains at ~306 images/s on the
idle 2-core CPU (1,000 steps x 180 images in 589 s, results/harmonic_view2.md); a faster source is not the
bottleneck.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import datetime  # noqa: E402
import platform  # noqa: E402
import resource  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

from absl import app, flags  # noqa: E402

F = flags.FLAGS
flags.DEFINE_string("data_dir", None, "LFW root (default: $FACENET_TF_LFW_DIR, then ../shared/data/lfw).")
flags.DEFINE_string("tfrecord_dir", None, "Converted LFW (default: <cache>/lfw_tfrecords; converted if missing).")
flags.DEFINE_integer("batches", 20, "Timed batches per source.")
flags.DEFINE_integer("warmup", 3, "Untimed batches first (threads, tracing, prefetch).")
flags.DEFINE_list("sources", ["folder", "tfrecord"], "Sources to time.")
flags.DEFINE_string("output", None, "Also write the markdown table to this file.")
flags.DEFINE_string("note", "", "A line added to the output (e.g. machine load).")


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv):
    del argv
    import tensorflow as tf

    from facenet_tf import paths
    from facenet_tf.data.lfw import list_identities
    from facenet_tf.data.pipeline import folder_index, training_dataset
    from facenet_tf.data.sampling import BatchComposition
    from facenet_tf.data.tfrecord import is_tfrecord_dir, read_metadata, tfrecord_training_dataset, write_tfrecords

    images_dir = paths.lfw_images_dir(paths.command_lfw_root(F.data_dir))
    tfr = Path(F.tfrecord_dir) if F.tfrecord_dir else paths.cache_dir() / "lfw_tfrecords"
    convert_s = None
    if "tfrecord" in F.sources and not is_tfrecord_dir(tfr):
        t0 = time.perf_counter()
        write_tfrecords(list_identities(images_dir), tfr, source=str(images_dir))
        convert_s = time.perf_counter() - t0
    composition = BatchComposition(30, 4, 60)
    size, crop = (140, 116), 0.56
    rows = []
    for source in F.sources:
        base = _peak_mb()
        if source == "folder":
            ds, _ = training_dataset(folder_index(images_dir), size, composition, seed=0, crop_fraction=crop)
        elif source == "tfrecord":
            ds = tfrecord_training_dataset(tfr, size, composition, seed=0, crop_fraction=crop)
        else:
            raise app.UsageError(f"--sources: unknown '{source}' (folder, tfrecord).")
        it = iter(ds)
        for _ in range(F.warmup):
            next(it)
        t0 = time.perf_counter()
        for _ in range(F.batches):
            images, _ = next(it)
        seconds = time.perf_counter() - t0
        n = F.batches * composition.batch_size
        rows.append((source, n / seconds, 1000 * seconds / F.batches, _peak_mb() - base))
        print(f"{source}: {n / seconds:.0f} images/s", flush=True)
        del it, ds

    lines = [
        "# Training input pipeline throughput (LFW, CPU)", "",
        "Command: `.venv/bin/python benchmarks/pipeline.py" + (f" --output {F.output}" if F.output else "")
        + (f" --note '{F.note}'" if F.note else "") + "`", "",
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; TensorFlow {tf.__version__}; "
        f"{datetime.datetime.now():%Y-%m-%d %H:%M}.", "",
        f"Batches of 30 x 4 + 60 = {composition.batch_size} faces at 140 x 116 (crop 0.56, random crop + flip), "
        f"{F.batches} timed after {F.warmup} warm-up batches; peak = growth of the process's peak RSS while the "
        "source ran (the first source also pays for TensorFlow's first-use allocations).",
    ]
    if F.note:
        lines += ["", F.note]
    if "tfrecord" in F.sources:
        meta = read_metadata(tfr)
        size_mb = sum((tfr / s["file"]).stat().st_size for s in meta["shards"]) / 2**20
        converted = f"converted in {convert_s:.0f} s by this run" if convert_s else f"converted earlier " \
                    f"(its metadata says {meta['seconds']:.0f} s)"
        lines += ["", f"TFRecords: {meta['images']} images, {meta['records']} records, {len(meta['shards'])} "
                      f"shards, {size_mb:.0f} MB; {converted}."]
    lines += ["", "| source | images/s | ms / batch | peak MB |", "| --- | --- | --- | --- |"]
    lines += [f"| {s} | {r:.0f} | {ms:.0f} | {mb:.0f} |" for s, r, ms, mb in rows]
    text = "\n".join(lines) + "\n"
    print(text)
    if F.output:
        Path(F.output).write_text(text)


if __name__ == "__main__":
    app.run(main)
