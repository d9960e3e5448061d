"""The keras.ops harmonic loss (facenet_tf.portable.losses) against the loop reference and the TensorFlow loss."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import assume, given
from hypothesis import strategies as st

from facenet_tf.losses import harmonic_triplet_loss_with_metrics as tf_harmonic
from facenet_tf.portable import losses as portable
from tests.losses.test_harmonic import SETTINGS, TOLERANCE, harmonic_batches, harmonic_reference

METRICS = ("loss", "num_triplets", "num_pairs", "fraction_active", "mean_positive_distance",
           "mean_negative_distance", "fraction_semi_hard_found", "mean_same_image_distance")


def run_portable(labels, new, old, max_positives, **kwargs):
    new_t, old_t = tf.constant(new), tf.constant(old)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch([new_t, old_t])
        metrics = portable.harmonic_triplet_loss_with_metrics(tf.constant(labels), new_t, old_t, max_positives,
                                                              **kwargs)
    gradient = tape.gradient(metrics["loss"], new_t)
    old_gradient = tape.gradient(metrics["loss"], old_t)
    assert old_gradient is None or not np.any(old_gradient.numpy())  # the old model is fixed
    return {k: np.asarray(v) for k, v in metrics.items()}, np.asarray(gradient)


@given(batch=harmonic_batches(), fallback=st.sampled_from(["farthest", "skip"]),
       reduction=st.sampled_from(["mean_over_pairs", "mean_over_active"]),
       candidates=st.sampled_from(["both", "old"]), same_image_weight=st.sampled_from([0.0, 0.5, 2.0]))
@SETTINGS
def test_matches_reference(batch, fallback, reduction, candidates, same_image_weight):
    labels, new, old, margin = batch
    labels = (labels % 1000).astype(np.int32)  # int32 ids; the offsets of harmonic_batches keep the grouping
    expected = harmonic_reference(labels, new, old, margin, "semi_hard", fallback, reduction, candidates=candidates,
                                  same_image_weight=same_image_weight)
    assume(not expected["near_tie"])
    metrics, gradient = run_portable(labels, new, old, 2 * len(labels), margin=margin, candidates=candidates,
                                     fallback=fallback, reduction=reduction, same_image_weight=same_image_weight)
    for name in METRICS:
        np.testing.assert_allclose(metrics[name], expected[name], err_msg=name, **TOLERANCE)
    np.testing.assert_allclose(gradient, expected["gradient"], **TOLERANCE)
    assert metrics["positives_dropped"] == 0


@pytest.mark.parametrize("candidates", ["both", "old"])
def test_identity_balanced_batch_equals_tensorflow_loss(candidates):
    """A training-shaped batch (6 identities x 4 faces + 8 extra negatives), the slot bound of
    max_positives_needed: nothing dropped, every statistic and the gradient as the TensorFlow loss's."""
    rng = np.random.default_rng(3)
    labels = np.concatenate([np.repeat(np.arange(6), 4), 100 + np.arange(8)]).astype(np.int32)
    centres = rng.normal(size=(108, 16))
    new = centres[labels] + 0.8 * rng.normal(size=(32, 16))
    old = new + 0.5 * rng.normal(size=(32, 16))
    new, old = (x / np.linalg.norm(x, axis=1, keepdims=True) for x in (new, old))
    new, old = new.astype(np.float32), old.astype(np.float32)
    bound = portable.max_positives_needed(4, candidates)
    metrics, gradient = run_portable(labels, new, old, bound, candidates=candidates, same_image_weight=1.0)
    new_t = tf.constant(new)
    with tf.GradientTape() as tape:
        tape.watch(new_t)
        expected = tf_harmonic(labels, new_t, tf.constant(old), candidates=candidates, same_image_weight=1.0)
    assert metrics["positives_dropped"] == 0
    # 24 grouped anchors with 7 (both) or 4 (old) positives, the 8 extra negatives with their own old embedding
    assert metrics["num_pairs"] == 24 * (7 if candidates == "both" else 4) + 8
    for name in METRICS:
        np.testing.assert_allclose(metrics[name], expected[name].numpy(), err_msg=name, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(gradient, tape.gradient(expected["loss"], new_t).numpy(), rtol=1e-4, atol=1e-6)


def test_too_few_slots_are_counted_as_dropped():
    labels = np.array([0, 0, 0, 1, 1], np.int32)  # anchors 0-2 have 5 positives each (2 new + 3 old), 3-4 have 3
    rng = np.random.default_rng(0)
    new, old = rng.normal(size=(2, 5, 3)).astype(np.float32)
    metrics, _ = run_portable(labels, new, old, 3)
    assert metrics["positives_dropped"] == 3 * 2
    assert metrics["num_pairs"] == 3 * 3 + 2 * 3


def test_rejects_bad_arguments():
    x = tf.zeros((4, 3))
    labels = tf.constant([0, 0, 1, 1])
    for kwargs, message in [(dict(candidates="other"), "candidates"), (dict(fallback="hardest"), "fallback"),
                            (dict(reduction="sum"), "reduction"), (dict(same_image_weight=-1.0), "same_image")]:
        with pytest.raises(ValueError, match=message):
            portable.harmonic_triplet_loss_with_metrics(labels, x, x, 3, **kwargs)
    with pytest.raises(ValueError, match="max_positives"):
        portable.harmonic_triplet_loss_with_metrics(labels, x, x, 0)
    with pytest.raises(ValueError, match="shape"):
        portable.harmonic_triplet_loss_with_metrics(labels, x, tf.zeros((4, 2)), 3)
    with pytest.raises(ValueError, match="candidates"):
        portable.max_positives_needed(4, "other")
