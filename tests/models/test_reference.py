"""Reference mean embeddings of registered weights: the stored file, its checks, and centring."""

import json

import numpy as np
import pytest

from facenet_tf.evaluation.verification import pair_distances
from facenet_tf.models import reference


@pytest.fixture
def reference_dir(tmp_path, monkeypatch):
    monkeypatch.setattr(reference, "REFERENCE_DIR", tmp_path)
    return tmp_path


def test_written_means_read_back_with_their_provenance(reference_dir):
    rng = np.random.default_rng(0)
    plain, flipped = rng.normal(size=(5, 4)), rng.normal(size=(5, 4))
    path = reference.write_reference("demo", plain, flipped, margin=0.3, command="python x.py")
    assert path == reference_dir / "demo.json"
    data = reference.read_reference("demo")
    assert data["images"] == 5 and data["margin"] == 0.3 and data["command"] == "python x.py"
    np.testing.assert_allclose(reference.reference_mean("demo"), plain.mean(axis=0), atol=1e-6)
    np.testing.assert_allclose(reference.reference_mean("demo", flip=True), flipped.mean(axis=0), atol=1e-6)
    assert reference.reference_mean("other") is None and reference.reference_mean(None) is None


@pytest.mark.parametrize("change, message", [
    (lambda d: d.update(format="x"), "format"),
    (lambda d: d.update(mean=[1.0, float("nan")]), "mean is not a finite vector"),
    (lambda d: d.pop("mean_flip"), "mean_flip"),
])
def test_a_damaged_file_is_a_one_line_error_naming_it(reference_dir, change, message):
    reference.write_reference("demo", np.ones((2, 3)), np.ones((2, 3)))
    data = json.loads((reference_dir / "demo.json").read_text())
    change(data)
    (reference_dir / "demo.json").write_text(json.dumps(data))
    with pytest.raises(ValueError, match=f"demo.json.*{message}"):
        reference.read_reference("demo")


def test_write_refuses_unequal_or_empty_arrays(reference_dir):
    with pytest.raises(ValueError, match="equal"):
        reference.write_reference("demo", np.ones((2, 3)), np.ones((3, 3)))
    with pytest.raises(ValueError, match="N >= 1"):
        reference.write_reference("demo", np.ones((0, 3)), np.ones((0, 3)))


def test_centred_squared_l2_is_twice_the_cosine_distance_of_mean_subtracted_embeddings():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(6, 8)), rng.normal(size=(6, 8))
    mean = rng.normal(size=8)
    centred = pair_distances(reference.centre(a, mean), reference.centre(b, mean))
    np.testing.assert_allclose(centred, 2 * pair_distances(a, b, "cosine", mean), atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(reference.centre(a, mean), axis=1), 1, atol=1e-6)


def test_every_registered_reference_file_reads_and_matches_its_model():
    from facenet_tf.models.weights import REGISTRY

    for path in sorted(reference.REFERENCE_DIR.glob("*.json")):
        data = reference.read_reference(path.stem)
        entry = REGISTRY[path.stem]
        assert data["mean"].shape == data["mean_flip"].shape == (entry.embedding_dim,)
        assert data["weights"] == path.stem and data["command"].startswith("python experiments/reference_mean.py")
