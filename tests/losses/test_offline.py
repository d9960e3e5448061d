"""Offline triplet selection (``facenet_tf.losses.offline``) against a brute-force loop written from the definition,
on a hand set with ties and a one-image identity, on random sets full of ties, and against the online miner; and the
loss over given triplets."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from facenet_tf.losses import mine_triplets, pairwise_squared_distances
from facenet_tf.losses.mining import FALLBACKS
from facenet_tf.losses.offline import NEGATIVES, offline_triplet_loss_with_metrics, select_triplets

# Integer points of the plane, so every squared distance is an exact integer (ties are exact ties).
#   row: 0       1       2       3       4       5       6       7
HAND = np.array([[0, 0], [1, 0], [0, 1], [3, 0], [0, 3], [2, 2], [9, 9], [-1, 0]], np.float32)
HAND_LABELS = np.array([0, 0, 0, 1, 1, 2, 3, 1])  # identity 2 (row 5) and 3 (row 6) have one image each


def brute_force(embeddings, labels, negative, fallback):
    """(anchor, positive, negative) tuples by the definition, with explicit loops; ties to the smallest index."""
    x = np.asarray(embeddings, np.float64)
    n = len(labels)
    d = [[float(np.sum((x[i] - x[j]) ** 2)) for j in range(n)] for i in range(n)]
    chosen = []
    for a in range(n):
        positives = [j for j in range(n) if j != a and labels[j] == labels[a]]
        negatives = [j for j in range(n) if labels[j] != labels[a]]
        if not positives or not negatives:
            continue
        p = positives[0]
        for j in positives:  # argmax, first of a tie
            if d[a][j] > d[a][p]:
                p = j
        hardest = negatives[0]
        farthest = negatives[0]
        for j in negatives:
            if d[a][j] < d[a][hardest]:
                hardest = j
            if d[a][j] > d[a][farthest]:
                farthest = j
        if negative == "hardest":
            chosen.append((a, p, hardest))
            continue
        semi = [j for j in negatives if d[a][j] > d[a][p]]
        if semi:
            best = semi[0]
            for j in semi:
                if d[a][j] < d[a][best]:
                    best = j
            chosen.append((a, p, best))
        elif fallback != "skip":
            chosen.append((a, p, farthest if fallback == "farthest" else hardest))
    return chosen


def triples(selection):
    return list(zip(selection.anchors.tolist(), selection.positives.tolist(), selection.negatives.tolist()))


def test_hand_set_by_hand():
    """Anchor 0 (0,0): positives 1 (D 1) and 2 (D 1) tie -> 1. Negatives 7 (D 1), 3 (D 9), 4 (D 9), 5 (D 8),
    6 (D 162). Hardest: 7. Semi-hard (D > 1): 5 (D 8).
    Anchor 1 (1,0): positives 0 (D 1), 2 (D 2) -> 2 (D 2). Negatives 3 (D 4), 4 (D 10), 5 (D 5), 6 (D 145), 7 (D 4):
    hardest 3 and 7 tie at 4 -> 3; semi-hard 3 (D 4 > 2).
    Anchor 3 (3,0): positives 4 (D 18), 7 (D 16) -> 4. Negatives 0 (D 9), 1 (D 4), 2 (D 10), 5 (D 5), 6 (D 117):
    semi-hard needs D > 18 -> 6 (D 117). Anchor 7 (-1,0): positives 3 (D 16), 4 (D 10) -> 3 (D 16); negatives 0
    (D 1), 1 (D 4), 2 (D 2), 5 (D 13), 6 (D 181): semi-hard 6.
    Rows 5 and 6 are alone in their identity: never anchors (still negatives)."""
    semi = {a: (p, n) for a, p, n in triples(select_triplets(HAND, HAND_LABELS))}
    assert semi[0] == (1, 5) and semi[1] == (2, 3) and semi[3] == (4, 6) and semi[7] == (3, 6)
    assert 5 not in semi and 6 not in semi
    hard = {a: (p, n) for a, p, n in triples(select_triplets(HAND, HAND_LABELS, negative="hardest"))}
    assert hard[0] == (1, 7) and hard[1] == (2, 3) and hard[3] == (4, 1)


def test_a_negative_at_exactly_the_positive_distance_is_not_semi_hard():
    """Anchor 0 at (0,0), positive 1 at (1,0) (D 1); negatives 2 at (0,1) (D 1, a tie: not farther) and 3 at (0,-2)
    (D 4). Semi-hard is 3. With only the tied negative there is no semi-hard one: farthest = hardest = 2, skip drops
    the anchor."""
    x = np.array([[0, 0], [1, 0], [0, 1], [0, -2]], np.float32)
    labels = np.array([0, 0, 1, 2])
    assert triples(select_triplets(x, labels))[0] == (0, 1, 3)
    x, labels = x[:3], labels[:3]
    for fallback in ("farthest", "hardest"):
        selection = select_triplets(x, labels, fallback=fallback)
        assert triples(selection)[0] == (0, 1, 2) and not selection.semi_hard[0]
    assert 0 not in select_triplets(x, labels, fallback="skip").anchors


@pytest.mark.parametrize("negative", NEGATIVES)
@pytest.mark.parametrize("fallback", FALLBACKS)
def test_equals_brute_force_on_the_hand_set(negative, fallback):
    selection = select_triplets(HAND, HAND_LABELS, negative, fallback)
    assert triples(selection) == brute_force(HAND, HAND_LABELS, negative, fallback)
    x = HAND.astype(np.float64)
    np.testing.assert_array_equal(selection.positive_distances,
                                  np.sum((x[selection.anchors] - x[selection.positives]) ** 2, axis=1))
    np.testing.assert_array_equal(selection.negative_distances,
                                  np.sum((x[selection.anchors] - x[selection.negatives]) ** 2, axis=1))


@pytest.mark.parametrize("seed", range(6))
def test_equals_brute_force_on_random_sets_full_of_ties(seed):
    """Points on a 4x4x2 integer grid (many equal distances), 1-5 images per identity, several block sizes."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(7), rng.integers(1, 6, size=7))
    x = rng.integers(0, 4, size=(labels.size, 3)).astype(np.float32)
    x[:, 2] = rng.integers(0, 2, size=labels.size)
    for negative in NEGATIVES:
        for fallback in FALLBACKS:
            expected = brute_force(x, labels, negative, fallback)
            for block_rows in (1, 4, 512):
                assert triples(select_triplets(x, labels, negative, fallback, block_rows)) == expected


