"""Measuring exports: the embedding recorder, the int8-embedding LFW evaluation and the report tables
(facenet_tf.export.evaluate)."""

from __future__ import annotations

import numpy as np
import pytest

from facenet_tf.evaluation.embed import Embedder
from facenet_tf.export.evaluate import (EmbeddingRecorder, FormatResult, evaluate_int8_embeddings,
                                        format_int8_report, format_tflite_report, keras_embedder)


def _counting_embedder():
    calls = []

    def fn(images):
        calls.append(len(images))
        return images.reshape(len(images), -1)[:, :4] / 255.0

    return Embedder(fn, (2, 2), "counting"), calls


def test_recorder_remembers_by_content():
    embedder, calls = _counting_embedder()
    recorder = EmbeddingRecorder(embedder)
    images = np.random.default_rng(0).uniform(0, 255, (5, 2, 2, 3)).astype(np.float32)
    out = recorder.embedder(images)
    assert calls == [5] and len(recorder) == 5 and recorder.images == 5
    np.testing.assert_array_equal(recorder.lookup(images[[3, 1]]), out[[3, 1]])
    assert calls == [5]  # lookups do not embed
    with pytest.raises(KeyError, match="image 0 of the batch was never embedded"):
        recorder.lookup(images[:1] + 1)
    other = EmbeddingRecorder(embedder)
    other.embedder(images[2:])
    mine, theirs = recorder.matched(other)
    assert len(mine) == 3
    np.testing.assert_array_equal(mine, theirs)


def test_int8_embeddings_on_lfw_subset(lfw_root, micro_model):
    embedder = keras_embedder(micro_model, "micro")
    result = evaluate_int8_embeddings(embedder, scales=(127.0, 254.0, 2000.0), pairs="view2", subset=2,
                                      root=lfw_root, progress=False, log=lambda _: None)
    assert result.n_pairs == 40 and len(result.scales) == 3
    check = next(iter(result.distance_check.values()))
    assert check < 1e-6  # integer sum / scale^2 equals the float distance of the dequantised codes
    full_range = result.scales[0]
    assert full_range["clipped_fraction"] == 0  # unit vectors never leave [-1, 1]
    error_norm = np.sqrt(16) / 127  # 16-D codes, each component off by at most 1/127 between two vectors
    assert full_range["max_distance_error"] <= 2 * 2 * error_norm + error_norm ** 2
    clipped = [row["clipped_fraction"] for row in result.scales]
    assert clipped == sorted(clipped) and clipped[2] > 0.5  # range +-0.06: most components clipped
    for row in result.scales:
        assert 0 <= row["accuracy_mean"] <= 1
    text = format_int8_report(result, "cmd --flag", chosen_scale=254.0)
    assert "| 254 (chosen) |" in text and "`cmd --flag`" in text
    with pytest.raises(ValueError, match="k-fold"):
        evaluate_int8_embeddings(embedder, pairs="view1")


def test_tflite_report_table():
    metrics = {"accuracy_mean": 0.99, "accuracy_sem": 0.002, "val_mean": 0.95, "auc": 0.998, "n_pairs": 6000,
               "images": 7701}
    rows = [FormatResult("keras float32", 4_000_000, metrics, None, 30.0),
            FormatResult("tflite float32", 4_000_000, metrics,
                         {"n": 7701, "max_abs_difference": 1e-6, "min_cosine": 1.0, "mean_cosine": 1.0}, 25.0),
            FormatResult("tflite int8", 1_000_000, dict(metrics, accuracy_mean=0.987),
                         {"n": 7701, "max_abs_difference": 0.02, "min_cosine": 0.995, "mean_cosine": 0.998}, 40.0)]
    text = format_tflite_report(rows, "python export/tflite.py", "view2", "center", None, "m", ["a note"])
    lines = [line for line in text.splitlines() if line.startswith("| tflite int8")]
    assert len(lines) == 1 and "| 4.00× smaller |" in lines[0] and "| -0.30 |" in lines[0]
    assert "- a note" in text and "`python export/tflite.py`" in text


def test_recorder_embeds_each_image_once_and_round_trips_through_a_file(tmp_path):
    embedder, calls = _counting_embedder()
    recorder = EmbeddingRecorder(embedder)
    images = np.random.default_rng(1).uniform(0, 255, (4, 2, 2, 3)).astype(np.float32)
    first = recorder.embedder(images[:3])
    again = recorder.embedder(images)  # three known, one new
    assert calls == [3, 1] and recorder.images == 4
    np.testing.assert_array_equal(again[:3], first)
    recorder.save(tmp_path / "record.npz", "model-a")
    fresh_embedder, fresh_calls = _counting_embedder()
    fresh = EmbeddingRecorder(fresh_embedder)
    assert not fresh.load(tmp_path / "record.npz", "model-b")  # another model's record is not used
    assert fresh.load(tmp_path / "record.npz", "model-a") and len(fresh) == 4
    np.testing.assert_array_equal(fresh.embedder(images), again)
    assert fresh_calls == []


def test_model_fingerprint_changes_with_the_weights(micro_model):
    import keras

    from facenet_tf.export.evaluate import model_fingerprint

    copy = keras.models.clone_model(micro_model)
    copy.set_weights(micro_model.get_weights())
    assert model_fingerprint(copy) == model_fingerprint(micro_model)
    weights = copy.get_weights()
    weights[0] = weights[0] + 1e-3
    copy.set_weights(weights)
    assert model_fingerprint(copy) != model_fingerprint(micro_model)
