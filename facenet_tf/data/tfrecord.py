"""Sharded TFRecords for training sets too large for an image-folder listing in memory: a streaming converter and
a streaming, identity-balanced reader.

Layout of a converted set (``write_tfrecords``)::

    <output_dir>/facenet_tfrecords.json          metadata: counts, shards, what was skipped (written last)
    <output_dir>/train-00000-of-00004.tfrecord   shards of tf.train.Example records

``write_tfrecords_from_groups`` writes the same layout from images that are not files (generated or decoded
elsewhere: ``(identity, images)`` groups from any iterable; ``benchmarks/tfrecord_scale.py`` writes a million that
way).

One record is one *identity group*: up to ``images_per_record`` encoded images of one identity (``images``: bytes
list, ``label``: int64, unique per identity over the whole set, ``identity``: bytes, ``paths``: source file names).
Identities with more images are split into near-equal groups that share the label. Groups are written in a seeded
random order, round-robin over the shards, so every shard mixes identities and a modest shuffle buffer suffices.

The converter holds one identity group in memory at a time (plus the file list); the reader holds a shuffle
buffer of serialized records (``shuffle_buffer`` groups) and the batches being built — never the whole set.

Reader (``tfrecord_training_dataset``), all in ``tf.data``: shard files shuffled per epoch and interleaved ->
records shuffled -> identities of excluded pairs filtered out by name -> two streams:
  * anchor-positive stream: groups with >= 2 images, up to ``K`` images drawn at random from each, flattened and
    cut into blocks of ``P*K`` (an identity with fewer than ``K`` images leaves its slots to the next identities,
    as the folder sampler does; a group may be split at a block boundary, the images keep their labels);
  * negative stream (only if ``R > 0``): one random image of each group, in blocks of ``R``.
Each image is decoded, centre-cropped (``crop_fraction``) and resized to ``(1 + jitter) x`` the input size in
parallel ``map``s, then the batch gets the same vectorised random crop / flip as the folder pipeline.

Reproducible and resumable: record order depends only on the seed (deterministic interleave and seeded shuffles);
random choices inside a group are stateless functions of ``(seed, group number)``; resuming at step ``s`` skips
``s*P*K`` flattened positives and ``s*R`` negatives *before* decoding (only bytes are read), so a resumed run sees
the batches an uninterrupted one would have.
"""

from __future__ import annotations

import concurrent.futures
import json
import logging
import math
import os
import shutil
import time
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import cv2
import numpy as np
import tensorflow as tf

from facenet_tf.data.images import ImageReadError, decode_image
from facenet_tf.data.pipeline import augment
from facenet_tf.data.sampling import BatchComposition

logger = logging.getLogger(__name__)

METADATA_FILE = "facenet_tfrecords.json"
FORMAT_VERSION = 1
_FEATURES = {
    "images": tf.io.VarLenFeature(tf.string),
    "label": tf.io.FixedLenFeature([], tf.int64),
    "identity": tf.io.FixedLenFeature([], tf.string),
}


def is_tfrecord_dir(path: str | os.PathLike | None) -> bool:
    """Whether ``path`` is a directory written by ``write_tfrecords``."""
    return path is not None and (Path(path) / METADATA_FILE).is_file()


def read_metadata(directory: str | os.PathLike) -> dict:
    """The metadata of a converted set; a clear error if it is missing, unreadable or of another format."""
    path = Path(directory) / METADATA_FILE
    if not path.is_file():
        raise FileNotFoundError(f"'{path}' not found: '{directory}' is not a TFRecord set written by "
                                "experiments/make_tfrecords.py (or its conversion did not finish).")
    try:
        metadata = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"'{path}' is not valid JSON (line {error.lineno}): {error.msg}") from None
    if metadata.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"'{path}': format_version {metadata.get('format_version')!r}, expected {FORMAT_VERSION}.")
    missing = [s["file"] for s in metadata["shards"] if not (Path(directory) / s["file"]).is_file()]
    if missing:
        raise FileNotFoundError(f"'{directory}' lacks shard(s) listed in {METADATA_FILE}: {', '.join(missing[:5])}")
    return metadata


def _split_group(paths: Sequence, per_record: int) -> list[Sequence]:
    """Near-equal chunks of at most ``per_record`` images."""
    n_chunks = max(1, math.ceil(len(paths) / per_record))
    bounds = np.linspace(0, len(paths), n_chunks + 1).round().astype(int)
    return [paths[a:b] for a, b in zip(bounds[:-1], bounds[1:])]


