"""The custom layers against direct numpy computations of their definitions."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from facenet_tf.models.layers import (L2Normalize, L2Pooling, LocalResponseNormalization, Maxout, Prewhiten,
                                      ScaledResidual)

RNG = np.random.default_rng(0)


def test_l2_normalize_unit_norm_and_zero_vector():
    x = RNG.normal(size=(4, 7)).astype("float32")
    x[2] = 0.0
    y = L2Normalize()(x).numpy()
    np.testing.assert_allclose(np.linalg.norm(y[[0, 1, 3]], axis=1), 1.0, atol=1e-6)
    np.testing.assert_array_equal(y[2], 0.0)
    with tf.GradientTape() as tape:
        xt = tf.constant(x)
        tape.watch(xt)
        out = tf.reduce_sum(L2Normalize()(xt))
    assert np.isfinite(tape.gradient(out, xt).numpy()).all()


def test_l2_normalize_float16_input_returns_float32():
    y = L2Normalize()(np.ones((2, 4), "float16"))
    assert y.dtype == tf.float32
    np.testing.assert_allclose(y.numpy(), 0.5)


def test_l2_pooling_matches_numpy():
    x = RNG.normal(size=(1, 5, 5, 2)).astype("float32")
    y = L2Pooling(3, 1, epsilon=0.0)(x).numpy()
    # interior position (2, 2): all 9 neighbours present; border (0, 0): 4 neighbours ('same' padding).
    np.testing.assert_allclose(y[0, 2, 2], np.sqrt((x[0, 1:4, 1:4] ** 2).mean(axis=(0, 1))), rtol=1e-5)
    np.testing.assert_allclose(y[0, 0, 0], np.sqrt((x[0, 0:2, 0:2] ** 2).mean(axis=(0, 1))), rtol=1e-5)
    assert L2Pooling(3, 2)(x).shape == (1, 3, 3, 2)


def test_l2_pooling_gradient_finite_at_zero():
    x = tf.zeros((1, 4, 4, 1))
    with tf.GradientTape() as tape:
        tape.watch(x)
        out = tf.reduce_sum(L2Pooling()(x))
    assert np.isfinite(tape.gradient(out, x).numpy()).all()


def test_lrn_matches_definition():
    """The TensorFlow kernel (TF backend) and the keras.ops version other backends use both follow the formula."""
    x = RNG.normal(size=(1, 2, 2, 7)).astype("float32") * 10
    layer = LocalResponseNormalization(depth_radius=2, bias=1.0, alpha=1e-2, beta=0.75)
    for y in (layer(x).numpy(), np.asarray(layer.normalise_with_ops(tf.constant(x)))):
        for c in range(7):
            lo, hi = max(0, c - 2), min(7, c + 3)
            expected = x[..., c] / (1.0 + 1e-2 / 5 * (x[..., lo:hi] ** 2).sum(-1)) ** 0.75
            np.testing.assert_allclose(y[..., c], expected, rtol=1e-5)


def test_maxout_pairs():
    x = np.array([[1.0, 5.0, -2.0, -3.0, 0.5, 0.25]], "float32")
    np.testing.assert_array_equal(Maxout(2)(x).numpy(), [[5.0, -2.0, 0.5]])
    np.testing.assert_array_equal(Maxout(3)(x).numpy(), [[5.0, 0.5]])
    with pytest.raises(ValueError, match="multiple of pool_size"):
        Maxout(4)(x)


def test_prewhiten_matches_formula():
    x = RNG.uniform(0, 255, size=(2, 4, 4, 3)).astype("float32")
    x[1] = 7.0  # constant image: std 0 -> divided by 1/sqrt(size)
    y = Prewhiten()(x).numpy()
    for i in range(2):
        std = max(x[i].std(), 1.0 / np.sqrt(x[i].size))
        np.testing.assert_allclose(y[i], (x[i] - x[i].mean()) / std, rtol=1e-4, atol=1e-5)


def test_scaled_residual():
    a, b = np.ones((1, 3), "float32"), np.full((1, 3), 2.0, "float32")
    np.testing.assert_allclose(ScaledResidual(0.17)([a, b]).numpy(), 1.34)


@pytest.mark.parametrize("layer", [L2Normalize(axis=-1, epsilon=1e-8), L2Pooling(3, 2), Maxout(2),
                                   LocalResponseNormalization(alpha=2e-4), Prewhiten(), ScaledResidual(0.2)])
def test_config_round_trip(layer):
    config = keras.saving.serialize_keras_object(layer)
    clone = keras.saving.deserialize_keras_object(config)
    assert type(clone) is type(layer)
    assert clone.get_config() == layer.get_config()
