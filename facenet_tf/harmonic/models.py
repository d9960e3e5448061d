"""The two models of harmonic training: the fixed old one (``load_old_model``) and the new one's final projection
to the embedding (``head_layers``), which phase 1 re-initialises and trains alone or sets in closed form
(``set_head_linear``)."""

from __future__ import annotations

import keras
import numpy as np

from facenet_tf.models.source import ModelLoadError, load_model

EMBEDDING_LAYER = "embedding_fc"
# The final projection of each architecture family, re-initialised and trained alone in phase 1.
HEAD_LAYERS = ((EMBEDDING_LAYER,), ("Bottleneck", "Bottleneck_BatchNorm"))


def head_layers(model: keras.Model) -> tuple[str, ...]:
    """Names of ``model``'s final projection to the embedding (phase 1 trains only these)."""
    names = {layer.name for layer in model.layers}
    for head in HEAD_LAYERS:
        if set(head) <= names:
            return head
    raise ValueError(f"--harmonic_phase=embedding_layer: model '{model.name}' has no final projection layer "
                     f"(expected one of {', '.join('+'.join(h) for h in HEAD_LAYERS)}).")


def load_old_model(source: str, weights: str | None = None, flag: str = "harmonic_with",
                   **zoo_overrides) -> keras.Model:
    """The fixed old model, any spelling of ``facenet_tf.models.load_model``; frozen.
    ``flag`` names the option in errors (the same forms serve ``--init_from``)."""
    try:
        model = load_model(source, weights, **zoo_overrides).model
    except ModelLoadError as error:
        raise ValueError(f"--{flag} {error}") from None
    model.trainable = False
    return model


def copy_weights(source: keras.Model, target: keras.Model, skip: tuple[str, ...] = ()) -> int:
    """Copies every layer's weights from ``source`` into the same-named layer of ``target``; returns the count."""
    copied = 0
    for layer in target.layers:
        if layer.name in skip or not layer.weights:
            continue
        try:
            src = source.get_layer(layer.name)
        except ValueError as error:
            raise ValueError(f"--init_from model has no layer '{layer.name}': not the same architecture.") from error
        layer.set_weights(src.get_weights())
        copied += 1
    return copied


def set_head_linear(embedding: keras.Model, kernel: np.ndarray, bias: np.ndarray) -> None:
    """Sets the final projection (``head_layers``) of ``embedding`` so that, in inference mode, the model computes
    ``normalise(x @ kernel + bias)`` of the projection's input ``x``: a Dense with bias takes ``(kernel, bias)``; a
    Dense without bias followed by a batch norm (Inception-ResNet-v1's ``Bottleneck``) takes ``kernel``, and the
    batch norm becomes ``+ bias`` (moving mean 0, moving variance 1 - epsilon, offset ``bias``, scale 1 if any)."""
    head = head_layers(embedding)
    dense = embedding.get_layer(head[0])
    kernel = np.asarray(kernel, np.float32)
    bias = np.asarray(bias, np.float32)
    if len(head) == 1:
        dense.set_weights([kernel, bias])
        return
    norm = embedding.get_layer(head[1])
    if not isinstance(norm, keras.layers.BatchNormalization) or dense.use_bias:
        raise ValueError(f"unsupported final projection {head} (expected Dense without bias + BatchNormalization).")
    dense.set_weights([kernel])
    values = {"gamma": np.ones_like(bias), "beta": bias, "moving_mean": np.zeros_like(bias),
              "moving_variance": np.full_like(bias, 1.0 - norm.epsilon)}
    norm.set_weights([values[v.name] for v in norm.weights])
