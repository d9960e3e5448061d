"""Fixtures for the export tests: a tiny zoo model (nns2 at 64×64, 16-D) and face-like smooth test images."""

from __future__ import annotations

import numpy as np
import pytest

TINY_SHAPE = (64, 64, 3)
TINY_DIM = 16


def smooth_images(n: int, shape=TINY_SHAPE, seed: int = 0, full_range: bool = True) -> np.ndarray:
    """float32 images in 0-255 made of upsampled 8×8 noise: smooth like photos (JPEG-friendly), and, with
    ``full_range``, each one stretched to span exactly 0..255 (as real aligned faces do)."""
    import cv2

    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        small = rng.uniform(0, 255, (8, 8, 3)).astype(np.float32)
        image = cv2.resize(small, (shape[1], shape[0]), interpolation=cv2.INTER_CUBIC)
        if full_range:
            image = (image - image.min()) / (image.max() - image.min()) * 255.0
        out.append(np.clip(np.round(image), 0, 255))
    return np.stack(out).astype(np.float32)


@pytest.fixture(scope="session")
def tiny_model():
    """Random weights, seeded: the int8 parity of a random network varies with its weights (min cosine 0.979-0.995
    over seeds 0-5 on these images), so the tests see one fixed network."""
    import keras

    from facenet_tf.models import create_model

    keras.utils.set_random_seed(0)
    return create_model("nns2", embedding_dim=TINY_DIM, input_shape=TINY_SHAPE)


@pytest.fixture(scope="session")
def tiny_images() -> np.ndarray:
    return smooth_images(6, seed=123)


def build_micro_model(shape=TINY_SHAPE, dim: int = TINY_DIM):
    """A few-layer embedding model with the zoo's conventions (Rescaling first, L2Normalize last): exports in
    seconds, for tests about files rather than numerics."""
    import keras

    from facenet_tf.models.layers import L2Normalize

    inputs = keras.Input(shape)
    x = keras.layers.Rescaling(1 / 127.5, offset=-1.0)(inputs)
    x = keras.layers.Conv2D(8, 3, strides=2, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dense(dim)(x)
    return keras.Model(inputs, L2Normalize()(x), name="micro")


@pytest.fixture(scope="session")
def micro_model():
    import keras

    keras.utils.set_random_seed(1)
    return build_micro_model()


def nan_weight_model(model):
    """A copy of ``model`` with one NaN weight in its last Dense kernel (what a diverged training run leaves)."""
    import keras

    clone = keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    dense = [layer for layer in clone.layers if isinstance(layer, keras.layers.Dense)][-1]
    kernel, bias = dense.get_weights()
    kernel[0, 0] = np.nan
    dense.set_weights([kernel, bias])
    return clone