def _encoded_image(path: str, max_side: int | None) -> bytes:
    """The bytes to store for one image: the file itself when TensorFlow decodes it to what OpenCV gives (JPEG/PNG
    without an EXIF rotation), otherwise (another format, an EXIF orientation, or larger than ``max_side``) the
    image re-encoded (JPEG quality 95, or PNG for PNG sources). Raises ``ImageReadError`` naming the file."""
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as error:
        raise ImageReadError(path, f"the file cannot be read ({error.strerror or error})") from error
    image = decode_image(data, source=path)  # the reference decode (EXIF applied), also validates the file
    is_png = data[:8] == b"\x89PNG\r\n\x1a\n"
    is_jpeg = data[:3] == b"\xff\xd8\xff"
    rescale = max_side is not None and max(image.shape[:2]) > max_side
    if (is_png or is_jpeg) and not rescale:
        raw = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR_RGB | cv2.IMREAD_IGNORE_ORIENTATION)
        if raw is not None and raw.shape == image.shape:
            return data
    if rescale:
        f = max_side / max(image.shape[:2])
        size = (max(1, round(image.shape[1] * f)), max(1, round(image.shape[0] * f)))
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    ok, encoded = cv2.imencode(".png" if is_png else ".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR),
                               [] if is_png else [cv2.IMWRITE_JPEG_QUALITY, 95])
    if not ok:  # pragma: no cover - OpenCV encodes any uint8 RGB image
        raise ImageReadError(path, "could not be re-encoded")
    return encoded.tobytes()


def _example(images: list[bytes], label: int, identity: str, paths: list[str]) -> bytes:
    feature = {
        "images": tf.train.Feature(bytes_list=tf.train.BytesList(value=images)),
        "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[label])),
        "identity": tf.train.Feature(bytes_list=tf.train.BytesList(value=[identity.encode()])),
        "paths": tf.train.Feature(bytes_list=tf.train.BytesList(value=[p.encode() for p in paths])),
    }
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


class _ShardSet:
    """A set being built: ``num_shards`` writers in a hidden sibling of ``output_dir``, filled round-robin with
    identity-group records, renamed into place by ``finish`` (an interrupted build never leaves a half-written set
    under ``output_dir``; an existing set is replaced only with ``overwrite`` and only once the new one is
    complete). Use as a context manager: the temporary directory is removed on any failure."""

    def __init__(self, output_dir: str | os.PathLike, num_shards: int, overwrite: bool):
        self.output_dir = Path(output_dir)
        if self.output_dir.exists() and not overwrite:
            raise FileExistsError(f"'{self.output_dir}' exists; choose a new output directory or pass overwrite "
                                  "(--overwrite).")
        if num_shards < 1:
            raise ValueError(f"num_shards must be >= 1, got {num_shards}.")
        self.num_shards = num_shards
        self.tmp = self.output_dir.parent / f".{self.output_dir.name}.tmp-{os.getpid()}"
        names = [f"train-{i:05d}-of-{num_shards:05d}.tfrecord" for i in range(num_shards)]
        self.counts = [{"file": f, "records": 0, "images": 0} for f in names]
        self.labels: set[int] = set()
        self._next = 0
        self._writers = []
        self.t0 = time.perf_counter()

    def __enter__(self) -> "_ShardSet":
        self.output_dir.parent.mkdir(parents=True, exist_ok=True)
        if self.tmp.exists():
            shutil.rmtree(self.tmp)
        self.tmp.mkdir()
        self._writers = [tf.io.TFRecordWriter(str(self.tmp / c["file"])) for c in self.counts]
        return self

    def write(self, images: list[bytes], label: int, identity: str, paths: list[str]) -> None:
        """One identity-group record into the next shard."""
        self._writers[self._next].write(_example(images, label, identity, paths))
        self.counts[self._next]["records"] += 1
        self.counts[self._next]["images"] += len(images)
        self.labels.add(label)
        self._next = (self._next + 1) % self.num_shards

    def finish(self, **metadata) -> dict:
        """Closes the shards, writes the metadata (counts, shards, ``metadata``) last, moves the set into place."""
        for writer in self._writers:
            writer.close()
        self._writers = []
        metadata = {"format_version": FORMAT_VERSION, "identities": len(self.labels),
                    "images": sum(c["images"] for c in self.counts),
                    "records": sum(c["records"] for c in self.counts), **metadata, "shards": self.counts,
                    "seconds": round(time.perf_counter() - self.t0, 1)}
        (self.tmp / METADATA_FILE).write_text(json.dumps(metadata, indent=2))
        if self.output_dir.exists():
            old = self.output_dir.parent / f".{self.output_dir.name}.old-{os.getpid()}"
            os.replace(self.output_dir, old)
            os.replace(self.tmp, self.output_dir)
            shutil.rmtree(old)
        else:
            os.replace(self.tmp, self.output_dir)
        return metadata

    def __exit__(self, *exc) -> None:
        for writer in self._writers:
            writer.close()
        if self.tmp.exists():
            shutil.rmtree(self.tmp, ignore_errors=True)


