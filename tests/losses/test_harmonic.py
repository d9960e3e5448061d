"""The harmonic triplet loss (facenet_tf/losses/harmonic.py) against a brute-force numpy reference written from the
design in that module's docstring (explicit loops over every (new anchor, positive, negative) of the 2B stacked
batch, float64), on random batches (hypothesis) and on a batch derived by hand."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from facenet_tf.losses import METRIC_NAMES, harmonic_triplet_loss, harmonic_triplet_loss_with_metrics

SETTINGS = settings(max_examples=25, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow])
TOLERANCE = dict(rtol=1e-5, atol=1e-5)


def harmonic_reference(labels, new, old, margin=0.2, strategy="semi_hard", fallback="farthest", reduction=None,
                       tol=1e-4, candidates="both", anchors="new", same_image_weight=0.0) -> dict:
    """Loops: rows 0..B-1 are the new embeddings, rows B..2B-1 the old ones (no gradient). Anchors: the new rows
    (``anchors="new"``) or every row (``"both"``). ``candidates="old"``: positives and negatives are old rows
    only; ``"other"``: rows of the other model than the anchor's. ``same_image_weight`` w adds
    w * mean_i |new_i - old_i|^2 to the loss.
    Returns loss, statistics, gradient w.r.t. ``new`` and a near-tie flag (as tests/losses/reference.py)."""
    labels = np.asarray(labels).reshape(-1)
    new = np.asarray(new, np.float64)
    old = np.asarray(old, np.float64)
    b = len(labels)
    rows = [new[i] for i in range(b)] + [old[i] for i in range(b)]
    row_label = [labels[i % b] for i in range(2 * b)]
    d = np.array([[float(np.sum((rows[i] - rows[j]) ** 2)) for j in range(2 * b)] for i in range(2 * b)])
    reduction = reduction or "mean_over_pairs"
    triplets, num_pairs, num_found, near_tie = [], 0, 0, False
    for a in range(b if anchors == "new" else 2 * b):
        if candidates == "old" or (candidates == "other" and a < b):
            usable = range(b, 2 * b)
        elif candidates == "other":
            usable = range(b)
        else:
            usable = range(2 * b)
        negatives = [n for n in usable if row_label[n] != row_label[a]]
        for p in usable:
            if p == a or row_label[p] != row_label[a]:
                continue
            num_pairs += 1
            farther = [n for n in negatives if d[a, n] > d[a, p]]
            num_found += bool(farther)
            if any(abs(d[a, n] - d[a, p]) < tol for n in negatives):
                near_tie = True
            if not negatives:
                continue
            if strategy == "hardest":
                pool, largest = negatives, False
            elif farther:
                pool, largest = farther, False
            elif fallback == "farthest":
                pool, largest = negatives, True
            elif fallback == "hardest":
                pool, largest = negatives, False
            else:
                continue
            ordered = sorted(pool, key=lambda n: d[a, n], reverse=largest)
            if len(ordered) > 1 and abs(d[a, ordered[0]] - d[a, ordered[1]]) < tol:
                near_tie = True
            triplets.append((a, p, ordered[0]))
    gradient = np.zeros_like(new)
    hinges = [d[a, p] - d[a, n] + margin for a, p, n in triplets]
    near_tie |= any(abs(h) < tol for h in hinges)
    active = [h > 0 for h in hinges]
    denominator = len(triplets) if reduction == "mean_over_pairs" else sum(active)
    loss = sum(max(h, 0.0) for h in hinges) / denominator if denominator else 0.0
    for (a, p, n), is_active in zip(triplets, active):
        if not is_active:
            continue
        # d/dx of |a-p|^2 - |a-n|^2, only to new rows (index < b).
        if a < b:
            gradient[a] += (2 * (rows[a] - rows[p]) - 2 * (rows[a] - rows[n])) / denominator
        if p < b:
            gradient[p] += -2 * (rows[a] - rows[p]) / denominator
        if n < b:
            gradient[n] += 2 * (rows[a] - rows[n]) / denominator
    if b:
        loss += same_image_weight * float(np.mean([d[i, b + i] for i in range(b)]))
        gradient += same_image_weight * 2 * (new - old) / b
    t = len(triplets)
    return {"loss": loss, "gradient": gradient, "near_tie": near_tie, "num_triplets": float(t),
            "num_pairs": float(num_pairs), "fraction_active": sum(active) / t if t else 0.0,
            "mean_positive_distance": sum(d[a, p] for a, p, _ in triplets) / t if t else 0.0,
            "mean_negative_distance": sum(d[a, n] for a, _, n in triplets) / t if t else 0.0,
            "fraction_semi_hard_found": num_found / num_pairs if num_pairs else 0.0,
            "mean_same_image_distance": float(np.mean([d[i, b + i] for i in range(b)])) if b else 0.0}


@st.composite
def harmonic_batches(draw, max_batch: int = 14, max_dim: int = 5):
    batch_size = draw(st.integers(1, max_batch))
    dim = draw(st.integers(1, max_dim))
    num_ids = draw(st.integers(1, batch_size))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    labels = rng.integers(0, num_ids, size=batch_size) + draw(st.sampled_from([0, -3, 10**12]))
    new, old = rng.normal(size=(2, batch_size, dim))
    if draw(st.booleans()):
        new /= np.linalg.norm(new, axis=1, keepdims=True)
        old /= np.linalg.norm(old, axis=1, keepdims=True)
    if draw(st.booleans()):  # old embeddings near the new ones: the compatible regime after training
        old = new + 0.3 * old
    margin = draw(st.sampled_from([0.0, 0.2, 0.5, 1.5]) | st.floats(0.0, 2.0))
    return labels, new.astype(np.float32), old.astype(np.float32), float(margin)


@pytest.mark.parametrize("strategy,fallback", [("semi_hard", "farthest"), ("semi_hard", "hardest"),
                                               ("semi_hard", "skip"), ("hardest", "farthest")])
@given(batch=harmonic_batches(), reduction=st.sampled_from([None, "mean_over_pairs", "mean_over_active"]),
       candidates_anchors=st.sampled_from([("both", "new"), ("old", "new"), ("other", "new"), ("both", "both"),
                                           ("other", "both")]),
       same_image_weight=st.sampled_from([0.0, 0.5, 2.0]))
@SETTINGS
def test_matches_reference(strategy, fallback, batch, reduction, candidates_anchors, same_image_weight):
    labels, new, old, margin = batch
    candidates, anchors = candidates_anchors
    expected = harmonic_reference(labels, new, old, margin, strategy, fallback, reduction, candidates=candidates,
                                  anchors=anchors, same_image_weight=same_image_weight)
    assume(not expected["near_tie"])
    new_t, old_t = tf.constant(new), tf.constant(old)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch([new_t, old_t])
        metrics = harmonic_triplet_loss_with_metrics(labels, new_t, old_t, margin, strategy, fallback, reduction,
                                                     candidates=candidates, anchors=anchors,
                                                     same_image_weight=same_image_weight)
    assert set(metrics) == set(METRIC_NAMES) | {"mean_same_image_distance"}
    for name in [*METRIC_NAMES, "mean_same_image_distance"]:
        np.testing.assert_allclose(metrics[name].numpy(), expected[name], err_msg=name, **TOLERANCE)
    np.testing.assert_allclose(tape.gradient(metrics["loss"], new_t).numpy(), expected["gradient"], **TOLERANCE)
    old_gradient = tape.gradient(metrics["loss"], old_t)
    assert old_gradient is None or not np.any(old_gradient.numpy())  # the old model is fixed


def test_hand_derived_batch():
    # Unit vectors in 2-D, margin 1.5. Rows: n0=(1,0) n1=(0,1) | o0=(.6,.8) o1=(-.8,.6); labels 0, 1.
    # n0: positive o0, D=.16+.64=.8; negatives n1 (D=2), o1 (D=3.24+.36=3.6) -> semi-hard n1; hinge .8-2+1.5=.3
    # n1: positive o1, D=.64+.16=.8; negatives n0 (2), o0 (.36+.04=.4) -> semi-hard n0; hinge .3. Loss .3.
    # Gradient (each term / 2): n0: (n1-o0) + (n1-n0) = (-.6,.2)+(-1,1) = (-1.6,1.2);
    #                           n1: (n0-n1) + (n0-o1) = (1,-1)+(1.8,-.6) = (2.8,-1.6).
    new = tf.constant([[1.0, 0.0], [0.0, 1.0]])
    old = tf.constant([[0.6, 0.8], [-0.8, 0.6]])
    with tf.GradientTape() as tape:
        tape.watch(new)
        metrics = harmonic_triplet_loss_with_metrics([0, 1], new, old, margin=1.5)
    expected = {"loss": 0.3, "num_triplets": 2, "num_pairs": 2, "fraction_active": 1.0,
                "mean_positive_distance": 0.8, "mean_negative_distance": 2.0, "fraction_semi_hard_found": 1.0,
                "mean_same_image_distance": 0.8}
    for name, value in expected.items():
        np.testing.assert_allclose(metrics[name].numpy(), value, rtol=1e-6, atol=1e-6, err_msg=name)
    np.testing.assert_allclose(tape.gradient(metrics["loss"], new).numpy(), [[-1.6, 1.2], [2.8, -1.6]], atol=1e-6)
    # The same batch agrees with the reference, and with margin 0.2 no hinge is active.
    assert harmonic_reference([0, 1], new.numpy(), old.numpy(), 1.5)["loss"] == pytest.approx(0.3)
    assert float(harmonic_triplet_loss([0, 1], new, old, margin=0.2)) == 0.0


def test_old_embedding_of_same_image_is_a_positive_and_old_negatives_are_mined():
    # One identity with one image, one negative identity: new anchor 0's only positive is its own old embedding;
    # its semi-hard negative is the OLD embedding of image 1 (closer than the new one, farther than the positive).
    new = np.array([[1.0, 0.0], [-1.0, 0.0]], np.float32)
    old = np.array([[0.995, 0.0998], [0.0, 1.0]], np.float32)
    metrics = harmonic_triplet_loss_with_metrics([0, 1], new, old, margin=2.0)
    d_pos = np.sum((new[0] - old[0]) ** 2)
    # Anchor 0: positive old0, negatives new1 (D=4) and old1 (D=2): semi-hard old1. Anchor 1: positive old1 (D=2),
    # negatives new0 (4) and old0 (D=(1.995)^2+.0998^2): closest farther than 2 is old0.
    d_an1 = np.sum((new[1] - old[0]) ** 2)
    expected = ((d_pos - 2.0 + 2.0) + (2.0 - d_an1 + 2.0)) / 2
    np.testing.assert_allclose(metrics["loss"].numpy(), expected, rtol=1e-5)
    assert metrics["num_pairs"].numpy() == 2


def test_no_triplet_gives_zero_loss_and_gradient():
    new = tf.constant([[1.0, 0.0], [0.0, 1.0]])
    with tf.GradientTape() as tape:
        tape.watch(new)
        loss = harmonic_triplet_loss([3, 3], new, tf.constant([[0.0, 1.0], [1.0, 0.0]]))
    assert float(loss) == 0.0 and not np.any(tape.gradient(loss, new).numpy())


def test_rejects_bad_inputs():
    with pytest.raises(ValueError, match="same dimension"):
        harmonic_triplet_loss([0, 1], np.zeros((2, 3), np.float32), np.zeros((2, 4), np.float32))
    with pytest.raises(ValueError, match="same batch"):
        harmonic_triplet_loss([0, 1], np.zeros((2, 3), np.float32), np.zeros((3, 3), np.float32))
    with pytest.raises(ValueError, match="strategy"):
        harmonic_triplet_loss([0, 1], np.zeros((2, 3), np.float32), np.zeros((2, 3), np.float32),
                              strategy="batch_all")


def test_anchor_mask_default_keeps_mining_unchanged():
    from facenet_tf.losses import mine_triplets, pairwise_squared_distances

    rng = np.random.default_rng(1)
    labels = rng.integers(0, 4, 12)
    d = pairwise_squared_distances(rng.normal(size=(12, 3)).astype(np.float32))
    plain = mine_triplets(labels, d)
    masked = mine_triplets(labels, d, anchor_mask=np.arange(12) < 5)
    for field in ("positives", "negatives", "valid", "pair_valid", "semi_hard_found"):
        a, m = getattr(plain, field).numpy(), getattr(masked, field).numpy()
        np.testing.assert_array_equal(m[:5], a[:5])
        if field in ("valid", "pair_valid", "semi_hard_found"):
            assert not m[5:].any()


def test_old_candidates_use_only_old_positives_and_negatives():
    # The hand-derived batch above with candidates="old": n0's only positive is o0 (D=.8), its only negative o1
    # (D=3.6): hinge .8-3.6+1.5 < 0. n1: positive o1 (D=.8), negative o0 (D=.4): no semi-hard negative, the
    # farthest fallback takes o0: hinge .8-.4+1.5 = 1.9. Loss (0 + 1.9) / 2 = .95.
    new = np.array([[1.0, 0.0], [0.0, 1.0]], np.float32)
    old = np.array([[0.6, 0.8], [-0.8, 0.6]], np.float32)
    metrics = harmonic_triplet_loss_with_metrics([0, 1], new, old, margin=1.5, candidates="old")
    np.testing.assert_allclose(metrics["loss"].numpy(), 0.95, rtol=1e-6)
    np.testing.assert_allclose(metrics["fraction_semi_hard_found"].numpy(), 0.5)
    with pytest.raises(ValueError, match="candidates"):
        harmonic_triplet_loss([0, 1], new, old, candidates="new")


def test_old_anchors_with_other_model_candidates_hand_derived():
    # The hand-derived batch (n0=(1,0) n1=(0,1) | o0=(.6,.8) o1=(-.8,.6), margin 1.5), anchors="both",
    # candidates="other". New anchors as with candidates="old": n0 (o0 .8, o1 3.6) inactive; n1 (o1 .8, only
    # negative o0 .4, farthest fallback) hinge 1.9. Old anchors against new rows: o0: positive n0 (.8), only
    # negative n1 (.36+.04=.4), fallback: hinge 1.9; o1: positive n1 (.8), negative n0 (3.6): inactive.
    # Loss (1.9 + 1.9) / 4 = .95. Gradient / 4: (n1,o1,o0) -> n1 += 2(o0-o1) = (2.8,.4);
    # (o0,n0,n1) -> n0 += 2(n0-o0) = (.8,-1.6), n1 += 2(o0-n1) = (1.2,-.4).
    new = tf.constant([[1.0, 0.0], [0.0, 1.0]])
    old = tf.constant([[0.6, 0.8], [-0.8, 0.6]])
    with tf.GradientTape() as tape:
        tape.watch(new)
        metrics = harmonic_triplet_loss_with_metrics([0, 1], new, old, margin=1.5, candidates="other", anchors="both")
    expected = {"loss": 0.95, "num_triplets": 4, "num_pairs": 4, "fraction_active": 0.5,
                "fraction_semi_hard_found": 0.5, "mean_positive_distance": 0.8, "mean_negative_distance": 2.0}
    for name, value in expected.items():
        np.testing.assert_allclose(metrics[name].numpy(), value, rtol=1e-6, atol=1e-6, err_msg=name)
    np.testing.assert_allclose(tape.gradient(metrics["loss"], new).numpy(), [[0.2, -0.4], [1.0, 0.0]], atol=1e-6)
    # With anchors="new", "other" is "old".
    for candidates in ("old", "other"):
        assert float(harmonic_triplet_loss([0, 1], new, old, margin=1.5, candidates=candidates)) == pytest.approx(0.95)
    with pytest.raises(ValueError, match="anchors='both'"):
        harmonic_triplet_loss([0, 1], new, old, candidates="old", anchors="both")
    with pytest.raises(ValueError, match="anchors"):
        harmonic_triplet_loss([0, 1], new, old, anchors="old")


def test_same_image_weight_adds_the_mean_same_image_distance():
    # The hand-derived batch: triplet loss .3 (margin 1.5), D(n0, o0) = D(n1, o1) = .8; w = .5 adds .4.
    # Gradient of .5 * mean |n_i - o_i|^2 = .5 * 2 (n_i - o_i) / 2 = (n_i - o_i) / 2, on top of the triplet part.
    new = tf.constant([[1.0, 0.0], [0.0, 1.0]])
    old = tf.constant([[0.6, 0.8], [-0.8, 0.6]])
    with tf.GradientTape() as tape:
        tape.watch(new)
        metrics = harmonic_triplet_loss_with_metrics([0, 1], new, old, margin=1.5, same_image_weight=0.5)
    np.testing.assert_allclose(metrics["loss"].numpy(), 0.3 + 0.4, rtol=1e-6)
    np.testing.assert_allclose(metrics["mean_same_image_distance"].numpy(), 0.8, rtol=1e-6)
    expected = np.array([[-1.6, 1.2], [2.8, -1.6]]) + (new.numpy() - old.numpy()) / 2
    np.testing.assert_allclose(tape.gradient(metrics["loss"], new).numpy(), expected, atol=1e-6)
    for bad in (-0.1, float("nan"), "1"):
        with pytest.raises(ValueError, match="same_image_weight"):
            harmonic_triplet_loss([0, 1], new, old, same_image_weight=bad)


def test_same_image_gradient_survives_nearly_coinciding_embeddings():
    # Found by hypothesis: image 7's new and old embeddings differ by 4e-4, so its squared distance (1.8e-7) vanished
    # in the Gram expansion |a|^2 + |b|^2 - 2ab of float32 values ~2 and the clamp at 0 zeroed its gradient.
    labels = np.array([1, 0, 0, 0, 1, 0, 0, 1])
    new = np.array([1.4282173, 0.19284843, 1.3054268, -1.4663063, 0.00549818, -1.2097589, -0.98386985, -2.117859],
                   np.float32)[:, None]
    old = np.array([1.553365, 0.37301606, 0.78662753, -1.0446179, -0.34745124, -1.3038903, -1.3541859, -2.1174328],
                   np.float32)[:, None]
    expected = harmonic_reference(labels, new, old, 0.0, same_image_weight=0.5)
    new_t = tf.constant(new)
    with tf.GradientTape() as tape:
        tape.watch(new_t)
        loss = harmonic_triplet_loss_with_metrics(labels, new_t, tf.constant(old), 0.0,
                                                  same_image_weight=0.5)["loss"]
    np.testing.assert_allclose(tape.gradient(loss, new_t).numpy(), expected["gradient"], **TOLERANCE)
