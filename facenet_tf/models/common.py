"""Building blocks shared by the paper's networks: the preprocessing input, conv + ReLU, the embedding head."""

from __future__ import annotations

import keras

from facenet_tf.models.layers import L2Normalize, Maxout, Prewhiten

KNOWN_PREPROCESSING = ("scale", "prewhiten")


def image_input(input_shape: tuple[int, int, int], preprocessing: str = "scale"):
    """The model input (float32 RGB pixel values in 0-255) and the preprocessed tensor.

    ``scale`` maps to [-1, 1] (paper models, trained from scratch); ``prewhiten`` standardises each image
    (the open-source FaceNet models).
    """
    inputs = keras.Input(shape=input_shape, dtype="float32", name="image")
    if preprocessing == "scale":
        x = keras.layers.Rescaling(1.0 / 127.5, offset=-1.0, name="preprocess")(inputs)
    elif preprocessing == "prewhiten":
        x = Prewhiten(name="preprocess")(inputs)
    else:
        raise ValueError(f"preprocessing must be one of {KNOWN_PREPROCESSING}, got {preprocessing!r}.")
    return inputs, x


def conv(x, filters: int, kernel: int, name: str, strides: int = 1, batch_norm: bool = False):
    """Convolution ('same' padding) + optional batch norm + ReLU (the paper uses ReLU throughout).

    Batch norm: :func:`batch_norm_layer` (``synchronized`` under TensorFlow)."""
    x = keras.layers.Conv2D(filters, kernel, strides=strides, padding="same", use_bias=not batch_norm,
                            name=name)(x)
    if batch_norm:
        x = batch_norm_layer(f"{name}.bn")(x)
    return keras.layers.ReLU(name=f"{name}.relu")(x)


def batch_norm_layer(name: str) -> keras.layers.BatchNormalization:
    """Batch norm of the paper's nets, ``synchronized`` under the TensorFlow backend: under a ``tf.distribute``
    strategy its statistics are those of the global batch, matching the triplet mining, which also sees the global
    batch (no effect on one device). Keras allows ``synchronized`` on TensorFlow only, so under another backend
    (JAX: ``facenet_tf.harmonic.jax_runner``, one device) it is off; the weights are the same either way."""
    return keras.layers.BatchNormalization(epsilon=1e-3, synchronized=keras.backend.backend() == "tensorflow",
                                           name=name)


def maxout_fc(x, units: int, name: str, pool_size: int = 2, batch_norm: bool = False):
    """A fully connected layer with maxout (paper Table 1, fc1/fc2: "maxout p=2"): Dense(units*p) -> max over p."""
    x = keras.layers.Dense(units * pool_size, use_bias=not batch_norm, name=name)(x)
    if batch_norm:
        x = batch_norm_layer(f"{name}.bn")(x)
    return Maxout(pool_size, name=f"{name}.maxout")(x)


def embedding_head(x, embedding_dim: int, name: str = "embedding_fc"):
    """The final fully connected projection to ``embedding_dim`` and L2 normalisation (paper, "The embedding")."""
    x = keras.layers.Dense(embedding_dim, name=name)(x)
    return L2Normalize(name="embedding")(x)


def check_overrides(model_name: str, overrides: dict, allowed: tuple[str, ...]) -> None:
    unknown = sorted(set(overrides) - set(allowed))
    if unknown:
        raise TypeError(f"Model '{model_name}' got unknown override(s) {unknown}; valid overrides: "
                        f"{', '.join(allowed)}.")


def non_finite_weights(model: keras.Model) -> tuple[int, int]:
    """``(non-finite values, all values)`` over the model's weights: a model with any NaN or infinite weight is
    broken, even where an activation hides it (oneDNN's fused ReLU maps NaN to 0, so such a model can still give
    finite, meaningless embeddings)."""
    import numpy as np

    values = [np.asarray(w) for w in model.weights]
    return sum(int(np.count_nonzero(~np.isfinite(v))) for v in values), sum(v.size for v in values)
