"""Tests of the paper's verification metrics (section "Evaluation"): hand-worked cases, limiting cases, a
brute-force reference on random data, and the fold logic of the LFW protocol."""

import json
import math

import numpy as np
import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from facenet_tf.evaluation import verification as v

S, D = True, False


# ------------------------------------------------------------------------------------------ hand-worked cases

# One set of six pairs, sorted by distance:
#   0.1 S, 0.2 S, 0.3 D, 0.4 S, 0.5 D, 0.6 D          (3 same, 3 different)
# candidates:   -inf  0.15  0.25  0.35  0.45  0.55  +inf
# |TA|:            0     1     2     2     3     3     3
# |FA|:            0     0     0     1     1     2     3
# accuracy = (|TA| + 3 - |FA|) / 6:
#                3/6   4/6   5/6   4/6   5/6   4/6   3/6   -> max 5/6 at 0.25 and 0.45, tie -> smallest, 0.25
# FAR:             0     0     0   1/3   1/3   2/3     1
# VAL:             0   1/3   2/3   2/3     1     1     1
# AUC (trapezoid) = 1/3 * 2/3 + 1/3 * 1 + 1/3 * 1 = 8/9 (= P(D_same < D_diff): 3 + 3 + 2 of 9 pairs)
# EER: FAR - (1 - VAL) = -1, -2/3, -1/3, 0 at 0.35 -> EER = 1/3.
SIX_D = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6])
SIX_S = np.array([S, S, D, S, D, D])


def test_sweep_hand_worked():
    sweep = v.threshold_sweep(SIX_D, SIX_S)
    np.testing.assert_allclose(sweep.thresholds, [-np.inf, 0.15, 0.25, 0.35, 0.45, 0.55, np.inf])
    np.testing.assert_array_equal(sweep.true_accepts, [0, 1, 2, 2, 3, 3, 3])
    np.testing.assert_array_equal(sweep.false_accepts, [0, 0, 0, 1, 1, 2, 3])
    np.testing.assert_allclose(sweep.accuracy, np.array([3, 4, 5, 4, 5, 4, 3]) / 6)


def test_best_accuracy_threshold_hand_worked_tie_goes_to_smallest():
    threshold, accuracy = v.best_accuracy_threshold(SIX_D, SIX_S)
    assert threshold == pytest.approx(0.25)
    assert accuracy == pytest.approx(5 / 6)
    # pair order does not matter
    order = np.array([5, 2, 0, 4, 1, 3])
    assert v.best_accuracy_threshold(SIX_D[order], SIX_S[order])[0] == pytest.approx(0.25)


def test_threshold_at_far_hand_worked():
    # one false accept of three allowed (FAR 1/3 <= 0.34): largest such candidate is 0.45, where VAL = 1
    threshold, far = v.threshold_at_far(SIX_D, SIX_S, far_target=0.34)
    assert (threshold, far) == (pytest.approx(0.45), pytest.approx(1 / 3))
    assert v.val_far_at_threshold(SIX_D, SIX_S, threshold) == (pytest.approx(1.0), pytest.approx(1 / 3))
    # none allowed: the largest with FAR 0 is 0.25, VAL 2/3
    threshold, far = v.threshold_at_far(SIX_D, SIX_S, far_target=0.2)
    assert (threshold, far) == (pytest.approx(0.25), 0.0)
    assert v.val_far_at_threshold(SIX_D, SIX_S, threshold) == (pytest.approx(2 / 3), 0.0)
    # FAR exactly at the target is allowed (<=)
    assert v.threshold_at_far(SIX_D, SIX_S, far_target=2 / 3)[0] == pytest.approx(0.55)
    # when the closest pair is a different one, nothing can be accepted
    assert v.threshold_at_far([0.1, 0.2], [D, S], far_target=0.4) == (-np.inf, 0.0)


def test_roc_hand_worked():
    roc = v.roc_curve(SIX_D, SIX_S)
    np.testing.assert_allclose(roc.far, np.array([0, 0, 0, 1, 1, 2, 3]) / 3)
    np.testing.assert_allclose(roc.val, np.array([0, 1, 2, 2, 3, 3, 3]) / 3)
    assert roc.auc == pytest.approx(8 / 9)
    assert roc.eer == pytest.approx(1 / 3)
    # operating points: the best VAL among the points with FAR <= the target
    assert roc.val_at(0.0) == pytest.approx(2 / 3)
    assert roc.val_at(0.5) == pytest.approx(1.0)
    assert roc.val_at(1.0) == pytest.approx(1.0)
    assert v.roc_curve([0.1, 0.2], [D, S]).val_at(0.0) == 0.0


