"""The model zoo: one table of the paper's networks (input size, params, FLOPS) and ``create_model``.

The table cites the paper (../shared/PAPER.md: Table 1 for NN1, Table 2 for NN2, the text of section 4 for the
rest). Builders live in one module per family and are imported lazily, so importing the registry is cheap.
"""

from __future__ import annotations

import dataclasses
import importlib
from typing import Any, Callable

import keras


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """One zoo entry. ``paper_params``/``paper_flops`` are the paper's figures (None where it gives none);
    params are weights without biases and FLOPS are multiply-adds, as the paper counts them."""

    name: str
    input_shape: tuple[int, int, int]
    description: str
    builder: str                      # "module:function" taking (input_shape, embedding_dim, **overrides)
    min_input_size: int               # smallest height/width the architecture takes
    paper_params: float | None = None
    paper_flops: float | None = None
    paper_source: str = ""
    preprocessing: str = "scale"      # "scale": x/127.5 - 1;  "prewhiten": per-image standardisation
    weights_loader: str | None = None  # "module:function" taking (model, weights) for non-Keras weight files

    def build_fn(self) -> Callable[..., keras.Model]:
        return _import(self.builder)


def _import(target: str):
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


_INCEPTION = "facenet_tf.models.inception"

_SPECS: dict[str, ModelSpec] = {s.name: s for s in [
    ModelSpec("nn1", (220, 220, 3), "Zeiler&Fergus-based, 1x1 convolutions, LRN, maxout fully connected layers",
              "facenet_tf.models.zeiler_fergus:build_nn1", 32, 140e6, 1.6e9, "Table 1"),
    ModelSpec("nn2", (224, 224, 3), "Inception (GoogLeNet-style) with L2 pooling, stride-2 modules 3c and 4e",
              f"{_INCEPTION}:build_nn2", 32, 7.5e6, 1.6e9, "Table 2"),
    ModelSpec("nn3", (160, 160, 3), "NN2 at 160x160 input", f"{_INCEPTION}:build_nn3", 32, 7.5e6, None,
              "Section 4 (as NN2, smaller input)"),
    ModelSpec("nn4", (96, 96, 3), "NN2-like at 96x96, no 5x5 convolutions in the higher layers",
              f"{_INCEPTION}:build_nn4", 32, None, 285e6, "Section 4"),
    ModelSpec("nns1", (165, 165, 3), "mini Inception: narrow Inception trunk + maxout fully connected head",
              f"{_INCEPTION}:build_nns1", 32, 26e6, 220e6, "Section 4"),
    ModelSpec("nns2", (140, 116, 3), "tiny Inception for phones: very narrow trunk + maxout head",
              f"{_INCEPTION}:build_nns2", 32, 4.3e6, 20e6, "Section 4"),
    ModelSpec("inception_resnet_v1", (160, 160, 3),
              "Inception-ResNet-v1 as in the open-source FaceNet models; pretrained on MS-Celeb-1M",
              "facenet_tf.models.inception_resnet:build_inception_resnet_v1", 75, None, None,
              "Szegedy et al. 2016; davidsandberg/facenet", preprocessing="prewhiten",
              weights_loader="facenet_tf.models.pretrained:load_pretrained_weights"),
]}


def list_models() -> list[str]:
    """Names of every model in the zoo, in the paper's order."""
    return list(_SPECS)


def get_spec(name: str) -> ModelSpec:
    """The zoo entry for ``name``; an unknown name raises ``ValueError`` listing the valid names."""
    try:
        return _SPECS[name]
    except KeyError:
        raise ValueError(f"Unknown model '{name}'. Valid names: {', '.join(_SPECS)}.") from None


def validate_input_shape(spec: ModelSpec, input_shape) -> tuple[int, int, int]:
    """Checks that ``input_shape`` is (height, width, 3) with both sides >= the architecture's minimum."""
    shape = tuple(input_shape)
    ok = (len(shape) == 3 and all(isinstance(d, int) for d in shape) and shape[2] == 3
          and shape[0] >= spec.min_input_size and shape[1] >= spec.min_input_size)
    if not ok:
        raise ValueError(
            f"Model '{spec.name}' cannot take input_shape={input_shape!r}: it takes (height, width, 3) RGB images "
            f"with height and width >= {spec.min_input_size} (its paper size is {spec.input_shape}).")
    return shape


def create_model(name: str, embedding_dim: int = 128, input_shape=None, weights: str | None = None,
                 **overrides: Any) -> keras.Model:
    """Builds a zoo model: float32 RGB images (0-255) -> L2-normalised embeddings (batch, embedding_dim).

    Preprocessing is the model's first layer, so callers feed raw pixel values. ``overrides`` are passed to the
    builder (e.g. ``batch_norm=True``); an override given as ``None`` keeps the builder's default. ``weights`` is
    a ``.keras``/``.weights.h5`` file for zoo-trained weights, or what the spec's weights loader understands
    (for ``inception_resnet_v1``: ``"msceleb"`` or the path of ``facenet_keras.h5``).
    """
    spec = get_spec(name)
    if not isinstance(embedding_dim, int) or embedding_dim < 1:
        raise ValueError(f"embedding_dim must be a positive integer, got {embedding_dim!r}.")
    shape = validate_input_shape(spec, spec.input_shape if input_shape is None else input_shape)
    overrides = {k: v for k, v in overrides.items() if v is not None}
    model = spec.build_fn()(input_shape=shape, embedding_dim=embedding_dim, **overrides)
    if weights is not None:
        if spec.weights_loader is not None:
            _import(spec.weights_loader)(model, weights)
        else:
            model.load_weights(weights)
    return model
