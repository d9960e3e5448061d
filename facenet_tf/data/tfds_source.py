"""Training (and recognition) data from any prepared tensorflow-datasets split with an image and an identity label:
``--data_dir=tfds:NAME/SPLIT``.

``NAME`` is what ``tfds.builder`` takes (``lfw_local``, ``some_set/config``, ``some_set:1.2.0``); ``SPLIT`` any split
expression tfds reads (``train``, ``full``, ``train[:90%]``, ``train+test``). The split is read with
``download=False``: from ``data_dir`` (``--tfds_data_dir``; the command resolves it, else ``$TFDS_DATA_DIR``, else
``~/tensorflow_datasets``, as tfds does), never fetched or prepared here. The local LFW builder
(``facenet_tf.data.tfds_lfw``, ``lfw_local``) is registered on import.

Features (``open_split``): the **image** is the one top-level ``tfds.features.Image`` (several: the one in
``supervised_keys``, else ``--tfds_image_feature`` names it). The **identity** is, unless
``--tfds_label_feature`` names it, the ``supervised_keys`` member that is label-like, else the only ``ClassLabel``,
else the only label-like feature; label-like is a top-level ``ClassLabel``, integer scalar or text/bytes scalar.
Names of identities, which ``--exclude_pairs`` matches: a ``ClassLabel``'s names, or the strings themselves; an
integer label has none (excluding pairs from it is refused, naming ``--exclude_pairs``). ``--identity_fraction`` and
``--complete_groups`` act as on an image tree (``TfdsIndex.subset``; the sampler's composition). Every error is one line
that names the flag (unknown dataset, not prepared, unknown split, no image feature, no / ambiguous label feature).

Identity-balanced batches (``tfds_training_dataset``): the split is **indexed once** per start (``index_split``):
one sequential read that keeps, per example, only its label and where its record lies (shard, byte offset, length;
the TFRecord framing is read directly, the labels are parsed by ``tf.data``). Batches are then drawn by the same
``IdentityBalancedSampler`` as an image tree (P x K + R, a pure function of (seed, step), so a resumed run sees the
batches an uninterrupted one would have), and each example is read by its offset (``os.pread``), its image parsed,
decoded, centre-cropped and augmented as the TFRecord reader does. Chosen over converting the split to the
identity-group TFRecord format on the fly: grouping a split that tfds stored in shuffled order needs either the
whole set in memory or a second full copy on disk sorted by identity, while the index costs ~40 bytes per example
(labels, offsets, the sampler's grouping: ~40 MB for a million images) and no copy; nothing but the batches in
flight is ever decoded. The price: one read of the split at each start (LFW's 13,233 images: 0.3 s), and
random reads during training (cheap on local disks and in the page cache; a network file system would want
``make_tfrecords``). Only the ``tfrecord`` file format on a local file system is read (``array_record`` and remote
``data_dir`` are refused naming ``--data_dir``).
"""

from __future__ import annotations

import dataclasses
import logging
import mmap
import os
import struct
import time
from pathlib import Path
from typing import Iterable

import numpy as np
import tensorflow as tf

from facenet_tf.data.lfw import identity_subset
from facenet_tf.data.pipeline import augment
from facenet_tf.data.sampling import BatchComposition, IdentityBalancedSampler
from facenet_tf.data.tfrecord import decode_face

logger = logging.getLogger(__name__)

PREFIX = "tfds:"
LABEL_KINDS = ("class_label", "int", "str")


class TfdsSourceError(ValueError):
    """A tfds source that cannot be read; the message is one line naming the flag."""


def is_tfds_source(data_dir: str | os.PathLike | None) -> bool:
    """Whether ``data_dir`` is ``tfds:NAME/SPLIT``."""
    return isinstance(data_dir, str) and data_dir.startswith(PREFIX)


