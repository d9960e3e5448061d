"""The metadata every export carries, and writing exports atomically.

Metadata is one JSON object (``metadata_version`` 1): model name, source, input (size, dtype, range, colour
order), embedding size, preprocessing, threshold, the 128-byte form, versions and export time. Where it lives:

- SavedModel: the asset ``<export>/assets/metadata.json``. After ``loaded = tf.saved_model.load(export)``,
  ``loaded.metadata_path.asset_path`` is its path (a string tensor); without TensorFlow just read the file.
- TFLite: ``<name>.json`` beside ``<name>.tflite``, and the same JSON inside the flatbuffer as the model
  metadata entry ``facenet_tf_metadata`` (:func:`read_embedded_metadata`).

``read_metadata(path)`` reads it from a SavedModel directory, a ``.tflite`` file or a ``.json`` file.

Atomic writes (``facenet_tf.atomic.write_directory_atomically``): an export folder (SavedModel, or all the TFLite
variants together) is written into a hidden temporary sibling (``.<name>.tmp-<random>``) and swapped into place
only when complete and checked; the previous export is deleted only after the swap. A failure at any point
removes the temporary folder and leaves the old export as it was; what a killed run leaves is removed by the next.

The input contract: float RGB pixel values in ``PIXEL_RANGE`` [0, 255]; every export rejects NaN, infinities and
values further than ``PIXEL_TOLERANCE`` outside with ``PIXEL_ERROR`` (``check_pixels`` is the numpy check).
"""

from __future__ import annotations

import datetime
import json
import os
from pathlib import Path
from typing import Any

from facenet_tf.export.source import PREPROCESSING, ModelSource

METADATA_FILE = "metadata.json"
METADATA_VERSION = 1
#: Name of the metadata entry embedded in .tflite flatbuffers.
TFLITE_METADATA_NAME = "facenet_tf_metadata"
#: The pixel values every export takes (float RGB); values up to ``PIXEL_TOLERANCE`` outside are accepted
#: (resampling overshoot), NaN, infinities and anything further out are rejected with ``PIXEL_ERROR``.
PIXEL_RANGE = (0.0, 255.0)
PIXEL_TOLERANCE = 1.0
PIXEL_ERROR = "input images must be finite pixel values in [0, 255]"


def check_pixels(images: Any) -> None:
    """Raises ``ValueError`` (``PIXEL_ERROR``, with how many values are not) when ``images`` holds a NaN, an
    infinity or a value outside ``PIXEL_RANGE`` +- ``PIXEL_TOLERANCE``; numpy, no TensorFlow."""
    import numpy as np

    values = np.asarray(images)
    low, high = PIXEL_RANGE
    ok = (values >= low - PIXEL_TOLERANCE) & (values <= high + PIXEL_TOLERANCE)
    if not ok.all():
        raise ValueError(f"{PIXEL_ERROR}; {values.size - int(np.count_nonzero(ok))} of {values.size} values are "
                         "NaN, infinite or out of range")


def base_metadata(source: ModelSource, export_format: str) -> dict[str, Any]:
    """The fields every export's metadata has (the export adds its own: threshold, signatures, variant ...)."""
    import keras
    import tensorflow as tf

    import facenet_tf

    height, width = source.input_size
    return {
        "metadata_version": METADATA_VERSION,
        "format": export_format,
        "model": source.name,
        "source": source.describe(),
        "input": {"height": height, "width": width, "channels": 3, "layout": "NHWC", "dtype": "float32",
                  "range": list(PIXEL_RANGE), "color_order": "RGB",
                  "content": "an aligned face crop (facenet_tf.align, centre or detect mode)"},
        "embedding_size": source.embedding_size,
        "embedding": "L2-normalised float32; compare two faces by squared L2 distance",
        "preprocessing": {"name": source.preprocessing, "formula": PREPROCESSING[source.preprocessing],
                          "inside_model": True},
        "facenet_tf_version": facenet_tf.__version__,
        "tensorflow_version": tf.__version__,
        "keras_version": keras.__version__,
        "exported_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def read_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The metadata of an export: a SavedModel directory, a ``.tflite`` file (the JSON beside it, else the
    embedded copy) or the ``.json`` file itself."""
    path = Path(path)
    if path.is_dir():
        candidate = path / "assets" / METADATA_FILE
        if not candidate.is_file():
            raise FileNotFoundError(f"'{path}' has no {candidate.relative_to(path)}: not a facenet-tf SavedModel")
        return json.loads(candidate.read_text())
    if path.suffix == ".tflite":
        sidecar = path.with_suffix(".json")
        if sidecar.is_file():
            return json.loads(sidecar.read_text())
        embedded = read_embedded_metadata(path)
        if embedded is None:
            raise FileNotFoundError(f"'{path}' has neither '{sidecar.name}' beside it nor embedded metadata")
        return embedded
    if path.suffix == ".json" and path.is_file():
        return json.loads(path.read_text())
    raise FileNotFoundError(f"'{path}' is not a SavedModel directory, a .tflite file or a metadata .json file")


def tflite_text(value) -> str:
    """A flatbuffer string field (bytes or str) as text."""
    return value.decode() if isinstance(value, bytes) else str(value)


def read_embedded_metadata(model: str | os.PathLike | bytes, name: str = TFLITE_METADATA_NAME) -> dict | None:
    """The JSON metadata entry ``name`` of a .tflite file (or its bytes), or None when it has none (read with
    ``ai_edge_litert``'s flatbuffer schema, no interpreter)."""
    from ai_edge_litert import schema_py_generated as schema

    data = model if isinstance(model, (bytes, bytearray)) else Path(model).read_bytes()
    root = schema.Model.GetRootAs(data, 0)
    for j in range(root.MetadataLength()):
        entry = root.Metadata(j)
        if tflite_text(entry.Name()) == name:
            return json.loads(root.Buffers(entry.Buffer()).DataAsNumpy().tobytes().decode())
    return None
