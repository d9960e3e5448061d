"""Thresholds from labelled embeddings: each meets its definition on data built to have known answers."""

import json

import numpy as np
import pytest

from facenet_tf.evaluation import calibration


def people(n_people=12, per_person=8, spread=0.25, dim=32, seed=0):
    """Unit embeddings scattered around one random centre per person."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_people, dim))
    points = np.repeat(centres, per_person, axis=0) + spread * rng.normal(size=(n_people * per_person, dim)) * \
        np.linalg.norm(centres, axis=1, keepdims=True).repeat(per_person, axis=0) / np.sqrt(dim)
    points /= np.linalg.norm(points, axis=1, keepdims=True)
    return points.astype(np.float32), np.repeat([f"p{i:02d}" for i in range(n_people)], per_person)


def test_threshold_at_rate_is_the_largest_meeting_the_rate():
    negatives = np.array([0.5, 0.7, 0.9, 1.1, 1.3, 1.5, 1.7, 1.9, 2.1, 2.3])
    assert calibration.threshold_at_rate(negatives, 0.0999) == 0.4999  # accepts none
    assert calibration.threshold_at_rate(negatives, 0.1) == 0.6999  # accepts exactly one
    assert calibration.threshold_at_rate(negatives, 0.35) == 1.0999
    assert calibration.threshold_at_rate(negatives, 0.99) == 2.2999
    for rate in (0.05, 0.2, 0.55):
        t = calibration.threshold_at_rate(negatives, rate)
        assert np.mean(negatives <= t) <= rate < np.mean(negatives <= t + 0.2)


def test_calibrate_meets_each_definition():
    embeddings, labels = people()
    result = calibration.calibrate(embeddings, labels, far=0.01, identify_far=0.05, model="m")
    matrix, same, different = calibration.pair_distances(embeddings, labels)
    assert (result["faces"], result["people"], result["same_pairs"], result["different_pairs"]) == (
        96, 12, 12 * 28, 96 * 95 // 2 - 12 * 28)
    verify = result["verify"]["threshold"]
    assert np.mean(different <= verify) <= 0.01 < np.mean(different <= verify + 0.01)
    assert result["verify"]["far"] == pytest.approx(np.mean(different <= verify))
    assert result["verify"]["tar"] == pytest.approx(np.mean(same <= verify))
    # identify: nearest face of another person, per face
    other = np.where(labels[:, None] == labels[None, :], np.inf, matrix).min(axis=1)
    identify = result["identify"]["threshold"]
    assert np.mean(other <= identify) <= 0.05 < np.mean(other <= identify + 0.01)
    # cluster: no grid threshold scores a better F1
    from facenet_tf.evaluation import clustering

    f1 = clustering.pairwise_scores(labels, clustering.agglomerative_clustering(
        embeddings, result["cluster"]["threshold"])).f1
    assert f1 == pytest.approx(result["cluster"]["f1"])
    for t in (0.4, 0.8, 1.2, 1.6):
        assert clustering.pairwise_scores(labels, clustering.agglomerative_clustering(embeddings, t)).f1 <= f1 + 1e-12
    assert result["resolved"] and not result["warnings"] and result["model"] == "m"
    json.dumps(result)  # JSON-ready


def test_too_few_pairs_for_the_rate_is_said():
    embeddings, labels = people(n_people=3, per_person=3)
    result = calibration.calibrate(embeddings, labels, far=1e-3, identify_far=1e-2)
    assert not result["resolved"]
    assert any("27 different-person pairs cannot resolve" in w for w in result["warnings"])
    _, _, different = calibration.pair_distances(embeddings, labels)
    assert result["verify"]["threshold"] < different.min() and result["verify"]["far"] == 0


@pytest.mark.parametrize("labels, message", [
    (["a", "a", "a"], "at least two people"),
    (["a", "b", "c"], "one with two or more faces"),
])
def test_labels_that_cannot_be_calibrated(labels, message):
    with pytest.raises(calibration.CalibrationError, match=message):
        calibration.calibrate(np.eye(3, dtype=np.float32), labels)


def test_save_load_and_bad_files(tmp_path):
    embeddings, labels = people(n_people=4, per_person=4)
    result = calibration.calibrate(embeddings, labels)
    path = calibration.save_calibration(tmp_path / "c.json", result)
    assert calibration.load_calibration(path) == json.loads(json.dumps(result))
    with pytest.raises(FileExistsError):
        calibration.save_calibration(path, result)
    cases = {"missing.json": None, "text.json": "not json", "other.json": json.dumps({"format": "x"}),
             "bad.json": json.dumps({**result, "verify": {"threshold": 9}})}
    for name, text in cases.items():
        if text is not None:
            (tmp_path / name).write_text(text)
        with pytest.raises(calibration.CalibrationError, match=f"calibration file '.*{name}'"):
            calibration.load_calibration(tmp_path / name)


def test_plot(tmp_path):
    embeddings, labels = people(n_people=4, per_person=4)
    result = calibration.calibrate(embeddings, labels)
    _, same, different = calibration.pair_distances(embeddings, labels)
    path = calibration.plot_distances(result, same, different, tmp_path / "d.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