def write_tfrecords(identities: Mapping[str, Sequence[str | os.PathLike]], output_dir: str | os.PathLike,
                    num_shards: int | None = None, images_per_record: int = 64, seed: int = 0,
                    max_side: int | None = None, num_threads: int | None = None, overwrite: bool = False,
                    source: str = "") -> dict:
    """Converts ``{identity: [image paths]}`` into sharded TFRecords in ``output_dir``; returns the metadata.

    Streaming: images are read (and validated by decoding) one identity group at a time with a thread pool and
    written straight to their shard. An unreadable, corrupt or too-small image is skipped with one warning naming
    the file and listed in the metadata (``skipped``). The set is built in a hidden sibling directory and renamed
    into place when complete, so an interrupted conversion never leaves a half-written set under ``output_dir``;
    an existing set is replaced only with ``overwrite=True`` (and only once the new one is complete).

    ``num_shards`` defaults to one per ~5,000 images; ``max_side`` re-encodes larger images down to that size.
    """
    if images_per_record < 2:
        raise ValueError(f"images_per_record must be >= 2, got {images_per_record}.")
    if not identities:
        raise ValueError("No identities to convert.")
    names = sorted(identities)
    n_images = sum(len(identities[n]) for n in names)
    labels = {name: i for i, name in enumerate(names)}
    groups = [(name, list(chunk)) for name in names for chunk in _split_group(list(identities[name]),
                                                                              images_per_record)]
    order = np.random.default_rng(seed).permutation(len(groups))
    skipped: list[dict] = []
    with _ShardSet(output_dir, num_shards or max(1, math.ceil(n_images / 5000)), overwrite) as shards:
        pool = concurrent.futures.ThreadPoolExecutor(num_threads or min(8, (os.cpu_count() or 2) * 2))

        def load(path):
            try:
                return _encoded_image(str(path), max_side)
            except ImageReadError as error:
                return error

        for k, g in enumerate(order):
            name, paths = groups[g]
            encoded, kept = [], []
            for path, result in zip(paths, pool.map(load, paths)):
                if isinstance(result, ImageReadError):
                    logger.warning("Skipping image: %s", result)
                    skipped.append({"file": str(path), "reason": result.reason})
                else:
                    encoded.append(result)
                    kept.append(os.path.relpath(path, source) if source else str(path))
            if encoded:
                shards.write(encoded, labels[name], name, kept)
            if (k + 1) % 1000 == 0:
                logger.info("%d of %d identity groups written (%.0f s)", k + 1, len(order),
                            time.perf_counter() - shards.t0)
        pool.shutdown()
        metadata = shards.finish(
            source=source, seed=seed, num_labels=len(names),
            identities_with_2_or_more_images=sum(1 for n in names if len(identities[n]) >= 2),
            images_per_record=images_per_record, max_side=max_side, skipped=skipped)
    if skipped:
        logger.warning("%d image(s) skipped; listed under 'skipped' in %s", len(skipped),
                       Path(output_dir) / METADATA_FILE)
    return metadata