def test_no_triplets_without_two_identities_or_pairs():
    x = np.array([[0, 0], [1, 0], [2, 0]], np.float32)
    assert len(select_triplets(x, [0, 0, 0])) == 0  # one identity: no negative
    empty = select_triplets(x, [0, 1, 2])  # only one-image identities: no positive
    assert len(empty) == 0 and empty.candidates == 0
    assert empty.stats() == {"num_triplets": 0.0, "candidates": 0.0, "mean_d_ap": 0.0, "mean_d_an": 0.0,
                             "semi_hard_fraction": 0.0}
    assert len(select_triplets(np.zeros((0, 2)), [])) == 0


def test_stats():
    selection = select_triplets(HAND, HAND_LABELS, negative="hardest")
    stats = selection.stats()
    assert stats["num_triplets"] == len(brute_force(HAND, HAND_LABELS, "hardest", "farthest")) == 6
    assert stats["candidates"] == 6
    assert stats["mean_d_ap"] == pytest.approx(selection.positive_distances.mean())
    assert stats["semi_hard_fraction"] == pytest.approx(np.mean(selection.negative_distances >
                                                                selection.positive_distances))


@pytest.mark.parametrize("fallback", FALLBACKS)
def test_semi_hard_negative_is_the_online_miners_for_the_hard_positive(fallback):
    """The online miner (``mine_triplets``) picks, for the pair (a, argmax p), the same negative (ties, fallback)."""
    rng = np.random.default_rng(1)
    labels = np.repeat(np.arange(5), [3, 2, 4, 1, 2])
    x = rng.integers(0, 4, size=(labels.size, 3)).astype(np.float32)
    online = mine_triplets(labels, pairwise_squared_distances(x), strategy="semi_hard", fallback=fallback)
    positives, negatives, valid = (t.numpy() for t in (online.positives, online.negatives, online.valid))
    selection = {a: (p, n) for a, p, n in triples(select_triplets(x, labels, fallback=fallback))}
    assert len(selection) > 5
    for a, p, n in brute_force(x, labels, "semi_hard", "farthest"):  # every anchor with its hard positive
        slots = np.flatnonzero((positives[a] == p) & online.pair_valid.numpy()[a])
        assert slots.size == 1
        if a in selection:
            assert selection[a] == (p, negatives[a, slots[0]]) and valid[a, slots[0]]
        else:  # dropped by skip: no semi-hard negative online either
            assert fallback == "skip" and not valid[a, slots[0]]


def test_bad_arguments():
    with pytest.raises(ValueError, match="negative must be one of"):
        select_triplets(HAND, HAND_LABELS, negative="easy")
    with pytest.raises(ValueError, match="fallback must be one of"):
        select_triplets(HAND, HAND_LABELS, fallback="nearest")
    with pytest.raises(ValueError, match="shape"):
        select_triplets(HAND, HAND_LABELS[:3])


@pytest.mark.parametrize("reduction", [None, "mean_over_active"])
def test_loss_over_given_triplets(reduction):
    selection = select_triplets(HAND, HAND_LABELS, negative="hardest")
    rows = np.concatenate([selection.anchors, selection.positives, selection.negatives])
    embeddings = tf.constant(HAND[rows] / 4.0)
    with tf.GradientTape() as tape:
        tape.watch(embeddings)
        metrics = offline_triplet_loss_with_metrics(embeddings, margin=0.2, reduction=reduction)
    d_ap, d_an = selection.positive_distances / 16.0, selection.negative_distances / 16.0
    hinge = np.maximum(d_ap - d_an + 0.2, 0.0)
    active = hinge > 0
    expected = hinge.sum() / (active.sum() if reduction else hinge.size)
    assert float(metrics["loss"]) == pytest.approx(expected, rel=1e-6)
    assert float(metrics["num_triplets"]) == float(metrics["num_pairs"]) == len(selection)
    assert float(metrics["fraction_active"]) == pytest.approx(active.mean())
    assert float(metrics["mean_positive_distance"]) == pytest.approx(d_ap.mean(), rel=1e-6)
    assert float(metrics["mean_negative_distance"]) == pytest.approx(d_an.mean(), rel=1e-6)
    assert float(metrics["fraction_semi_hard_found"]) == pytest.approx(np.mean(d_an > d_ap))
    gradient = tape.gradient(metrics["loss"], embeddings).numpy()
    assert np.isfinite(gradient).all() and np.abs(gradient).sum() > 0