def test_eer_interpolates_between_roc_points():
    # ROC points (FAR, VAL): (0,0), (0,1/2), (1/2,1/2), (1/2,1), (1,1) for 0.1 S, 0.2 D, 0.3 S, 0.4 D.
    # FAR - (1 - VAL): -1, -1/2, 0 -> EER 1/2 exactly at a point.
    assert v.roc_curve([0.1, 0.2, 0.3, 0.4], [S, D, S, D]).eer == pytest.approx(0.5)
    # Tied distances give a diagonal ROC segment (0,0) -> (1,1) (candidates -inf, +inf only):
    # FAR = 1 - VAL at FAR = 1/2, between the two points.
    roc = v.roc_curve([0.5, 0.5], [S, D])
    np.testing.assert_allclose(roc.far, [0, 1])
    np.testing.assert_allclose(roc.val, [0, 1])
    assert roc.eer == pytest.approx(0.5)
    assert roc.auc == pytest.approx(0.5)


def test_accuracy_and_val_far_use_at_most():
    # "same" means D <= d: a distance equal to the threshold is accepted
    assert v.accuracy_at_threshold([0.5, 0.7], [S, D], 0.5) == 1.0
    assert v.accuracy_at_threshold([0.5, 0.7], [S, D], 0.4999) == 0.5
    assert v.val_far_at_threshold([0.5, 0.7, 0.7], [S, D, S], 0.7) == (1.0, 1.0)


# Three folds of two pairs each; fold 2 is "inverted" so that it needs a threshold its training folds cannot give.
#   fold 0: 0.1 S, 0.5 D     fold 1: 0.2 S, 0.6 D     fold 2: 0.7 S, 0.3 D
# held out 0 (train on folds 1, 2: 0.2 S, 0.3 D, 0.6 D, 0.7 S): candidates -inf .25 .45 .65 +inf,
#   accuracy 2/4 3/4 2/4 1/4 2/4 -> 0.25 (train 3/4); fold 0: 0.1 <= .25 S ok, 0.5 > .25 D ok -> 1
# held out 1 (train 0.1 S, 0.3 D, 0.5 D, 0.7 S): -> 0.2 (train 3/4); fold 1: 0.2 <= 0.2 S ok, 0.6 D ok -> 1
# held out 2 (train 0.1 S, 0.2 S, 0.5 D, 0.6 D): candidates -inf .15 .35 .55 +inf, accuracy 2/4 3/4 1 3/4 2/4
#   -> 0.35 (train 1); fold 2: 0.7 S rejected, 0.3 D accepted -> 0
# accuracies [1, 1, 0]: mean 2/3, sample std sqrt(((1/3)^2 * 2 + (2/3)^2) / 2) = sqrt(1/3), SE = sqrt(1/3)/sqrt(3) = 1/3
# VAL at FAR 0 (no false accept allowed on the training folds): thresholds 0.25, 0.2, 0.35 (the last FAR-0
#   candidates) -> fold VAL 1, 1, 0 and FAR 0, 0, 1: VAL mean 2/3, FAR mean 1/3.
FOLD_D = np.array([0.1, 0.5, 0.2, 0.6, 0.7, 0.3])
FOLD_S = np.array([S, D, S, D, S, D])
FOLD_K = np.array([0, 0, 1, 1, 2, 2])


def test_three_folds_hand_worked():
    result = v.evaluate_verification(FOLD_D, FOLD_S, FOLD_K, far_target=0.0)
    np.testing.assert_allclose(result.accuracy_thresholds, [0.25, 0.2, 0.35])
    np.testing.assert_allclose([f.train_accuracy for f in result.folds], [0.75, 0.75, 1.0])
    np.testing.assert_allclose([f.accuracy for f in result.folds], [1, 1, 0])
    assert result.accuracy_mean == pytest.approx(2 / 3)
    assert result.accuracy_std == pytest.approx(math.sqrt(1 / 3))
    assert result.accuracy_sem == pytest.approx(1 / 3)
    np.testing.assert_allclose([f.far_threshold for f in result.folds], [0.25, 0.2, 0.35])
    np.testing.assert_allclose([f.val for f in result.folds], [1, 1, 0])
    np.testing.assert_allclose([f.far for f in result.folds], [0, 0, 1])
    assert result.val_mean == pytest.approx(2 / 3)
    assert result.far_mean == pytest.approx(1 / 3)
    assert [f.fold for f in result.folds] == [0, 1, 2]
    assert all(f.n_same == 1 and f.n_different == 1 for f in result.folds)


