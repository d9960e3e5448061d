"""LFW end to end on a small subset of real View 2 pairs: align -> embed (once per image) -> 10-fold metrics, with
the pretrained Inception-ResNet-v1; plus the model sources the evaluation accepts."""

import json

import keras
import numpy as np
import pytest

from facenet_tf.evaluation.embed import embed, l2_normalize, load_embedder
from facenet_tf.evaluation.lfw import PairArrays, evaluate_lfw, evaluate_lfw_variants
from facenet_tf.data.lfw import load_pairs
from facenet_tf.models import create_model


@pytest.fixture(scope="module")
def pretrained(pretrained_weights_file):
    return load_embedder("inception_resnet_v1", weights=str(pretrained_weights_file))


def test_view2_subset_end_to_end(pretrained, lfw_root, tmp_path):
    """2 same + 2 different pairs from each of the 10 folds (40 pairs), MTCNN alignment, 10-fold protocol."""
    report = evaluate_lfw(pretrained, pairs="view2", root=str(lfw_root), alignment="detect", subset=2,
                          output_dir=tmp_path, progress=False, cache_root=tmp_path / "cache")
    assert report["n_pairs"] == 40 and report["metrics"]["n_folds"] == 10
    # the report says which images and which protocol file it scored
    assert report["image_root"] == str((lfw_root / "lfw-deepfunneled").absolute())
    (pairs_file,) = report["pairs_files"]
    assert pairs_file["path"] == str((lfw_root / "pairs.txt").absolute())
    assert pairs_file["sha256"] == "ea42330c62c92989f9d7c03237ed5d591365e89b3e649747777b70e692dc1592"
    assert report["metrics"]["accuracy_mean"] >= 0.95
    assert 0.8 < np.median([f["accuracy_threshold"] for f in report["metrics"]["folds"]]) < 1.6
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["metrics"]["accuracy_mean"] == report["metrics"]["accuracy_mean"]
    assert saved["pairs_files"] == report["pairs_files"] and "_result" not in saved
    assert (tmp_path / "roc.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_flip_variants_share_the_work_and_match_direct_embedding(pretrained, lfw_root, tmp_path):
    plain, flipped = evaluate_lfw_variants(pretrained, "view1", str(lfw_root), "center", (False, True), subset=3,
                                           progress=False, cache_root=tmp_path / "cache")
    assert plain["n_pairs"] == 6 and plain["flip"] is False and flipped["flip"] is True
    # the flip variant equals embedding image + mirror directly
    pairs = PairArrays.from_pairs(load_pairs("view1_test", lfw_root), subset=3)
    from facenet_tf.align import AlignConfig, align_images

    crops = align_images(list(pairs.paths_a[:2]), config=AlignConfig(mode="center", output_size=(160, 160)),
                         progress=False, cache=False).images
    direct = embed(pretrained, crops, flip=True, progress=False)
    manual = l2_normalize(pretrained(crops.astype("float32")) + pretrained(crops[:, :, ::-1].astype("float32")))
    np.testing.assert_allclose(direct, manual, atol=1e-5)


def test_load_embedder_sources(tmp_path):
    model = create_model("nns2", embedding_dim=8, input_shape=(64, 48, 3))
    path = tmp_path / "m.keras"
    model.save(path)
    from_file = load_embedder(str(path))
    x = np.random.default_rng(0).uniform(0, 255, (2, 64, 48, 3)).astype("float32")
    np.testing.assert_allclose(from_file(x), model(x).numpy(), atol=1e-6)
    assert from_file.input_size == (64, 48)
    assert load_embedder("nns2").input_size == (140, 116)
    with pytest.raises(ValueError, match="neither a zoo model"):
        load_embedder(str(tmp_path / "nothing"))
    with pytest.raises(ValueError, match="at_init needs a training workdir"):
        load_embedder("nns2", at_init=True)
    keras.backend.clear_session()