def parse_source(source: str) -> tuple[str, str]:
    """``tfds:NAME/SPLIT`` -> ``(NAME, SPLIT)`` (the split is after the last ``/``: NAME may hold a config)."""
    body = source[len(PREFIX):] if is_tfds_source(source) else source
    name, _, split = body.rpartition("/")
    if not name or not split:
        raise TfdsSourceError(f"--data_dir={source}: expected tfds:NAME/SPLIT, e.g. tfds:lfw_local/full.")
    return name, split


@dataclasses.dataclass(frozen=True)
class TfdsSplit:
    """An opened split: where its records are and which features hold the image and the identity."""

    source: str                        # tfds:NAME/SPLIT as given
    name: str
    split: str
    version: str
    data_dir: str
    image_feature: str
    label_feature: str
    label_kind: str                    # class_label | int | str
    class_names: tuple[str, ...] | None  # a ClassLabel's names
    image_spec: dict                   # serialized key -> tf.io feature spec of the image
    label_spec: dict                   # the same for the label
    shards: tuple[tuple[str, int, int, int], ...]  # (file, skip, take, examples in the file)

    @property
    def num_examples(self) -> int:
        return sum(take for _, _, take, _ in self.shards)


def _tfds():
    import tensorflow_datasets as tfds

    import facenet_tf.data.tfds_lfw  # noqa: F401  (registers lfw_local)

    return tfds


def _label_kind(feature, tfds) -> str | None:
    if isinstance(feature, tfds.features.ClassLabel):
        return "class_label"
    if isinstance(feature, tfds.features.Image) or not isinstance(feature, tfds.features.Tensor):
        return None
    if tuple(feature.shape) != ():
        return None
    if isinstance(feature, tfds.features.Text) or tf.as_dtype(feature.tf_dtype) == tf.string:
        return "str"
    return "int" if tf.as_dtype(feature.tf_dtype).is_integer else None


def _choose(kind: str, flag: str, chosen: str | None, candidates: list[str], supervised: Iterable[str],
            features: list[str], source: str, preferred: list[str] = ()) -> str:
    if chosen is not None:
        if chosen not in candidates:
            article = "an" if kind == "image" else "a"
            raise TfdsSourceError(f"--{flag}={chosen}: not {article} {kind} feature of {source} ({kind} features: "
                                  f"{', '.join(candidates) or 'none'}; all features: {', '.join(features)}).")
        return chosen
    if not candidates:
        raise TfdsSourceError(f"--data_dir={source}: no {kind} feature (features: {', '.join(features)}); "
                              f"name one with --{flag}." + (" A label is a ClassLabel, integer or text feature."
                                                            if kind == "label" else ""))
    for pick in ([k for k in supervised if k in candidates], list(preferred), candidates):
        if len(pick) == 1:
            return pick[0]
    raise TfdsSourceError(f"--{flag}: {source} has several {kind} features ({', '.join(candidates)}); name one.")


