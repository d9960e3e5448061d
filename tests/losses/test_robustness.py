"""Degenerate batches, graph mode, low-precision inputs, label shapes and argument errors."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from facenet_tf.losses import (METRIC_NAMES, mine_triplets, pairwise_squared_distances, triplet_loss,
                               triplet_loss_with_metrics)

CONFIGURATIONS = [("semi_hard", "farthest"), ("semi_hard", "hardest"), ("semi_hard", "skip"),
                  ("hardest", "farthest"), ("batch_all", "farthest"), ("random_violating", "farthest")]


def _run(labels, embeddings, strategy, fallback, **kwargs):
    """Metrics and the gradient of the loss w.r.t. the embeddings."""
    embeddings = tf.constant(embeddings)
    with tf.GradientTape() as tape:
        tape.watch(embeddings)
        metrics = triplet_loss_with_metrics(labels, embeddings, strategy=strategy, fallback=fallback, seed=3,
                                            **kwargs)
    return {k: v.numpy() for k, v in metrics.items()}, tape.gradient(metrics["loss"], embeddings)


def _unit(batch_size: int, dim: int = 4, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).normal(size=(batch_size, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


@pytest.mark.parametrize("strategy,fallback", CONFIGURATIONS)
@pytest.mark.parametrize("case", ["one_identity", "all_singletons", "batch_of_one", "empty_batch"])
def test_batches_without_triplets_give_zero(strategy, fallback, case):
    """No negative (one identity), no positive (all singletons), one sample, no sample: loss 0, no NaN, and a
    zero but finite gradient."""
    labels, embeddings = {
        "one_identity": ([4] * 5, _unit(5)),
        "all_singletons": (list(range(5)), _unit(5)),
        "batch_of_one": ([0], _unit(1)),
        "empty_batch": (np.zeros([0], np.int64), np.zeros([0, 4], np.float32)),
    }[case]
    metrics, gradient = _run(labels, embeddings, strategy, fallback)
    for name in METRIC_NAMES:
        assert np.isfinite(metrics[name]), name
    assert metrics["loss"] == 0.0 and metrics["num_triplets"] == 0.0
    assert metrics["num_pairs"] == (20.0 if case == "one_identity" else 0.0)
    assert gradient.shape == embeddings.shape and np.all(gradient.numpy() == 0.0)


@pytest.mark.parametrize("strategy,fallback", CONFIGURATIONS)
@pytest.mark.parametrize("value", [0.0, 0.6])
def test_all_embeddings_equal(strategy, fallback, value):
    """All embeddings equal (value 0: the collapsed model f(x) = 0 the paper warns about): every D is 0, so
    no negative is farther than a positive; the farthest/hardest fallback and the other strategies take a
    negative at 0, hinge = margin = 0.2; skip drops every pair. Gradient finite (zero: D has a zero
    gradient at zero distance, no square root)."""
    embeddings = np.full([6, 3], value, np.float32)
    metrics, gradient = _run([0, 0, 1, 1, 2, 2], embeddings, strategy, fallback)
    expected = 0.0 if fallback == "skip" and strategy == "semi_hard" else 0.2
    assert metrics["loss"] == pytest.approx(expected)
    assert metrics["fraction_semi_hard_found"] == 0.0
    assert np.all(np.isfinite(gradient.numpy()))


@pytest.mark.parametrize("strategy,fallback", CONFIGURATIONS)
def test_duplicate_samples_have_finite_gradient(strategy, fallback):
    """Anchor and positive identical (D(a, p) = 0 exactly) next to distinct points: still finite."""
    embeddings = _unit(6, seed=1)
    embeddings[1] = embeddings[0]
    embeddings[3] = embeddings[2]
    metrics, gradient = _run([0, 0, 1, 1, 2, 2], embeddings, strategy, fallback)
    assert np.isfinite(metrics["loss"]) and np.all(np.isfinite(gradient.numpy()))


@pytest.mark.parametrize("strategy,fallback", CONFIGURATIONS)
def test_graph_mode_with_unknown_batch_size_matches_eager(strategy, fallback):
    """tf.function traced once with an unknown batch size gives the eager results on several batch sizes,
    including degenerate ones."""

    @tf.function(input_signature=[tf.TensorSpec([None], tf.int64), tf.TensorSpec([None, 4], tf.float32)])
    def loss_and_gradient(labels, embeddings):
        with tf.GradientTape() as tape:
            tape.watch(embeddings)
            metrics = triplet_loss_with_metrics(labels, embeddings, strategy=strategy, fallback=fallback, seed=3)
        return metrics, tape.gradient(metrics["loss"], embeddings)

    for labels in ([0, 0, 1, 1, 2, 2, 2, 3], [0, 1, 0, 1, 5, 5, 7, 7, 7, 1, 2, 0], [3], [1, 1, 1]):
        labels = np.array(labels, np.int64)
        embeddings = _unit(len(labels), seed=len(labels))
        graph_metrics, graph_gradient = loss_and_gradient(labels, embeddings)
        eager_metrics, eager_gradient = _run(labels, embeddings, strategy, fallback)
        for name in METRIC_NAMES:
            np.testing.assert_allclose(graph_metrics[name].numpy(), eager_metrics[name], rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(graph_gradient.numpy(), eager_gradient.numpy(), rtol=1e-6, atol=1e-7)
    assert loss_and_gradient.experimental_get_tracing_count() == 1


@pytest.mark.parametrize("strategy,fallback", CONFIGURATIONS)
@pytest.mark.parametrize("dtype", [tf.float16, tf.bfloat16])
def test_low_precision_embeddings(strategy, fallback, dtype):
    """float16 / bfloat16 embeddings (mixed precision): the loss equals the float32 loss of the same rounded
    values (distances are computed in float32), and the gradient comes back finite in the input dtype."""
    labels = [0, 0, 0, 1, 1, 2, 2, 3]
    low = tf.cast(_unit(8, dim=16, seed=2), dtype)
    with tf.GradientTape() as tape:
        tape.watch(low)
        loss = triplet_loss(labels, low, strategy=strategy, fallback=fallback, seed=3)
    gradient = tape.gradient(loss, low)
    assert loss.dtype == tf.float32 and gradient.dtype == dtype
    assert np.all(np.isfinite(tf.cast(gradient, tf.float32).numpy()))
    reference = triplet_loss(labels, tf.cast(low, tf.float32), strategy=strategy, fallback=fallback, seed=3)
    assert float(loss) == float(reference)
    assert pairwise_squared_distances(low).dtype == tf.float32


def test_label_shapes_and_dtypes_agree():
    """(B,) and (B, 1) labels, int32 / int64 / integral floats (what Keras passes as y_true) are the same."""
    embeddings = _unit(8, seed=4)
    labels = np.array([3, 3, 9, 9, 9, 1, 1, 4])
    expected = float(triplet_loss(labels.astype(np.int64), embeddings))
    for variant in (labels.astype(np.int32), labels[:, None], labels.astype(np.float32)[:, None]):
        assert float(triplet_loss(variant, embeddings)) == expected


def test_distance_gradient_matches_automatic_differentiation():
    """The hand-written gradient of pairwise_squared_distances equals autodiff of the direct B x B x D form,
    for an arbitrary upstream gradient, including duplicated rows (zero distance)."""
    x = tf.constant(_unit(7, dim=5, seed=5))
    x = tf.concat([x, x[:2]], axis=0)
    upstream = tf.random.stateless_normal([9, 9], seed=[1, 2])
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        fast = tf.reduce_sum(upstream * pairwise_squared_distances(x))
        direct = tf.reduce_sum(upstream * tf.reduce_sum(tf.square(x[:, None, :] - x[None, :, :]), axis=-1))
    np.testing.assert_allclose(tape.gradient(fast, x).numpy(), tape.gradient(direct, x).numpy(), atol=1e-5)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_embeddings_are_not_hidden(bad):
    """A diverged network's NaN (or inf) embeddings give non-finite distances, a non-finite mean D(a, p) and non-finite
    gradients (and a non-finite loss wherever the NaN row's pairs form triplets), never a clamped 0 that would
    look like a healthy run; finite rows keep finite distances."""
    x = _unit(6, seed=6)
    x[2, 1] = bad
    distances = pairwise_squared_distances(tf.constant(x)).numpy()
    others = [i for i in range(6) if i != 2]
    assert not np.isfinite(distances[2, others]).any() and not np.isfinite(distances[others, 2]).any()
    assert np.isfinite(distances[np.ix_(others, others)]).all() and (distances >= 0)[np.ix_(others, others)].all()
    labels = np.array([0, 0, 1, 1, 2, 2])
    for strategy, fallback in CONFIGURATIONS:
        metrics, gradient = _run(labels, x, strategy, fallback)
        assert not np.isfinite(metrics["mean_positive_distance"]), (strategy, fallback)
        assert not np.isfinite(gradient.numpy()).all(), (strategy, fallback)
        if fallback != "skip" and strategy != "random_violating":  # these two drop the NaN row's pairs
            assert not np.isfinite(metrics["loss"]), (strategy, fallback)


@pytest.mark.parametrize("kwargs,message", [
    (dict(strategy="semihard"), "strategy must be one of 'semi_hard', 'hardest', 'batch_all', 'random_violating'"),
    (dict(fallback="closest"), "fallback must be one of 'farthest', 'hardest', 'skip'"),
    (dict(reduction="sum"), "reduction must be one of 'mean_over_pairs', 'mean_over_active'"),
    (dict(margin=-0.1), "margin must be a non-negative number"),
    (dict(strategy="random_violating"), "needs seed="),
])
def test_bad_options_name_the_valid_values(kwargs, message):
    with pytest.raises(ValueError, match=message):
        triplet_loss([0, 0, 1], _unit(3), **kwargs)


def test_bad_inputs_name_what_was_expected():
    with pytest.raises(ValueError, match=r"labels must have shape \(batch,\) or \(batch, 1\)"):
        triplet_loss(np.zeros([3, 2], np.int64), _unit(3))
    with pytest.raises(TypeError, match="labels must be integer identity ids"):
        triplet_loss(["a", "b", "c"], _unit(3))
    with pytest.raises(ValueError, match="same batch size; got 4 labels for 3 embeddings"):
        triplet_loss([0, 0, 1, 1], _unit(3))
    with pytest.raises(TypeError, match="embeddings must be a floating tensor"):
        triplet_loss([0, 0, 1], np.ones([3, 2], np.int32))
    with pytest.raises(ValueError, match=r"embeddings must have shape \(batch, dim\)"):
        pairwise_squared_distances(np.ones([3], np.float32))
    with pytest.raises(ValueError, match="seed must be a scalar or have shape"):
        triplet_loss([0, 0, 1], _unit(3), strategy="random_violating", seed=[1, 2, 3])

    @tf.function(input_signature=[tf.TensorSpec([None], tf.int64), tf.TensorSpec([None, 4], tf.float32)])
    def traced(labels, embeddings):
        return triplet_loss(labels, embeddings)

    with pytest.raises(tf.errors.InvalidArgumentError, match="same batch size"):
        traced(np.array([0, 0, 1, 1]), _unit(3))


def test_mine_triplets_refuses_batch_all():
    with pytest.raises(ValueError, match="strategy must be one of 'semi_hard', 'hardest', 'random_violating'"):
        mine_triplets([0, 0, 1], pairwise_squared_distances(_unit(3)), strategy="batch_all")