def encode_image(image: np.ndarray, quality: int = 95) -> bytes:
    """A uint8 RGB (H, W, 3) or grayscale (H, W) array as JPEG bytes (what the reader decodes)."""
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] != 3):
        raise ValueError(f"expected a uint8 (H, W, 3) RGB or (H, W) image, got {image.dtype} {image.shape}.")
    ok, encoded = cv2.imencode(".jpg", image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2BGR),
                               [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:  # pragma: no cover - OpenCV encodes any uint8 image
        raise ValueError("the image could not be encoded as JPEG.")
    return encoded.tobytes()


def write_tfrecords_from_groups(groups: Iterable[tuple[str, Sequence[bytes | np.ndarray]]],
                                output_dir: str | os.PathLike, num_shards: int, images_per_record: int = 64,
                                overwrite: bool = False, source: str = "", quality: int = 95) -> dict:
    """Writes images that are not files (generated, decoded elsewhere, streamed from another store) as a set the
    reader reads like a converted folder; returns the metadata.

    ``groups`` yields ``(identity, images)``, each image encoded bytes (JPEG or PNG, stored as they are) or a uint8
    RGB array (encoded as JPEG of ``quality``). Streaming like ``write_tfrecords``: one identity's images in memory
    at a time (plus a label per identity name); records go round-robin over the shards in the order the groups
    come, so yield identities in a random order (the reader's shuffle buffer is modest). An identity yielded again
    keeps its label. Atomic as ``write_tfrecords``.
    """
    if images_per_record < 2:
        raise ValueError(f"images_per_record must be >= 2, got {images_per_record}.")
    labels: dict[str, int] = {}
    sizes: dict[int, int] = {}
    with _ShardSet(output_dir, num_shards, overwrite) as shards:
        for name, images in groups:
            encoded = [_stored_bytes(image, quality, name) for image in images]
            if not encoded:
                continue
            label = labels.setdefault(name, len(labels))
            sizes[label] = sizes.get(label, 0) + len(encoded)
            for chunk in _split_group(encoded, images_per_record):
                shards.write(list(chunk), label, name, [])
            if len(labels) % 10000 == 0 and sizes[label] == len(encoded):
                logger.info("%d identities written (%.0f s)", len(labels), time.perf_counter() - shards.t0)
        if not labels:
            raise ValueError("No images to write.")
        return shards.finish(source=source, seed=None, num_labels=len(labels),
                             identities_with_2_or_more_images=sum(1 for n in sizes.values() if n >= 2),
                             images_per_record=images_per_record, max_side=None, skipped=[])


def _stored_bytes(image: bytes | np.ndarray, quality: int, identity: str) -> bytes:
    if isinstance(image, np.ndarray):
        return encode_image(image, quality)
    data = bytes(image)
    if not (data[:3] == b"\xff\xd8\xff" or data[:8] == b"\x89PNG\r\n\x1a\n"):
        raise ValueError(f"an image of identity '{identity}' is neither JPEG nor PNG bytes nor a uint8 array.")
    return data


def _parse(serialized: tf.Tensor) -> dict:
    parsed = tf.io.parse_single_example(serialized, _FEATURES)
    return {"images": tf.sparse.to_dense(parsed["images"]), "label": parsed["label"],
            "identity": parsed["identity"]}


def decode_face(data: tf.Tensor, size: tuple[int, int], crop_fraction: float) -> tf.Tensor:
    """Encoded image -> uint8 ``size`` face: the centred box of ``crop_fraction`` of the shorter side with the
    output's aspect ratio (as ``pipeline.center_crop_box``), area-resized."""
    image = tf.io.decode_image(data, channels=3, expand_animations=False)
    h = tf.cast(tf.shape(image)[0], tf.float32)
    w = tf.cast(tf.shape(image)[1], tf.float32)
    out_h, out_w = size
    box_h = tf.minimum(h, tf.round(tf.minimum(h, w) * crop_fraction * max(1.0, out_h / out_w)))
    box_w = tf.minimum(w, tf.round(box_h * out_w / out_h))
    top = tf.cast((h - box_h) // 2, tf.int32)
    left = tf.cast((w - box_w) // 2, tf.int32)
    crop = image[top:top + tf.cast(box_h, tf.int32), left:left + tf.cast(box_w, tf.int32)]
    face = tf.image.resize(crop, size, method="area")
    return tf.ensure_shape(tf.cast(tf.clip_by_value(tf.round(face), 0, 255), tf.uint8), (*size, 3))


def _record_stream(files: list[str], seed: int, shuffle_buffer: int, cycle_length: int) -> tf.data.Dataset:
    ds = tf.data.Dataset.from_tensor_slices(files)
    ds = ds.shuffle(len(files), seed=seed, reshuffle_each_iteration=True).repeat()
    ds = ds.interleave(tf.data.TFRecordDataset, cycle_length=min(cycle_length, len(files)), block_length=1,
                       num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.shuffle(shuffle_buffer, seed=seed + 1, reshuffle_each_iteration=True)


def tfrecord_training_dataset(directory: str | os.PathLike, input_size: tuple[int, int],
                              composition: BatchComposition, seed: int = 0, start_step: int = 0,
                              crop_fraction: float = 1.0, jitter: float = 0.1, flip: bool = True,
                              exclude_identities: Iterable[str] = (), shuffle_buffer: int = 256,
                              cycle_length: int = 8, prefetch: int = 2) -> tf.data.Dataset:
    """An endless dataset of ``(images float32 (B, H, W, 3) in 0-255, labels int32 (B,))`` batches of
    ``composition`` from a set written by ``write_tfrecords``, starting at ``start_step`` (see the module
    docstring). Identities named in ``exclude_identities`` are never read into a batch."""
    metadata = read_metadata(directory)
    if metadata["identities_with_2_or_more_images"] < 2:
        raise ValueError(f"'{directory}' has {metadata['identities_with_2_or_more_images']} identities with >= 2 "
                         "images; at least 2 are needed to form triplets.")
    files = [str(Path(directory) / s["file"]) for s in metadata["shards"] if s["records"]]
    out_h, out_w = input_size
    load_size = (round(out_h * (1 + jitter)), round(out_w * (1 + jitter)))
    p_k = composition.identities_per_batch * composition.faces_per_identity
    r = composition.extra_negatives
    k = composition.faces_per_identity
    excluded = sorted(set(exclude_identities))
    table = None
    if excluded:  # a hash table: constant time per record however many names are excluded
        table = tf.lookup.StaticHashTable(tf.lookup.KeyValueTensorInitializer(
            tf.constant(excluded), tf.ones(len(excluded), tf.int32)), default_value=0)

    def keep(record):
        if table is None:
            return True
        return tf.equal(table.lookup(record["identity"]), 0)

    def records(stream_seed):
        return _record_stream(files, stream_seed, shuffle_buffer, cycle_length).map(
            _parse, num_parallel_calls=tf.data.AUTOTUNE).filter(keep)

    def take_k(index, record):
        n = tf.shape(record["images"])[0]
        order = tf.argsort(tf.random.stateless_uniform([n], seed=tf.stack([tf.cast(seed, tf.int64), index])))
        chosen = tf.gather(record["images"], order[:k])
        return chosen, tf.fill(tf.shape(chosen), record["label"])

    def take_one(index, record):
        n = tf.shape(record["images"])[0]
        i = tf.random.stateless_uniform([], seed=tf.stack([tf.cast(seed, tf.int64) + 1, index]), maxval=n,
                                        dtype=tf.int32)
        return record["images"][i], record["label"]

    def decode(data, label):
        return decode_face(data, load_size, crop_fraction), tf.cast(label, tf.int32)

    positives = (records(seed).filter(lambda rec: tf.shape(rec["images"])[0] >= 2).enumerate()
                 .map(take_k, num_parallel_calls=tf.data.AUTOTUNE).unbatch().skip(start_step * p_k)
                 .map(decode, num_parallel_calls=tf.data.AUTOTUNE).batch(p_k, drop_remainder=True))
    steps = tf.data.Dataset.range(start_step, tf.int64.max)
    if r:
        negatives = (records(seed + 7).enumerate().map(take_one, num_parallel_calls=tf.data.AUTOTUNE)
                     .skip(start_step * r).map(decode, num_parallel_calls=tf.data.AUTOTUNE)
                     .batch(r, drop_remainder=True))
        ds = tf.data.Dataset.zip(positives, negatives, steps).map(
            lambda p, q, s: (tf.concat([p[0], q[0]], 0), tf.concat([p[1], q[1]], 0), s))
    else:
        ds = tf.data.Dataset.zip(positives, steps).map(lambda p, s: (p[0], p[1], s))

    def finish(images, labels, step):
        if jitter or flip:
            images = augment(images, tf.stack([tf.constant(seed, tf.int64), step]), (out_h, out_w), flip)
        else:
            images = tf.cast(images, tf.float32)
        return images, labels

    return ds.map(finish, num_parallel_calls=tf.data.AUTOTUNE).prefetch(prefetch)