def open_split(source: str, data_dir: str | os.PathLike | None, image_feature: str | None = None,
               label_feature: str | None = None) -> TfdsSplit:
    """The split of ``tfds:NAME/SPLIT`` prepared under ``data_dir`` (None: tfds' default), its image and label
    features found (or named). Raises ``TfdsSourceError`` (one line naming the flag)."""
    tfds = _tfds()
    name, split = parse_source(source)
    where = str(Path(data_dir).expanduser()) if data_dir else None
    try:
        builder = tfds.builder(name, data_dir=where)
    except tfds.core.registered.DatasetNotFoundError:
        raise TfdsSourceError(f"--data_dir={source}: unknown tensorflow-datasets dataset '{name}' (not registered, "
                              f"and not prepared under '{where or '$TFDS_DATA_DIR or ~/tensorflow_datasets'}')."
                              ) from None
    except Exception as error:  # noqa: BLE001 - tfds raises many kinds for a bad name, config or version
        message = " ".join(str(error).split())[:300]
        raise TfdsSourceError(f"--data_dir={source}: tensorflow-datasets cannot open '{name}': {message}") from None
    if not builder.is_prepared():
        raise TfdsSourceError(
            f"--data_dir={source}: '{name}' {builder.version} is not prepared in '{builder.data_dir_root}' (read with "
            "download=False); prepare it first (lfw_local: python -m facenet_tf.data.tfds_lfw --manual_dir=<LFW> "
            "--data_dir=<dir>) or point --tfds_data_dir (or $TFDS_DATA_DIR) at where it is.")
    info = builder.info
    file_format = str(getattr(info.file_format, "value", info.file_format) or "tfrecord")
    if file_format != "tfrecord":
        raise TfdsSourceError(f"--data_dir={source}: stored as {file_format}; only tfds' default tfrecord format "
                              "is read (prepare it with file_format='tfrecord').")
    try:
        split_info = info.splits[split]
    except (KeyError, ValueError, AssertionError):
        raise TfdsSourceError(f"--data_dir={source}: no split '{split}' in {name} (splits: "
                              f"{', '.join(info.splits)}; slices such as {next(iter(info.splits), 'train')}[:90%] "
                              "work too).") from None
    features = info.features
    names = list(features.keys())
    supervised = list(info.supervised_keys or ()) if isinstance(info.supervised_keys, tuple) else []
    supervised = [k for k in supervised if isinstance(k, str)]
    images = [k for k in names if isinstance(features[k], tfds.features.Image)]
    image = _choose("image", "tfds_image_feature", image_feature, images, supervised, names, source)
    if np.dtype(features[image].np_dtype) != np.uint8:
        raise TfdsSourceError(f"--tfds_image_feature={image}: a {np.dtype(features[image].np_dtype)} image; "
                              "only 8-bit (encoded PNG/JPEG) images are read.")
    kinds = {k: _label_kind(features[k], tfds) for k in names if k != image}
    labels = [k for k, kind in kinds.items() if kind]
    class_labels = [k for k in labels if kinds[k] == "class_label"]
    label = _choose("label", "tfds_label_feature", label_feature, labels, supervised, names, source,
                    preferred=class_labels)
    class_names = tuple(features[label].names) if kinds[label] == "class_label" else None

    from tensorflow_datasets.core import example_parser

    serialized = features.get_serialized_info()

    def spec(key):
        return dict(example_parser.ExampleParser({key: serialized[key]}).flat_feature_specs)

    shards = []
    for instruction in split_info.file_instructions:
        path = os.fspath(instruction.filename)
        if "://" in path:
            raise TfdsSourceError(f"--data_dir={source}: '{path}' is not on a local file system; copy the prepared "
                                  "dataset to a local --tfds_data_dir.")
        shards.append((path, int(instruction.skip), int(instruction.take), int(instruction.examples_in_shard)))
    return TfdsSplit(source=source, name=name, split=split, version=str(builder.version),
                     data_dir=str(builder.data_dir_root), image_feature=image, label_feature=label,
                     label_kind=kinds[label], class_names=class_names, image_spec=spec(image), label_spec=spec(label),
                     shards=tuple(shards))


