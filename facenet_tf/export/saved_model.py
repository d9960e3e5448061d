"""SavedModel export for serving: signatures that need nothing from facenet_tf (only TensorFlow).

Signatures (H, W: the model's input size; d: the embedding size):

- ``embed_images`` (also ``serving_default``): ``images`` float32 [N, H, W, 3], RGB 0-255
  -> ``embeddings`` float32 [N, d];
- ``embed_jpeg``: ``images`` string [N], encoded JPEG/PNG face crops of any size -> ``embeddings`` float32 [N, d];
- ``verify``: ``images_a``, ``images_b`` float32 [N, H, W, 3] -> ``distances`` float32 [N] (squared L2),
  ``same`` bool [N];
- ``embed_images_int8``: ``images`` float32 [N, H, W, 3] -> ``embeddings`` int8 [N, d] (the 128-byte form);
- ``int8_distances``: ``embeddings_a``, ``embeddings_b`` int8 [N, d] -> ``integer_squared_distances`` int32 [N],
  ``squared_distances`` float32 [N], ``same`` bool [N].

Preprocessing (the model's first layer) is inside every signature. ``same`` is ``distance <= threshold`` with
the threshold stored in the SavedModel (``loaded.threshold``, a variable; also in the metadata); for int8
templates the comparison is ``integer_squared_distances <= floor(threshold * scale^2)``, exact in integers.
The int8 codes are ``clip(round(embedding * scale), -127, 127)`` with ``loaded.int8_scale``
(``facenet_tf.export.quantize``, same arithmetic in float32, so numpy and the signature agree bit for bit).

``embed_jpeg`` decodes each string (JPEG or PNG, 3 channels; grey images are expanded) and resizes it to
H×W as ``facenet_tf.align`` does: area averaging when shrinking, bilinear when enlarging, nothing when it already
has that size. Aspect ratio is not preserved, so feed aligned crops of the model's aspect ratio.

Bad inputs fail with an ``InvalidArgumentError`` that says what was expected: images of another size (the
message names the expected [N, H, W, 3] and the shape received), a dtype other than the signature's (TensorFlow
names the expected dtype), two ``verify`` batches of different sizes, and strings in ``embed_jpeg`` that are not
complete JPEG/PNG files — empty, another format or truncated (no end marker) — with their indices in the batch.
(A file that passes those checks but is corrupt inside fails in TensorFlow's decoder, without an index.)
Pixel values must be finite and in [0, 255] (``PIXEL_TOLERANCE`` outside is accepted): NaN, infinities and values
such as 1e30 fail with "input images must be finite pixel values in [0, 255]" (NaN pixels would otherwise give
finite embeddings, and ``verify`` would call a NaN image the same person as any other). Embeddings that are not
finite (a broken model) raise rather than being returned or quantised (NaN would become the code -128). An empty
batch (N = 0) gives [0, d] embeddings and [0] distances.

Metadata: ``<export>/assets/metadata.json`` (``loaded.metadata_path.asset_path`` after loading); see
``facenet_tf.export.metadata``. The export is written atomically (``write_directory_atomically``), loaded back
and checked against the Keras model before it replaces anything.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from facenet_tf.export.calibration import Threshold
from facenet_tf.atomic import write_directory_atomically
from facenet_tf.export.metadata import METADATA_FILE, PIXEL_ERROR, PIXEL_RANGE, PIXEL_TOLERANCE, base_metadata
from facenet_tf.export.quantize import DEFAULT_SCALE, QMAX, EmbeddingQuantizer
from facenet_tf.export.source import ModelSource, from_keras_model

SIGNATURES: dict[str, str] = {
    "serving_default": "= embed_images (TF Serving's default)",
    "embed_images": "images float32 [N, H, W, 3] RGB 0-255 -> embeddings float32 [N, d]",
    "embed_jpeg": "images string [N] (encoded JPEG/PNG aligned face crops, any size) -> embeddings float32 [N, d]",
    "verify": "images_a, images_b float32 [N, H, W, 3] -> distances float32 [N] (squared L2), same bool [N] "
              "(distance <= threshold)",
    "embed_images_int8": "images float32 [N, H, W, 3] -> embeddings int8 [N, d] (q = clip(round(x * scale), "
                         "-127, 127))",
    "int8_distances": "embeddings_a, embeddings_b int8 [N, d] -> integer_squared_distances int32 [N], "
                      "squared_distances float32 [N] (= integer / scale^2), same bool [N] "
                      "(integer <= floor(threshold * scale^2))",
}

_JPEG_START = (0xFF, 0xD8, 0xFF)
_JPEG_END = (0xFF, 0xD9)
_PNG_START = (0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A)
_PNG_END = (0x49, 0x45, 0x4E, 0x44)  # "IEND", the last chunk
_TAIL_BYTES = 64  # the end marker must be within the last 64 bytes (allows a little trailing padding)


def _contains(rows: tf.Tensor, pattern: tuple[int, ...]) -> tf.Tensor:
    """Per row of a uint8 [N, L] tensor: does ``pattern`` occur anywhere in it?"""
    length = rows.shape[1] - len(pattern) + 1
    found = tf.ones([tf.shape(rows)[0], length], tf.bool)
    for offset, value in enumerate(pattern):
        found = tf.logical_and(found, tf.equal(rows[:, offset:offset + length], value))
    return tf.reduce_any(found, axis=1)


def _starts_with(rows: tf.Tensor, pattern: tuple[int, ...]) -> tf.Tensor:
    return tf.reduce_all(tf.equal(rows[:, :len(pattern)], tf.constant(pattern, tf.uint8)), axis=1)


def complete_image_files(encoded: tf.Tensor) -> tf.Tensor:
    """bool [N]: which strings look like complete JPEG or PNG files (start marker, end marker near the end)."""
    length = tf.strings.length(encoded)
    head = tf.io.decode_raw(tf.strings.substr(encoded, tf.zeros_like(length), tf.fill(tf.shape(length), 8)),
                            tf.uint8, fixed_length=8)
    tail = tf.io.decode_raw(tf.strings.substr(encoded, tf.maximum(length - _TAIL_BYTES, 0),
                                              tf.fill(tf.shape(length), _TAIL_BYTES)),
                            tf.uint8, fixed_length=_TAIL_BYTES)
    jpeg = tf.logical_and(_starts_with(head, _JPEG_START), _contains(tail, _JPEG_END))
    png = tf.logical_and(_starts_with(head, _PNG_START), _contains(tail, _PNG_END))
    return tf.logical_or(jpeg, png)


def resize_like_alignment(image: tf.Tensor, size: tuple[int, int]) -> tf.Tensor:
    """float32 [H, W, 3] of one uint8 image: area averaging when shrinking, bilinear when enlarging (as
    ``facenet_tf.align.resize``), unchanged when it already has the size."""
    height, width = size
    shape = tf.shape(image)[:2]
    target = tf.constant([height, width], tf.int32)

    def same() -> tf.Tensor:
        return tf.cast(image, tf.float32)

    def shrink() -> tf.Tensor:
        return tf.image.resize(image, size, method="area")

    def enlarge() -> tf.Tensor:
        return tf.image.resize(tf.cast(image, tf.float32), size, method="bilinear")

    resized = tf.cond(tf.reduce_all(tf.equal(shape, target)), same,
                      lambda: tf.cond(tf.reduce_all(shape >= target), shrink, enlarge))
    return tf.ensure_shape(resized, [height, width, 3])


class EmbeddingServingModule(tf.Module):
    """The object that is saved: the signatures, the threshold, the int8 scale and the metadata asset.

    The Keras model is not an attribute (its functions would be saved too); the signatures close over it, and
    the variables they read are tracked explicitly so the weights are saved and TFLite can freeze them.
    """

    def __init__(self, model: keras.Model, threshold: float, int8_scale: float = DEFAULT_SCALE,
                 metadata_file: str | os.PathLike | None = None):
        super().__init__(name="facenet_embedding")
        height, width = int(model.input.shape[1]), int(model.input.shape[2])
        self._size = (height, width)
        self._dim = int(model.output.shape[-1])
        # The model is traced once; every signature calls this one function (one copy of the graph in the file).
        self._model_function = tf.function(
            lambda images: tf.cast(model(images, training=False), tf.float32),
            input_signature=[tf.TensorSpec([None, height, width, 3], tf.float32)], autograph=False)
        self.threshold = tf.Variable(float(threshold), dtype=tf.float32, trainable=False, name="threshold")
        self.int8_scale = tf.Variable(float(int8_scale), dtype=tf.float32, trainable=False, name="int8_scale")
        if metadata_file is not None:
            self.metadata_path = tf.saved_model.Asset(os.fspath(metadata_file))

        images = tf.TensorSpec([None, height, width, 3], tf.float32, name="images")
        self.embed_images = tf.function(self._embed_images, input_signature=[images])
        self.embed_jpeg = tf.function(self._embed_jpeg, input_signature=[tf.TensorSpec([None], tf.string, "images")])
        self.verify = tf.function(self._verify, input_signature=[
            tf.TensorSpec([None, height, width, 3], tf.float32, name="images_a"),
            tf.TensorSpec([None, height, width, 3], tf.float32, name="images_b")])
        self.embed_images_int8 = tf.function(self._embed_images_int8, input_signature=[images])
        self.int8_distances = tf.function(self._int8_distances, input_signature=[
            tf.TensorSpec([None, self._dim], tf.int8, name="embeddings_a"),
            tf.TensorSpec([None, self._dim], tf.int8, name="embeddings_b")])
        # Every variable any signature reads (the model's weights and the two above), tracked by the module.
        used: dict[int, tf.Variable] = {}
        for function in self.signature_functions().values():
            for variable in function.get_concrete_function().variables:
                used[id(variable)] = variable
        self.used_variables = list(used.values())

    def signature_functions(self) -> dict[str, tf.types.experimental.PolymorphicFunction]:
        return {"serving_default": self.embed_images, "embed_images": self.embed_images,
                "embed_jpeg": self.embed_jpeg, "verify": self.verify, "embed_images_int8": self.embed_images_int8,
                "int8_distances": self.int8_distances}

    # ------------------------------------------------------------------------------------------------ checks

    def _check_images(self, images: tf.Tensor, signature: str, argument: str) -> tf.Tensor:
        """``images`` after assertions that its shape is [N, H, W, 3] and that every value is a finite pixel
        value in ``PIXEL_RANGE`` (+- ``PIXEL_TOLERANCE``): NaN would otherwise give finite embeddings."""
        height, width = self._size
        shape = tf.shape(images)
        padded = tf.concat([shape, tf.zeros([4], tf.int32)], axis=0)[:4]
        ok = tf.logical_and(tf.equal(tf.size(shape), 4),
                            tf.reduce_all(tf.equal(padded[1:], tf.constant([height, width, 3]))))
        check_shape = tf.debugging.Assert(ok, [
            f"{signature}: '{argument}' must be float32 RGB images (0-255) of shape [N, {height}, {width}, 3]; "
            "got shape", shape], summarize=8)
        low, high = PIXEL_RANGE
        in_range = tf.logical_and(images >= low - PIXEL_TOLERANCE, images <= high + PIXEL_TOLERANCE)  # NaN: False
        bad = tf.size(images, out_type=tf.int64) - tf.math.count_nonzero(in_range, dtype=tf.int64)
        check_values = tf.debugging.Assert(tf.equal(bad, 0), [
            f"{signature}: '{argument}': {PIXEL_ERROR}; values that are NaN, infinite or out of range:", bad])
        with tf.control_dependencies([check_shape, check_values]):
            return tf.identity(images)

    def _check_codes(self, codes: tf.Tensor, argument: str) -> tf.Tensor:
        shape = tf.shape(codes)
        padded = tf.concat([shape, tf.zeros([2], tf.int32)], axis=0)[:2]
        ok = tf.logical_and(tf.equal(tf.size(shape), 2), tf.equal(padded[1], self._dim))
        check = tf.debugging.Assert(ok, [
            f"int8_distances: '{argument}' must be int8 embeddings of shape [N, {self._dim}]; got shape", shape],
            summarize=8)
        with tf.control_dependencies([check]):
            return tf.identity(codes)

    @staticmethod
    def _check_same_batch(a: tf.Tensor, b: tf.Tensor, signature: str, names: tuple[str, str]) -> tf.Operation:
        size_a, size_b = tf.shape(a)[0], tf.shape(b)[0]
        return tf.debugging.Assert(tf.equal(size_a, size_b), [
            f"{signature}: '{names[0]}' and '{names[1]}' must hold the same number of items; got", size_a, "and",
            size_b])

    # ------------------------------------------------------------------------------------------- signatures

    def _embed(self, images: tf.Tensor) -> tf.Tensor:
        """float32 [N, d]; an empty batch gives [0, d] without running the model (oneDNN rejects N = 0), and
        non-finite embeddings (a broken model) raise instead of being returned."""
        embeddings = tf.cond(tf.shape(images)[0] > 0, lambda: self._model_function(images),
                             lambda: tf.zeros([0, self._dim], tf.float32))
        return tf.debugging.assert_all_finite(embeddings, "the model gave NaN or infinite embeddings")

    def _quantize(self, embeddings: tf.Tensor) -> tf.Tensor:
        """int8 codes; NaN would silently become -128, so non-finite embeddings raise."""
        embeddings = tf.debugging.assert_all_finite(embeddings, "int8 quantisation: embeddings must be finite")
        scaled = tf.round(embeddings * self.int8_scale)
        return tf.cast(tf.clip_by_value(scaled, -QMAX, QMAX), tf.int8)

    def _embed_images(self, images: tf.Tensor) -> dict[str, tf.Tensor]:
        return {"embeddings": self._embed(self._check_images(images, "embed_images", "images"))}

    def _embed_images_int8(self, images: tf.Tensor) -> dict[str, tf.Tensor]:
        embeddings = self._embed(self._check_images(images, "embed_images_int8", "images"))
        return {"embeddings": self._quantize(embeddings)}

    def _embed_jpeg(self, encoded: tf.Tensor) -> dict[str, tf.Tensor]:
        height, width = self._size
        valid = complete_image_files(encoded)
        bad = tf.reshape(tf.where(tf.logical_not(valid)), [-1])
        check = tf.debugging.Assert(tf.reduce_all(valid), [
            "embed_jpeg: the strings at these batch indices are not complete JPEG or PNG files (empty, another "
            "format, or truncated):", bad], summarize=32)
        with tf.control_dependencies([check]):
            encoded = tf.identity(encoded)

        def decode(data: tf.Tensor) -> tf.Tensor:
            image = tf.io.decode_image(data, channels=3, dtype=tf.uint8, expand_animations=False)
            return resize_like_alignment(image, (height, width))

        images = tf.map_fn(decode, encoded, fn_output_signature=tf.TensorSpec([height, width, 3], tf.float32))
        return {"embeddings": self._embed(images)}

    def _verify(self, images_a: tf.Tensor, images_b: tf.Tensor) -> dict[str, tf.Tensor]:
        images_a = self._check_images(images_a, "verify", "images_a")
        images_b = self._check_images(images_b, "verify", "images_b")
        with tf.control_dependencies([self._check_same_batch(images_a, images_b, "verify",
                                                             ("images_a", "images_b"))]):
            both = self._embed(tf.concat([images_a, images_b], axis=0))
        a, b = tf.split(both, 2, axis=0)
        distances = tf.reduce_sum(tf.square(a - b), axis=1)
        return {"distances": distances, "same": distances <= self.threshold}

    def _int8_distances(self, embeddings_a: tf.Tensor, embeddings_b: tf.Tensor) -> dict[str, tf.Tensor]:
        a = self._check_codes(embeddings_a, "embeddings_a")
        b = self._check_codes(embeddings_b, "embeddings_b")
        with tf.control_dependencies([self._check_same_batch(a, b, "int8_distances",
                                                             ("embeddings_a", "embeddings_b"))]):
            difference = tf.cast(a, tf.int32) - tf.cast(b, tf.int32)
        integer = tf.reduce_sum(difference * difference, axis=1)
        scale = tf.cast(self.int8_scale, tf.float64)
        integer_threshold = tf.cast(tf.floor(tf.cast(self.threshold, tf.float64) * scale * scale), tf.int32)
        squared = tf.cast(tf.cast(integer, tf.float64) / (scale * scale), tf.float32)
        return {"integer_squared_distances": integer, "squared_distances": squared,
                "same": integer <= integer_threshold}


@dataclasses.dataclass(frozen=True)
class SavedModelExport:
    path: Path
    metadata: dict[str, Any]

    @property
    def metadata_file(self) -> Path:
        return self.path / "assets" / METADATA_FILE


def saved_model_metadata(source: ModelSource, threshold: Threshold, int8_scale: float) -> dict[str, Any]:
    quantizer = EmbeddingQuantizer(int8_scale)
    metadata = base_metadata(source, "saved_model")
    metadata["threshold"] = threshold.to_dict()
    metadata["int8_embeddings"] = {**quantizer.describe(),
                                   "integer_threshold": quantizer.integer_threshold(threshold.value),
                                   "signature": "embed_images_int8", "distance_signature": "int8_distances"}
    metadata["signatures"] = SIGNATURES
    metadata["loading"] = ("tf.saved_model.load(path).signatures['embed_images'](images=...)['embeddings']; "
                           "keras.layers.TFSMLayer(path, call_endpoint='serving_default'); needs only TensorFlow")
    return metadata


def check_saved_model(path: str | os.PathLike, model: ModelSource | keras.Model, atol: float = 1e-4) -> float:
    """Loads the export at ``path`` and compares ``embed_images`` with ``model`` on its check batch
    (``ModelSource.check_images``); returns the largest absolute difference. Raises ``NonFiniteModelError``
    when the model's own embeddings are not finite, ``RuntimeError`` above ``atol`` or when a signature is
    missing."""
    source = model if isinstance(model, ModelSource) else from_keras_model(model)
    expected = source.check_embeddings()
    loaded = tf.saved_model.load(os.fspath(path))
    missing = sorted(set(SIGNATURES) - set(loaded.signatures))
    if missing:
        raise RuntimeError(f"the SavedModel written to '{path}' lacks the signatures {missing}")
    images = source.check_images()
    got = loaded.signatures["embed_images"](images=tf.constant(images))["embeddings"].numpy()
    difference = float(np.abs(got - expected).max())
    if not difference <= atol:
        raise RuntimeError(f"the SavedModel written to '{path}' differs from the Keras model by {difference:g} "
                           f"(> {atol:g})")
    return difference


def export_saved_model(source: ModelSource | keras.Model, export_dir: str | os.PathLike,
                       threshold: Threshold | float, int8_scale: float = DEFAULT_SCALE, overwrite: bool = False,
                       check: bool = True) -> SavedModelExport:
    """Writes the serving SavedModel of ``source`` to ``export_dir`` atomically and returns its path and metadata.

    ``threshold``: a :class:`Threshold` (e.g. from ``calibrate_threshold``) or a number (recorded as given).
    ``overwrite``: replace an existing export (only a previous SavedModel or an empty directory is replaced).
    ``check``: load the written SavedModel and compare it with the Keras model before it goes into place.
    A model whose embeddings of the check batch are not finite raises ``NonFiniteModelError`` before anything
    is written.
    """
    if not isinstance(source, ModelSource):
        source = from_keras_model(source)
    if not isinstance(threshold, Threshold):
        threshold = Threshold(float(threshold))
    metadata = saved_model_metadata(source, threshold, int8_scale)
    source.check_embeddings()  # a model giving NaN is refused before anything is written

    def write(tmp: Path) -> None:
        with tempfile.TemporaryDirectory(prefix="facenet_tf_metadata_") as scratch:
            metadata_file = Path(scratch) / METADATA_FILE
            metadata_file.write_text(json.dumps(metadata, indent=2) + "\n")
            module = EmbeddingServingModule(source.model, threshold.value, int8_scale, metadata_file)
            signatures = {name: function.get_concrete_function()
                          for name, function in module.signature_functions().items()}
            tf.saved_model.save(module, os.fspath(tmp), signatures=signatures)
        if check:
            check_saved_model(tmp, source)

    path = write_directory_atomically(export_dir, write, overwrite=overwrite,
                                      replaceable=lambda target: (target / "saved_model.pb").is_file(),
                                      what="a SavedModel export")
    return SavedModelExport(path, metadata)


def load_metadata(loaded: Any) -> dict[str, Any]:
    """The metadata of a loaded export (``tf.saved_model.load``), through its ``metadata_path`` asset."""
    path = loaded.metadata_path.asset_path.numpy().decode()
    return json.loads(Path(path).read_text())
