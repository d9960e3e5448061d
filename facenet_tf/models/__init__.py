"""The FaceNet model zoo. ``create_model(name)`` builds any network in ``list_models()``."""

from facenet_tf.models import layers  # noqa: F401  (registers the custom layers for .keras loading)
from facenet_tf.models.complexity import count_flops, count_params, layer_costs
from facenet_tf.models.folding import fold_batch_norm, frozen_function
from facenet_tf.models.registry import ModelSpec, create_model, get_spec, list_models
from facenet_tf.models.source import LoadedModel, ModelLoadError, load_model

__all__ = ["ModelSpec", "create_model", "get_spec", "list_models", "count_params", "count_flops", "layer_costs",
           "fold_batch_norm", "frozen_function", "load_model", "LoadedModel", "ModelLoadError"]
