"""Export (paper: serving the embedding; "128 floats ... 128 bytes"): SavedModel for servers, TFLite for phones,
and the 128-byte int8 form of the embeddings.

    from facenet_tf.export import load_model_source, export_saved_model, export_tflite, calibrate_threshold
    source = load_model_source("inception_resnet_v1", weights="msceleb")
    export_saved_model(source, "runs/exports/irv1", threshold=1.1)          # or calibrate_threshold(...)
    export_tflite(source, "runs/exports/tflite", ["float16", "int8"])

    from facenet_tf.export import quantize_embeddings, int8_squared_distances   # numpy, no TensorFlow

Modules: ``source`` (what is exported), ``saved_model``, ``tflite``, ``quantize`` (int8 embeddings),
``calibration`` (threshold and representative data), ``metadata`` (metadata JSON, atomic writes), ``evaluate``
(parity and LFW accuracy of exports), ``commands`` (what the binaries in ``export/`` run). Names are imported
lazily, so ``quantize`` and ``metadata.read_metadata`` work without loading TensorFlow.
"""

from __future__ import annotations

import importlib

_NAMES = {
    "ModelSource": "source", "ModelSourceError": "source", "load_model_source": "source",
    "from_keras_model": "source", "RANDOM_WEIGHTS": "source", "NonFiniteModelError": "source",
    "EmbeddingQuantizer": "quantize", "DEFAULT_SCALE": "quantize", "quantize_embeddings": "quantize",
    "dequantize_embeddings": "quantize", "integer_squared_distances": "quantize",
    "int8_squared_distances": "quantize", "integer_threshold": "quantize", "quantization_stats": "quantize",
    "Threshold": "calibration", "calibrate_threshold": "calibration", "calibration_images": "calibration",
    "read_metadata": "metadata", "check_pixels": "metadata",
    "export_saved_model": "saved_model", "SIGNATURES": "saved_model", "load_metadata": "saved_model",
    "export_tflite": "tflite", "convert_model": "tflite", "VARIANTS": "tflite", "TFLiteEmbeddingModel": "tflite",
    "is_tflite_export": "tflite",
    "tflite_embedder": "tflite", "embedding_parity": "tflite", "read_embedded_metadata": "metadata",
    "evaluate_tflite": "evaluate", "evaluate_int8_embeddings": "evaluate", "keras_embedder": "evaluate",
}

__all__ = sorted(_NAMES)


def __getattr__(name: str):
    if name in _NAMES:
        return getattr(importlib.import_module(f"facenet_tf.export.{_NAMES[name]}"), name)
    raise AttributeError(f"module 'facenet_tf.export' has no attribute '{name}'")
