"""Cross-model verification (facenet_tf/harmonic/cross_model.py): each image with each model, one new model per
group of folds, View 1's DevTest in ten folds; harmonic_diagnosis (why old-new verification scores as it does):
residual split, cosine statistics."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from facenet_tf.evaluation.embed import l2_normalize
from facenet_tf.evaluation.lfw import PairArrays, cross_validation_folds, load_pair_sets
from facenet_tf.harmonic.cross_model import (ImageEmbeddings, cross_model_distances, cross_model_distances_by_fold,
                                             evaluate_cross_model, harmonic_diagnosis)


def _embeddings(name, paths, vectors):
    return ImageEmbeddings(name, {p: i for i, p in enumerate(paths)}, np.asarray(vectors, np.float32), {})


def _setup(rng, identities=12, per_identity=4, dim=16):
    paths, ids = [], []
    for k in range(identities):
        for j in range(per_identity):
            paths.append(f"/lfw/person{k}/person{k}_{j + 1:04d}.jpg")
            ids.append(k)
    centres = l2_normalize(rng.normal(size=(identities, dim)))
    old = l2_normalize(centres[ids] + 0.3 * rng.normal(size=(len(paths), dim)))
    a, b, same = [], [], []
    for k in range(identities):
        a.append(paths[k * per_identity])
        b.append(paths[k * per_identity + 1])
        same.append(True)
        a.append(paths[k * per_identity + 2])
        b.append(paths[((k + 1) % identities) * per_identity + 3])
        same.append(False)
    pairs = PairArrays(tuple(a), tuple(b), np.asarray(same), np.zeros(len(a), np.int64))
    return paths, np.asarray(ids), old, pairs


def test_identical_models_have_no_residual():
    rng = np.random.default_rng(0)
    paths, _, old, pairs = _setup(rng)
    result = harmonic_diagnosis(_embeddings("old", paths, old), _embeddings("new", paths, old), pairs)
    assert result["same_image_cos"] == pytest.approx(1.0, abs=1e-6)
    assert result["residual"]["per_identity"] == pytest.approx(0.0, abs=1e-6)
    assert result["residual"]["per_image"] == pytest.approx(0.0, abs=1e-6)
    for key in ("same_cos", "diff_cos", "d_prime"):
        assert result["old-new"][key] == pytest.approx(result["old-old"][key], rel=1e-5)
    assert result["old-old"]["same_cos"] > result["old-old"]["diff_cos"]


def test_per_identity_shift_is_separated_from_per_image_noise():
    rng = np.random.default_rng(1)
    paths, ids, old, pairs = _setup(rng)
    images = sorted(set(pairs.paths_a) | set(pairs.paths_b))
    shift = 0.5 * rng.normal(size=(ids.max() + 1, old.shape[1]))
    shifted = _embeddings("new", paths, old + shift[ids])
    result = harmonic_diagnosis(_embeddings("old", paths, old), shifted, pairs)
    # The residual of every image of a person is the same vector: all of it is per identity.
    assert result["residual"]["per_image"] == pytest.approx(0.0, abs=1e-5)
    used = sorted({int(Path(p).parent.name[6:]) for p in images})
    expected = np.mean([np.sum(shift[k] ** 2) for k in used])
    assert result["residual"]["per_identity"] == pytest.approx(expected, rel=1e-4)
    assert result["residual"]["identities"] == len(used)
    # Per-image noise with no shared part: per identity is ~0 (unbiased), per image ~ its variance.
    noise = 0.3 * rng.normal(size=old.shape)
    result = harmonic_diagnosis(_embeddings("old", paths, old), _embeddings("new", paths, old + noise), pairs)
    assert result["residual"]["per_image"] == pytest.approx(0.09 * old.shape[1], rel=0.35)
    assert abs(result["residual"]["per_identity"]) < 0.3 * result["residual"]["per_image"]


def test_diagnosis_needs_both_kinds_of_pairs():
    rng = np.random.default_rng(2)
    paths, _, old, pairs = _setup(rng)
    only_same = PairArrays(pairs.paths_a[::2], pairs.paths_b[::2], pairs.is_same[::2], pairs.folds[::2])
    emb = _embeddings("old", paths, old)
    with pytest.raises(ValueError, match="both same-identity and different-identity"):
        harmonic_diagnosis(emb, emb, only_same)


def test_cross_model_distances_pair_each_image_with_each_model():
    images = ["a", "b", "c"]
    old = ImageEmbeddings("old", {p: i for i, p in enumerate(images)}, np.eye(3, dtype=np.float32), {})
    new = ImageEmbeddings("new", {p: i for i, p in enumerate(images)},
                          np.array([[1, 0, 0], [0.6, 0.8, 0], [0, 0, 1]], np.float32), {})
    pairs = PairArrays(("a", "b"), ("b", "c"), np.array([True, False]), np.array([0, 0]))
    d = cross_model_distances(old, new, pairs)
    np.testing.assert_allclose(d["a-a"][0], [2, 2])
    np.testing.assert_allclose(d["a-b"][0], [np.sum((np.eye(3)[0] - [.6, .8, 0]) ** 2), 1 + 1])  # old(a)-new(b) ...
    np.testing.assert_allclose(d["b-a"][0], [np.sum(([1, 0, 0] - np.eye(3)[1]) ** 2), 1 + 1])   # new(a)-old(b) ...
    np.testing.assert_allclose(d["cross"][0], np.concatenate([d["a-b"][0], d["b-a"][0]]))
    np.testing.assert_array_equal(d["cross"][1], [True, False, True, False])
    reports = evaluate_cross_model(old, new, [pairs, pairs], "view1")
    assert set(reports) == {"a-a", "b-b", "a-b", "b-a", "cross"} and reports["cross"]["n_pairs"] == 4


def test_cross_model_distances_by_fold_score_each_fold_with_its_model():
    from facenet_tf.harmonic.cross_model import cross_model_distances, cross_model_distances_by_fold

    rng = np.random.default_rng(0)
    images = [f"i{k}" for k in range(8)]
    position = {p: i for i, p in enumerate(images)}
    old, new_a, new_b = (ImageEmbeddings(n, position, rng.normal(size=(8, 4)).astype(np.float32), {})
                         for n in ("old", "A", "B"))
    pairs = PairArrays(tuple(images[:4]), tuple(images[4:]), np.array([True, False] * 2), np.array([0, 1, 2, 3]))
    d = cross_model_distances_by_fold(old, [new_a, new_b], pairs, folds_per_model=2)
    da, db = cross_model_distances(old, new_a, pairs), cross_model_distances(old, new_b, pairs)
    for key in ("a-a", "b-b", "a-b", "b-a"):
        np.testing.assert_allclose(d[key][0], np.concatenate([da[key][0][:2], db[key][0][2:]]))
    np.testing.assert_allclose(d["cross"][0][[0, 1, 4, 5]], da["cross"][0][[0, 1, 4, 5]])
    np.testing.assert_allclose(d["cross"][0][[2, 3, 6, 7]], db["cross"][0][[2, 3, 6, 7]])
    with pytest.raises(ValueError, match="do not cover fold 4"):
        cross_model_distances_by_fold(old, [new_a], pairs, folds_per_model=3)
    with pytest.raises(ValueError, match="folds_per_model"):
        evaluate_cross_model(old, [new_a, new_b], [pairs], "view1")
    # Old models per fold group too: folds 0-1 compare (old, A), folds 2-3 (old_b, B).
    old_b = ImageEmbeddings("old_b", position, rng.normal(size=(8, 4)).astype(np.float32), {})
    both = cross_model_distances_by_fold([old, old_b], [new_a, new_b], pairs, folds_per_model=2)
    dbb = cross_model_distances(old_b, new_b, pairs)
    for key in ("a-a", "b-b", "a-b", "b-a"):
        np.testing.assert_allclose(both[key][0], np.concatenate([da[key][0][:2], dbb[key][0][2:]]))
    with pytest.raises(ValueError, match="2 old models for 1 new"):
        cross_model_distances_by_fold([old, old_b], [new_a], pairs, folds_per_model=2)
    two_per_fold = PairArrays(tuple(images[:4] * 2), tuple(images[4:] * 2), np.array([True, False] * 4),
                              np.array([0, 0, 1, 1, 2, 2, 3, 3]))
    reports = evaluate_cross_model([old, old_b], [new_a, new_b], [two_per_fold], "view2", folds_per_model=2)
    assert reports["a-a"]["model_a"] == "old|old_b" and reports["a-a"]["n_pairs"] == 8


def test_cross_validation_folds_deal_each_kind_evenly():
    same = np.array([True] * 23 + [False] * 17)
    folds = cross_validation_folds(same, n_folds=5)
    for kind in (True, False):
        counts = np.bincount(folds[same == kind], minlength=5)
        assert counts.max() - counts.min() <= 1 and counts.sum() == (same == kind).sum()
    # pair k of its kind -> fold k mod n, in file order
    np.testing.assert_array_equal(folds[:7], [0, 1, 2, 3, 4, 0, 1])
    np.testing.assert_array_equal(folds[23:26], [0, 1, 2])
    with pytest.raises(ValueError, match="cannot fill 5 folds"):
        cross_validation_folds(np.array([True] * 10 + [False] * 3), n_folds=5)
    with pytest.raises(ValueError, match="n_folds"):
        cross_validation_folds(same, n_folds=1)


def test_view1_test_cv_is_devtest_in_ten_folds(lfw_root):
    """The View 1 protocol for models trained on DevTrain's identities: DevTest alone, thresholds from 9 folds."""
    view1 = load_pair_sets("view1", lfw_root)
    (cv,) = load_pair_sets("view1_test_cv", lfw_root)
    assert cv.paths_a == view1[1].paths_a and (cv.is_same == view1[1].is_same).all()
    assert len(cv.is_same) == 1000 and sorted(np.unique(cv.folds)) == list(range(10))
    for fold in range(10):
        assert (cv.is_same[cv.folds == fold]).sum() == 50 and (~cv.is_same[cv.folds == fold]).sum() == 50
    # separable toy embeddings: each identity gets its own axis, so every DevTest pair is classified right
    images = sorted(set(cv.paths_a + cv.paths_b))
    people = sorted({p.split("/")[-2] for p in images})
    axis = {name: i for i, name in enumerate(people)}
    vectors = np.eye(len(people), dtype=np.float32)[[axis[p.split("/")[-2]] for p in images]]
    emb = ImageEmbeddings("toy", {p: i for i, p in enumerate(images)}, vectors, {})
    reports = evaluate_cross_model(emb, emb, [cv], "view1_test_cv")
    assert reports["cross"]["metrics"]["accuracy_mean"] == 1.0 and reports["cross"]["n_pairs"] == 2000