def test_fold_thresholds_never_see_their_fold():
    """Fold 2's threshold comes from folds 0 and 1 only (0.35, accuracy 0 on fold 2); had fold 2 been seen, the
    choice would differ (on all six pairs the best threshold is 0.25)."""
    result = v.evaluate_verification(FOLD_D, FOLD_S, FOLD_K)
    all_data_threshold, _ = v.best_accuracy_threshold(FOLD_D, FOLD_S)
    assert all_data_threshold != pytest.approx(0.35)
    assert result.folds[2].accuracy_threshold == pytest.approx(0.35)
    assert result.folds[2].accuracy == 0.0


def test_fold_threshold_invariant_to_its_own_data():
    rng = np.random.default_rng(0)
    n, k = 400, 5
    folds = np.repeat(np.arange(k), n // k)
    same = rng.random(n) < 0.5
    distances = rng.normal(np.where(same, 1.0, 2.0), 0.5)
    base = v.evaluate_verification(distances, same, folds)
    for fold in range(k):
        changed = distances.copy()
        held_out = folds == fold
        changed[held_out] = rng.uniform(-10, 10, held_out.sum())  # wildly different held-out data
        result = v.evaluate_verification(changed, same, folds)
        assert result.folds[fold].accuracy_threshold == base.folds[fold].accuracy_threshold
        assert result.folds[fold].far_threshold == base.folds[fold].far_threshold
        # and the thresholds are exactly those of the other folds alone
        expected, _ = v.best_accuracy_threshold(distances[~held_out], same[~held_out])
        assert base.folds[fold].accuracy_threshold == expected


def test_fold_ids_need_not_be_contiguous_or_grouped():
    order = np.array([4, 0, 3, 1, 5, 2])
    relabel = np.array([7, 3, 11])[FOLD_K]
    result = v.evaluate_verification(FOLD_D[order], FOLD_S[order], relabel[order], far_target=0.0)
    assert [f.fold for f in result.folds] == [3, 7, 11]
    np.testing.assert_allclose([f.accuracy for f in result.folds], [1, 1, 0])


def test_train_split_mode_hand_worked():
    # training pairs = folds 0 and 1 above, test = fold 2: threshold 0.35, accuracy 0
    train = FOLD_K < 2
    result = v.evaluate_with_train_split(FOLD_D[train], FOLD_S[train], FOLD_D[~train], FOLD_S[~train], far_target=0.0)
    assert result.n_folds == 1
    assert result.folds[0].accuracy_threshold == pytest.approx(0.35)
    assert result.accuracy_mean == 0.0
    assert math.isnan(result.accuracy_sem) and math.isnan(result.val_std)
    assert result.val_mean == 0.0 and result.far_mean == 1.0
    # the ROC is the test set's: one S at 0.7 above one D at 0.3 -> AUC 0
    assert result.roc.auc == 0.0
    summary = result.to_dict()
    assert summary["accuracy_sem"] is None and summary["n_folds"] == 1
    assert "accuracy 0.0000" in result.format_table()


# ------------------------------------------------------------------------------------------- limiting cases


def test_perfectly_separable():
    rng = np.random.default_rng(1)
    folds = np.repeat(np.arange(10), 600)
    same = np.tile(np.repeat([True, False], 300), 10)
    distances = np.where(same, rng.uniform(0.0, 1.0, same.size), rng.uniform(2.0, 3.0, same.size))
    result = v.evaluate_verification(distances, same, folds)
    assert result.accuracy_mean == 1.0 and result.accuracy_sem == 0.0
    assert all(1.0 < f.accuracy_threshold < 2.0 for f in result.folds)
    # VAL at FAR 1e-3: the largest threshold with training FAR <= 1e-3 admits 2 of the 2,700 training different
    # pairs, so it lies among the different distances and a held-out fold may see 0 or 1 false accept of 300.
    assert result.val_mean == 1.0
    assert all(f.train_far <= 1e-3 and f.far_threshold > 2.0 for f in result.folds)
    assert result.far_mean < 0.005
    # with no false accept allowed, the threshold separates the classes
    strict = v.evaluate_verification(distances, same, folds, far_target=0.0)
    assert strict.val_mean == 1.0 and strict.far_mean == 0.0
    assert result.roc.auc == 1.0 and result.roc.eer == 0.0


def test_chance():
    rng = np.random.default_rng(2)
    folds = np.repeat(np.arange(10), 600)
    same = np.tile(np.repeat([True, False], 300), 10)
    distances = rng.uniform(0.0, 4.0, same.size)  # independent of the labels
    result = v.evaluate_verification(distances, same, folds)
    assert abs(result.accuracy_mean - 0.5) < 0.03
    assert abs(result.roc.auc - 0.5) < 0.03
    assert abs(result.roc.eer - 0.5) < 0.03
    assert result.val_mean < 0.02  # VAL ~ FAR ~ 1e-3 for a random score


def test_squared_l2():
    a = np.array([[0.0, 0.0], [1.0, 2.0], [3.0, -1.0]])
    b = np.array([[3.0, 4.0], [1.0, 2.0], [0.0, 0.0]])
    np.testing.assert_allclose(v.squared_l2(a, b), [25.0, 0.0, 10.0])
    # unit vectors: ||x - y||^2 = 2 - 2 cos
    rng = np.random.default_rng(3)
    x = rng.normal(size=(50, 128))
    y = rng.normal(size=(50, 128))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    y /= np.linalg.norm(y, axis=1, keepdims=True)
    np.testing.assert_allclose(v.squared_l2(x, y), 2 - 2 * np.sum(x * y, axis=1))
    with pytest.raises(ValueError, match="same shape"):
        v.squared_l2(x, y[:, :64])


def test_invalid_inputs():
    with pytest.raises(ValueError, match="same length"):
        v.threshold_sweep([0.1, 0.2], [True])
    with pytest.raises(ValueError, match="finite"):
        v.threshold_sweep([0.1, np.nan], [True, False])
    with pytest.raises(ValueError, match="boolean"):
        v.threshold_sweep([0.1, 0.2], [1, 2])
    with pytest.raises(ValueError, match="evaluate_with_train_split"):
        v.evaluate_verification(SIX_D, SIX_S, np.zeros(6, dtype=int))
    with pytest.raises(ValueError, match="one id per pair"):
        v.evaluate_verification(SIX_D, SIX_S, np.zeros(5, dtype=int))
    with pytest.raises(ValueError, match="both classes"):
        v.val_far_at_threshold([0.1, 0.2], [True, True], 0.5)
    with pytest.raises(ValueError, match="far_target"):
        v.threshold_at_far(SIX_D, SIX_S, far_target=1.5)


def test_adjacent_floats_keep_the_partition():
    low = 1.0
    high = np.nextafter(low, 2.0)
    thresholds = v.candidate_thresholds(np.array([low, high]))
    assert thresholds[1] == low  # no float strictly between: the lower value stands in
    assert v.threshold_sweep([low, high], [S, D]).accuracy[1] == 1.0
    assert v.accuracy_at_threshold([low, high], [S, D], thresholds[1]) == 1.0


def test_to_dict_is_json_and_table_lists_folds():
    result = v.evaluate_verification(FOLD_D, FOLD_S, FOLD_K)
    text = json.dumps(result.to_dict(include_roc=True), allow_nan=False)
    loaded = json.loads(text)
    assert loaded["accuracy_mean"] == pytest.approx(2 / 3)
    assert loaded["accuracy_sem"] == pytest.approx(1 / 3)
    assert len(loaded["folds"]) == 3 and loaded["folds"][2]["accuracy_threshold"] == pytest.approx(0.35)
    assert loaded["roc"]["thresholds"][0] is None and loaded["roc"]["thresholds"][-1] is None
    assert "roc" not in result.to_dict()
    table = result.format_table()
    assert len(table.splitlines()) == 3 + 3 + 4
    assert "0.6667 +- 0.3333" in table and "VAL@FAR=0.001" in table


# ------------------------------------------------------------------------------ brute-force reference (random)


def brute_cuts(distances):
    """The brute-force candidate partitions: accept nothing, accept every distance <= u_j (each unique value
    u_j but the largest), accept everything. Returned as the cut value c: "same" iff x <= c."""
    unique = sorted(set(float(x) for x in distances))
    return [-math.inf] + unique[:-1] + [math.inf]


def brute_counts(distances, same, cut):
    ta = sum(1 for x, s in zip(distances, same) if s and x <= cut)
    fa = sum(1 for x, s in zip(distances, same) if not s and x <= cut)
    return ta, fa


def brute_best(distances, same):
    best_cut, best_acc = None, -1.0
    n_diff = sum(1 for s in same if not s)
    for cut in brute_cuts(distances):
        ta, fa = brute_counts(distances, same, cut)
        acc = (ta + n_diff - fa) / len(distances)
        if acc > best_acc:  # strict: keeps the smallest threshold among ties
            best_cut, best_acc = cut, acc
    return best_cut, best_acc


def brute_far_cut(distances, same, target):
    n_diff = sum(1 for s in same if not s)
    chosen = -math.inf
    for cut in brute_cuts(distances):
        if brute_counts(distances, same, cut)[1] / n_diff <= target:
            chosen = cut
    return chosen


def represents(threshold, cut, distances):
    """``threshold`` is the module's representative of the partition ``cut``: it accepts exactly the distances
    <= cut, and it is the midpoint between cut and the next larger distance (or +-inf at the ends)."""
    if math.isinf(cut):
        return threshold == cut
    above = [float(x) for x in distances if x > cut]
    if min(above) <= threshold or threshold < cut:
        return False
    # the midpoint of values of opposite sign cancels: compare relative to the operands' size, not the result's
    scale = max(abs(cut), abs(min(above)))
    return math.isclose(threshold, cut / 2 + min(above) / 2, rel_tol=1e-12, abs_tol=max(1e-300, 1e-15 * scale))


values = st.one_of(st.sampled_from([0.0, 0.25, 0.5, 1.0, 1.5, 2.0]), st.floats(-10, 10, allow_nan=False))


@st.composite
def labelled_pairs(draw, min_size=2, max_size=40):
    n = draw(st.integers(min_size, max_size))
    distances = draw(st.lists(values, min_size=n, max_size=n))
    same = draw(st.lists(st.booleans(), min_size=n, max_size=n))
    same[0], same[1] = True, False  # both classes present
    return np.array(distances), np.array(same)


@settings(max_examples=150, deadline=None)
@given(labelled_pairs(), st.sampled_from([0.0, 1e-3, 0.1, 0.3, 1.0]))
@example(pairs=(np.array([1.0, -0.99999]), np.array([True, False])), far_target=0.0)  # cancelling midpoint
def test_sweep_matches_brute_force(pairs, far_target):
    distances, same = pairs
    sweep = v.threshold_sweep(distances, same)
    cuts = brute_cuts(distances)
    assert len(sweep.thresholds) == len(cuts)
    for j, cut in enumerate(cuts):
        assert represents(sweep.thresholds[j], cut, distances)
        assert (sweep.true_accepts[j], sweep.false_accepts[j]) == brute_counts(distances, same, cut)
        # the representative threshold accepts exactly what the brute-force partition does
        assert brute_counts(distances, same, sweep.thresholds[j]) == brute_counts(distances, same, cut)
    threshold, accuracy = v.best_accuracy_threshold(distances, same)
    expected_cut, expected_acc = brute_best(distances, same)
    assert represents(threshold, expected_cut, distances) and accuracy == pytest.approx(expected_acc)
    assert v.accuracy_at_threshold(distances, same, threshold) == pytest.approx(expected_acc)
    far_cut = brute_far_cut(distances, same, far_target)
    assert represents(v.threshold_at_far(distances, same, far_target)[0], far_cut, distances)
    # AUC by trapezoid = Mann-Whitney probability that a same pair is closer, ties counting 1/2
    same_d, diff_d = distances[same], distances[~same]
    wins = sum((x < y) + 0.5 * (x == y) for x in same_d for y in diff_d)
    assert v.roc_curve(distances, same).auc == pytest.approx(wins / (same_d.size * diff_d.size))


@settings(max_examples=40, deadline=None)
@given(labelled_pairs(min_size=6, max_size=30), st.integers(2, 4), st.randoms(use_true_random=False))
def test_protocol_matches_brute_force(pairs, n_folds, random):
    distances, same = pairs
    folds = np.array([random.randrange(n_folds) for _ in distances])
    folds[:n_folds] = np.arange(n_folds)
    for k in range(n_folds):  # every training and held-out part needs both classes for FAR and VAL
        for part in (same[folds != k], same[folds == k]):
            assume(part.any() and not part.all())
    result = v.evaluate_verification(distances, same, folds, far_target=0.2)
    accuracies = []
    for k, fold in enumerate(result.folds):
        train, test = folds != k, folds == k
        cut, _ = brute_best(distances[train].tolist(), same[train].tolist())
        assert represents(fold.accuracy_threshold, cut, distances[train])
        correct = [(x <= fold.accuracy_threshold) == s for x, s in zip(distances[test], same[test])]
        accuracies.append(sum(correct) / len(correct))
        assert fold.accuracy == pytest.approx(accuracies[-1])
        far_cut = brute_far_cut(distances[train].tolist(), same[train].tolist(), 0.2)
        assert represents(fold.far_threshold, far_cut, distances[train])
        ta, fa = brute_counts(distances[test], same[test], fold.far_threshold)
        assert fold.val == pytest.approx(ta / same[test].sum())
        assert fold.far == pytest.approx(fa / (~same[test]).sum())
    mean = sum(accuracies) / n_folds
    std = math.sqrt(sum((a - mean) ** 2 for a in accuracies) / (n_folds - 1))
    assert result.accuracy_mean == pytest.approx(mean)
    assert result.accuracy_std == pytest.approx(std, abs=1e-12)
    assert result.accuracy_sem == pytest.approx(std / math.sqrt(n_folds), abs=1e-12)


def test_paired_fold_difference_takes_results_or_their_dicts():
    rng = np.random.default_rng(3)
    distances, same = rng.uniform(0, 4, 600), np.tile([True, False], 300)
    folds = np.repeat(np.arange(10), 60)
    a = v.evaluate_verification(distances - 0.5 * same, same, folds=folds).folds
    b = v.evaluate_verification(distances, same, folds=folds).folds
    out = v.paired_fold_difference(a, [f.to_dict() for f in b])
    diff = np.array([fa.accuracy - fb.accuracy for fa, fb in zip(a, b)])
    assert out["mean"] == pytest.approx(diff.mean()) and out["mean"] > 0
    assert out["sem"] == pytest.approx(diff.std(ddof=1) / np.sqrt(10))
    assert out["higher"] + out["equal"] + out["lower"] == 10 and out["higher"] > out["lower"]
    hand = [{"fold": k, "accuracy": v} for k, v in enumerate([0.75, 0.70, 0.72, 0.80])]
    other = [{"fold": k, "accuracy": v} for k, v in enumerate([0.70, 0.70, 0.74, 0.76])]
    assert (lambda r: (r["higher"], r["equal"], r["lower"]))(v.paired_fold_difference(hand, other)) == (2, 1, 1)
    with pytest.raises(ValueError, match="folds differ"):
        v.paired_fold_difference(hand, other[:3])


# ------------------------------------------------------------------------------------- recipes on embeddings

combine_flip, pair_distances, mean_embedding = v.combine_flip, v.pair_distances, v.mean_embedding
evaluate_embeddings, evaluate_fold, evaluate_verification = v.evaluate_embeddings, v.evaluate_fold, v.evaluate_verification
evaluate_with_train_split = v.evaluate_with_train_split


def test_combine_flip_by_hand():
    plain = np.array([[1.0, 0.0], [0.0, 1.0]])
    mirrored = np.array([[0.0, 1.0], [0.0, 1.0]])
    np.testing.assert_array_equal(combine_flip(plain, None, "none"), plain)
    np.testing.assert_allclose(combine_flip(plain, mirrored, "mean"), [[0.5 ** 0.5, 0.5 ** 0.5], [0.0, 1.0]])
    concat = combine_flip(plain, mirrored, "concat")
    np.testing.assert_allclose(concat, [[0.5 ** 0.5, 0, 0, 0.5 ** 0.5], [0, 0.5 ** 0.5, 0, 0.5 ** 0.5]])
    np.testing.assert_allclose(np.linalg.norm(concat, axis=1), 1.0)
    with pytest.raises(ValueError, match="mirror"):
        combine_flip(plain, None, "mean")
    with pytest.raises(ValueError, match="flip mode"):
        combine_flip(plain, mirrored, "max")


def test_pair_distances_by_hand():
    a = np.array([[1.0, 0.0], [0.6, 0.8]])
    b = np.array([[0.0, 1.0], [0.6, 0.8]])
    np.testing.assert_allclose(pair_distances(a, b), [2.0, 0.0])
    np.testing.assert_allclose(pair_distances(a, b, "cosine"), [1.0, 0.0])  # = squared L2 / 2 on unit vectors
    mean = np.array([0.5, 0.5])  # a - m = (0.5, -0.5), (0.1, 0.3); b - m = (-0.5, 0.5), (0.1, 0.3)
    np.testing.assert_allclose(pair_distances(a, b, mean=mean), [2.0, 0.0])
    np.testing.assert_allclose(pair_distances(a, b, "cosine", mean), [2.0, 0.0])
    np.testing.assert_allclose(mean_embedding(a, b), [0.55, 0.65])
    with pytest.raises(ValueError, match="metric"):
        pair_distances(a, b, "l1")


def _pairs(seed=0, n_folds=4, per_fold=40, d=6):
    rng = np.random.default_rng(seed)
    n = n_folds * per_fold
    a = rng.normal(size=(n, d)) + 3.0  # a shared offset, which mean subtraction removes
    same = np.tile(np.arange(per_fold) % 2 == 0, n_folds)
    b = np.where(same[:, None], a + 0.6 * rng.normal(size=(n, d)), rng.normal(size=(n, d)) + 3.0)
    return a, b, same, np.repeat(np.arange(n_folds), per_fold)


@pytest.mark.parametrize("metric", ["squared_l2", "cosine"])
def test_evaluate_embeddings_subtracts_the_other_folds_mean(metric):
    a, b, same, folds = _pairs()
    result = evaluate_embeddings(a, b, same, folds, metric, subtract_mean=True)
    for k, fold in enumerate(result.folds):  # brute force: each fold on its own, the mean of the other folds
        train = folds != k
        mean = np.concatenate([a[train], b[train]]).mean(axis=0)
        d = pair_distances(a, b, metric, mean)
        expected = evaluate_fold(d[train], same[train], d[~train], same[~train], fold=k)
        assert fold.accuracy == expected.accuracy and fold.accuracy_threshold == expected.accuracy_threshold
    plain = evaluate_embeddings(a, b, same, folds, metric)
    assert [f.accuracy for f in plain.folds] == [f.accuracy for f in
                                                 evaluate_verification(pair_distances(a, b, metric), same, folds).folds]
    assert "mean embedding" in result.protocol


def test_a_held_out_fold_does_not_choose_its_own_mean_or_threshold():
    """Moving every embedding of fold 0 changes nothing that decides fold 0's threshold."""
    a, b, same, folds = _pairs(seed=1)
    moved_a, moved_b = a.copy(), b.copy()
    moved_a[folds == 0] += 5.0
    moved_b[folds == 0] += 5.0
    before = evaluate_embeddings(a, b, same, folds, "cosine", subtract_mean=True).folds[0]
    after = evaluate_embeddings(moved_a, moved_b, same, folds, "cosine", subtract_mean=True).folds[0]
    assert before.accuracy_threshold == after.accuracy_threshold and before.far_threshold == after.far_threshold


def test_train_split_mean_comes_from_the_training_pairs():
    a, b, same, _ = _pairs(seed=2, n_folds=2)
    half = len(a) // 2
    train, test = (a[:half], b[:half]), (a[half:], b[half:])
    result = v.evaluate_embeddings_with_train_split(train, same[:half], test, same[half:], "cosine", True)
    mean = mean_embedding(*train)
    expected = evaluate_with_train_split(pair_distances(*train, "cosine", mean), same[:half],
                                         pair_distances(*test, "cosine", mean), same[half:])
    assert result.folds[0].accuracy == expected.folds[0].accuracy
    assert result.folds[0].accuracy_threshold == expected.folds[0].accuracy_threshold


def test_recipe_names_parse_back_and_bad_ones_are_refused():
    for recipe in (v.Recipe(), v.Recipe("concat", "cosine", True)):
        assert v.Recipe.parse(recipe.name) == recipe
    assert v.Recipe.parse("distance=cosine") == v.Recipe("none", "cosine", False)
    for bad in ("flip=max", "distance=l1", "subtract_mean=yes", "scale=2", "flip"):
        with pytest.raises(ValueError):
            v.Recipe.parse(bad)
