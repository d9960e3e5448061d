"""The one-line Python API on real LFW photos (the pretrained model), and its README snippet."""

import re
import shutil

import numpy as np
import pytest

import facenet_tf as fn
from facenet_tf.paths import REPO_ROOT

A, B = "Aaron_Peirsol", "Amelie_Mauresmo"


@pytest.fixture(scope="module")
def album(tmp_path_factory, lfw_root, pretrained_weights_file):
    from facenet_tf import paths

    images = paths.lfw_images_dir(lfw_root)
    root = tmp_path_factory.mktemp("album")
    for person in (A, B):
        (root / "known" / person).mkdir(parents=True)
        for number in (1, 2):
            shutil.copy(images / person / f"{person}_{number:04d}.jpg", root / "known" / person)
        shutil.copy(images / person / f"{person}_0003.jpg", root / f"{person}_probe.jpg")
    return root


def test_verify_embed_identify_cluster(album):
    same = fn.verify(album / f"{A}_probe.jpg", album / "known" / A / f"{A}_0001.jpg")
    other = fn.verify(album / f"{A}_probe.jpg", album / "known" / B / f"{B}_0001.jpg")
    assert same["same"] and not other["same"] and same["threshold"] == fn.api.VERIFY_THRESHOLD == 1.28
    assert same["distance"] < same["threshold"] < other["distance"] and same["model"] == "inception_resnet_v1@msceleb+centred"
    faces = fn.embed(album / "known")
    assert len(faces) == 4 and all(np.isclose(np.linalg.norm(f["embedding"]), 1, atol=1e-4) for f in faces)
    named = {r["photo"].rsplit("/", 1)[-1]: r["name"] for r in fn.identify(sorted(album.glob("*_probe.jpg")),
                                                                        gallery=album / "known")}
    assert named == {f"{A}_probe.jpg": A, f"{B}_probe.jpg": B}
    groups = {}
    for face in fn.cluster(album / "known"):
        groups.setdefault(face["photo"].split("/")[-2], set()).add(face["group"])
    assert len(groups[A]) == len(groups[B]) == 1 and groups[A] != groups[B]


def test_a_model_without_measured_thresholds_asks_for_one(album, tmp_path):
    from facenet_tf.models import create_model

    create_model("nns2", embedding_dim=8, input_shape=(64, 64, 3)).save(tmp_path / "tiny.keras")
    net = fn.FaceNet(str(tmp_path / "tiny.keras"))
    with pytest.raises(ValueError, match="pass threshold="):
        net.verify(album / f"{A}_probe.jpg", album / f"{B}_probe.jpg")
    assert fn.FaceNet(str(tmp_path / "tiny.keras"), threshold=1.0).verify(
        album / f"{A}_probe.jpg", album / f"{B}_probe.jpg")["threshold"] == 1.0
    with pytest.raises(ValueError, match="no face found"):
        fn.FaceNet(str(tmp_path / "tiny.keras"), threshold=1.0).verify(album / f"{A}_probe.jpg", REPO_ROOT / "results" / "training_nns2_lfw_roc.png")


def test_the_readme_python_snippet_runs(album, monkeypatch):
    """The README's Python block, run with its photo names pointing at LFW photos."""
    text = (REPO_ROOT / "README.md").read_text()
    block = re.search(r"```python\n(import facenet_tf as fn\n.*?)```", text, re.S).group(1)
    monkeypatch.chdir(album)
    shutil.copy(album / f"{A}_probe.jpg", album / "a.jpg")
    shutil.copy(album / "known" / A / f"{A}_0001.jpg", album / "b.jpg")
    shutil.copytree(album / "known", album / "photos")
    namespace = {}
    exec(compile(block, "README.md", "exec"), namespace)
    assert namespace["result"]["same"] is True


def test_verify_pairs_and_calibration(album, tmp_path):
    net = fn.FaceNet()
    probe, known_a, known_b = album / f"{A}_probe.jpg", album / "known" / A / f"{A}_0001.jpg", \
        album / "known" / B / f"{B}_0001.jpg"
    results = net.verify_pairs([(probe, known_a), (probe, known_b), (probe, tmp_path / "none.jpg")])
    assert [r.get("same") for r in results] == [True, False, None] and "does not exist" in results[2]["error"]
    assert results[0]["distance"] == pytest.approx(net.verify(probe, known_a)["distance"])
    assert net.verify_pairs([(probe, known_b)], threshold=3.9)[0]["same"] is True

    result, same, different = net.calibrate(album / "known")
    assert fn.calibrate(album / "known") == result
    assert (result["people"], result["faces"], len(same), len(different)) == (2, 4, 2, 4)
    calibrated = fn.FaceNet(calibration=result)
    assert (calibrated.threshold, calibrated.identify_threshold, calibrated.cluster_threshold) == (
        result["verify"]["threshold"], result["identify"]["threshold"], result["cluster"]["threshold"])
    assert fn.FaceNet(calibration=result, threshold=1.0).threshold == 1.0
    # cluster: complete linkage at the measured default (results/photo_defaults.md), unless calibrated otherwise
    from facenet_tf.evaluation import clustering

    points = np.array([[0.0], [0.9], [1.8], [2.7]])  # a chain: single/average join more than complete
    assert net.cluster_linkage == result["cluster"]["linkage"] == "complete"
    assert net.cluster_threshold == fn.api.CLUSTER_THRESHOLD == 1.24
    np.testing.assert_array_equal(net.group(points), clustering.agglomerative_clustering(points, 1.24, "complete"))
    assert len(set(net.group(points))) == 2 and len(set(net.group(points, linkage="single"))) == 1
    with pytest.raises(ValueError, match="measured for model nn2, not inception_resnet_v1@msceleb\\+centred"):
        fn.FaceNet(calibration={**result, "model": "nn2"})


def test_flip_and_centre_are_the_stored_mean_subtracted_from_flip_averaged_embeddings(album, tmp_path):
    from facenet_tf.evaluation.embed import embed
    from facenet_tf.models import create_model
    from facenet_tf.models.reference import centre, reference_mean

    photos = sorted(album.glob("*_probe.jpg"))
    net = fn.FaceNet(flip=True, centre=True)
    found, embeddings = net.find(photos)
    mean = reference_mean("msceleb", flip=True)
    assert mean is not None and not np.allclose(mean, reference_mean("msceleb"))
    np.testing.assert_allclose(embeddings, centre(embed(net.embedder, found.crops, flip=True, progress=False), mean),
                               atol=1e-5)
    create_model("nns2", embedding_dim=8, input_shape=(64, 64, 3)).save(tmp_path / "tiny.keras")
    with pytest.raises(ValueError, match="no stored reference mean"):
        fn.FaceNet(str(tmp_path / "tiny.keras"), centre=True)