def record_offsets(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """``(offsets, lengths)`` of the records of one TFRecord file, from its framing (``uint64`` length, ``uint32``
    length CRC, data, ``uint32`` data CRC), without reading the data."""
    offsets, lengths = [], []
    with open(path, "rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        if size == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
            position = 0
            unpack = struct.Struct("<Q").unpack_from
            while position < size:
                if position + 12 > size:
                    raise ValueError(f"'{path}': truncated TFRecord header at byte {position}.")
                (length,) = unpack(data, position)
                offsets.append(position + 12)
                lengths.append(length)
                position += 12 + length + 4
            if position != size:
                raise ValueError(f"'{path}': truncated TFRecord at byte {size}.")
    return np.asarray(offsets, np.int64), np.asarray(lengths, np.int64)


@dataclasses.dataclass(frozen=True, eq=False)
class TfdsIndex:
    """Per example of a split: its identity label and where its record lies. ``names[label]`` is the identity's
    name (None for an integer label without names)."""

    split: TfdsSplit
    labels: np.ndarray    # int64
    shard: np.ndarray     # int32, into split.shards
    offsets: np.ndarray   # int64 byte offsets of the serialized examples
    lengths: np.ndarray   # int64
    names: tuple[str, ...] | None
    seconds: float = 0.0

    def __len__(self) -> int:
        return int(self.labels.size)

    def without(self, identities: Iterable[str]) -> tuple["TfdsIndex", int]:
        """This index without the examples of the named identities; and how many of those names it held."""
        identities = set(identities)
        if not identities:
            return self, 0
        if self.names is None:
            raise TfdsSourceError(f"--exclude_pairs: the label feature '{self.split.label_feature}' of "
                                  f"{self.split.source} is an integer without names, so pairs cannot be excluded by "
                                  "name; pass --exclude_pairs= or a name feature with --tfds_label_feature.")
        dropped = [label for label, name in enumerate(self.names) if name in identities]
        return self._keep(~np.isin(self.labels, dropped)), len(dropped)

    def subset(self, fraction: float, seed: int) -> "TfdsIndex":
        """The examples of a seeded, nested share of its identities (``identity_fraction``: the image tree's
        ``facenet_tf.data.lfw.identity_subset``, over the names, or the label numbers when there are none)."""
        if fraction == 1:
            return self
        by_key = {self.names[label] if self.names else str(label): label for label in np.unique(self.labels).tolist()}
        kept = [by_key[key] for key in identity_subset(by_key, fraction, seed)]
        return self._keep(np.isin(self.labels, kept))

    def _keep(self, mask: np.ndarray) -> "TfdsIndex":
        return dataclasses.replace(self, labels=self.labels[mask], shard=self.shard[mask],
                                   offsets=self.offsets[mask], lengths=self.lengths[mask])

    def counts(self) -> dict:
        _, per_identity = np.unique(self.labels, return_counts=True)
        return {"images": len(self), "identities": int(per_identity.size),
                "identities_with_2_or_more_images": int((per_identity >= 2).sum())}


def index_split(split: TfdsSplit, batch_size: int = 4096) -> TfdsIndex:
    """Reads the split once: every example's label and record position (see the module docstring)."""
    t0 = time.perf_counter()
    labels, shard_ids, offsets, lengths = [], [], [], []
    strings: dict[bytes, int] = {}
    (key, spec), = split.label_spec.items()
    for number, (path, skip, take, in_file) in enumerate(split.shards):
        where, size = record_offsets(path)
        if where.size != in_file:
            raise TfdsSourceError(f"--data_dir={split.source}: '{path}' holds {where.size} records, its dataset_info "
                                  f"says {in_file}; prepare the dataset again.")
        offsets.append(where[skip:skip + take])
        lengths.append(size[skip:skip + take])
        shard_ids.append(np.full(take, number, np.int32))
        records = tf.data.TFRecordDataset(path).skip(skip).take(take).batch(batch_size)
        for values in records.map(lambda s: tf.io.parse_example(s, {key: spec})[key],
                                  num_parallel_calls=tf.data.AUTOTUNE).as_numpy_iterator():
            if split.label_kind == "str":
                unique, inverse = np.unique(values, return_inverse=True)
                codes = np.array([strings.setdefault(bytes(u), len(strings)) for u in unique], np.int64)
                values = codes[inverse]
            labels.append(np.asarray(values, np.int64).reshape(-1))
    labels = np.concatenate(labels) if labels else np.zeros(0, np.int64)
    names = split.class_names
    if split.label_kind == "str":  # labels by sorted name, whatever order the records came in
        found = [s.decode("utf-8", "replace") for s in strings]
        order = np.argsort(found, kind="stable")
        rank = np.empty(len(found), np.int64)
        rank[order] = np.arange(len(found))
        labels = rank[labels] if labels.size else labels
        names = tuple(found[i] for i in order)
    index = TfdsIndex(split, labels, np.concatenate(shard_ids) if shard_ids else np.zeros(0, np.int32),
                      np.concatenate(offsets) if offsets else np.zeros(0, np.int64),
                      np.concatenate(lengths) if lengths else np.zeros(0, np.int64), names,
                      round(time.perf_counter() - t0, 2))
    if index.labels.size != index.offsets.size:
        raise TfdsSourceError(f"--data_dir={split.source}: {index.labels.size} labels for {index.offsets.size} "
                              "records; prepare the dataset again.")
    return index


class RecordReader:
    """Serialized examples of an index by row: ``os.pread`` at the indexed offsets (thread-safe)."""

    def __init__(self, index: TfdsIndex):
        self.index = index
        self._files = [os.open(path, os.O_RDONLY) for path, *_ in index.split.shards]

    def read(self, rows: Iterable[int]) -> list[bytes]:
        index = self.index
        return [os.pread(self._files[index.shard[r]], int(index.lengths[r]), int(index.offsets[r])) for r in rows]

    def close(self) -> None:
        for fd in self._files:
            os.close(fd)
        self._files = []

    def __del__(self):  # pragma: no cover - best effort
        try:
            self.close()
        except OSError:
            pass


def image_bytes(split: TfdsSplit, serialized: tf.Tensor) -> tf.Tensor:
    """The encoded image of each of a batch of serialized examples."""
    (key, spec), = split.image_spec.items()
    return tf.io.parse_example(serialized, {key: spec})[key]


def decode_images(index: TfdsIndex, rows: Iterable[int]) -> list[np.ndarray]:
    """The uint8 RGB images of the given rows, decoded as the training pipeline decodes them (for evaluation)."""
    reader = RecordReader(index)
    try:
        data = image_bytes(index.split, tf.constant(reader.read(rows), tf.string))
    finally:
        reader.close()
    return [tf.io.decode_image(d, channels=3, expand_animations=False).numpy() for d in data]


def tfds_training_dataset(index: TfdsIndex, input_size: tuple[int, int], composition: BatchComposition,
                          seed: int = 0, start_step: int = 0, crop_fraction: float = 1.0, jitter: float = 0.1,
                          flip: bool = True, prefetch: int = 2) -> tf.data.Dataset:
    """An endless dataset of ``(images float32 (B, H, W, 3) in 0-255, labels int32 (B,))`` batches of
    ``composition`` from an indexed split, from ``start_step``: the image tree's sampler over ``index.labels``,
    examples read by offset, decoded and augmented as ``facenet_tf.data.tfrecord`` does."""
    sampler = IdentityBalancedSampler(index.labels, composition, seed)
    reader = RecordReader(index)
    labels = index.labels.astype(np.int32)
    b = composition.batch_size
    out_h, out_w = input_size
    load_size = (round(out_h * (1 + jitter)), round(out_w * (1 + jitter)))

    def batches():
        step = start_step
        while True:
            rows = sampler.batch(step)
            yield np.array(reader.read(rows), dtype=object), labels[rows]
            step += 1

    def decode(data, label):
        return decode_face(data, load_size, crop_fraction), label

    records = tf.data.Dataset.from_generator(batches, output_signature=(
        tf.TensorSpec((b,), tf.string), tf.TensorSpec((b,), tf.int32)))
    faces = (records.map(lambda s, y: (image_bytes(index.split, s), y)).unbatch()
             .map(decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).batch(b, drop_remainder=True))

    def finish(batch, step):
        images, batch_labels = batch
        if jitter or flip:
            images = augment(images, tf.stack([tf.constant(seed, tf.int64), step]), (out_h, out_w), flip)
        else:
            images = tf.cast(images, tf.float32)
        return images, batch_labels

    steps = tf.data.Dataset.range(start_step, tf.int64.max)
    return tf.data.Dataset.zip(faces, steps).map(finish, num_parallel_calls=tf.data.AUTOTUNE).prefetch(prefetch)
