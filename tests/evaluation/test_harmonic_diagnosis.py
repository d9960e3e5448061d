"""harmonic_diagnosis (why old-new verification scores as it does) and the linear probe of harmonic phase 1
(experiments/harmonic_probe.py): residual split, cosine statistics, ridge fit, centroid targets."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from facenet_tf.evaluation.embed import l2_normalize
from facenet_tf.evaluation.lfw import ImageEmbeddings, PairArrays, harmonic_diagnosis

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "experiments"))
import harmonic_probe  # noqa: E402


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


def test_probe_centroid_targets_are_identity_means():
    rng = np.random.default_rng(3)
    _, ids, old, _ = _setup(rng)
    names = np.asarray([f"p{k}" for k in ids])
    centroid = harmonic_probe.targets_for("centroid", old, names)
    for k in np.unique(ids):
        rows = centroid[ids == k]
        np.testing.assert_allclose(rows, np.repeat(rows[:1], len(rows), 0), atol=1e-6)
        np.testing.assert_allclose(rows[0], l2_normalize(old[ids == k].mean(0)[None])[0], atol=1e-5)
    assert harmonic_probe.targets_for("image", old, names) is old
    with pytest.raises(ValueError, match="unknown target 'median'"):
        harmonic_probe.targets_for("median", old, names)


def test_probe_ridge_recovers_a_linear_map_and_shrinks_with_lambda():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(400, 24)) * rng.uniform(0.5, 5.0, size=24) + rng.normal(size=24)
    true_kernel, true_bias = rng.normal(size=(24, 8)), rng.normal(size=8)
    y = x @ true_kernel + true_bias
    kernel, bias = harmonic_probe.fit_ridge(x, y, 1e-10)  # in x's own units, not the standardised ones
    np.testing.assert_allclose(kernel, true_kernel, atol=1e-5)
    np.testing.assert_allclose(bias, true_bias, atol=1e-5)
    x_new = rng.normal(size=(50, 24))
    np.testing.assert_allclose(harmonic_probe.project(x_new, kernel, bias), l2_normalize(x_new @ true_kernel + true_bias),
                               atol=1e-5)
    heavy, _ = harmonic_probe.fit_ridge(x, y, 1e3)
    assert np.linalg.norm(heavy) < 0.01 * np.linalg.norm(true_kernel)

