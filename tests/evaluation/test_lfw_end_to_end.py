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


def test_recipes_share_the_work_and_score_the_pairs_embeddings(lfw_root, tmp_path):
    """Every recipe of one call scores the same embeddings: the flip=mean recipe is the old flip=True report, and
    each recipe's metrics equal ``Recipe.score`` on the pairs' embeddings taken directly (a small random model,
    centre crops, View 1 subset: thresholds and mean from DevTrain)."""
    from facenet_tf.align import AlignConfig, align_images
    from facenet_tf.evaluation.embed import keras_embedder
    from facenet_tf.evaluation.verification import Recipe

    keras.utils.set_random_seed(0)
    embedder = keras_embedder(create_model("nns2", embedding_dim=8, input_shape=(64, 48, 3)), "tiny")
    recipes = (Recipe("mean"), Recipe("concat", "cosine", True), Recipe("none", "squared_l2", True))
    kwargs = dict(subset=4, progress=False, cache_root=tmp_path / "cache")
    reports = evaluate_lfw_variants(embedder, "view1", str(lfw_root), "center", (), recipes=recipes, **kwargs)
    (old,) = evaluate_lfw_variants(embedder, "view1", str(lfw_root), "center", (True,), **kwargs)
    assert reports[0]["metrics"]["accuracy_mean"] == old["metrics"]["accuracy_mean"] and old["flip"] is True
    assert [r["recipe"]["flip"] for r in reports] == ["mean", "concat", "none"]
    sets = [PairArrays.from_pairs(load_pairs(name, lfw_root), subset=4) for name in ("view1_train", "view1_test")]
    align = AlignConfig(mode="center", output_size=(64, 48))

    def embeddings(pairs):
        sides = [align_images(list(paths), config=align, progress=False, cache=False).images
                 for paths in (pairs.paths_a, pairs.paths_b)]
        return (tuple(embedder(x) for x in sides), tuple(embedder(x[:, :, ::-1].copy()) for x in sides))

    (train_plain, train_mirror), (test_plain, test_mirror) = map(embeddings, sets)
    for recipe, report in zip(recipes, reports):
        direct = recipe.score(test_plain, test_mirror, sets[1].is_same,
                              train=(train_plain, train_mirror, sets[0].is_same))
        assert report["metrics"]["accuracy_mean"] == pytest.approx(direct.accuracy_mean)
        assert report["metrics"]["folds"][0]["accuracy_threshold"] == pytest.approx(
            direct.folds[0].accuracy_threshold, abs=1e-6)


def test_fusion_scores_the_members_unit_embeddings_side_by_side(lfw_root, tmp_path):
    """Two small random models at their own input sizes: the fused report equals the recipe applied to the
    concatenation of each member's flip-combined embeddings / sqrt(2); bad fusions are refused."""
    from facenet_tf.align import AlignConfig, align_images
    from facenet_tf.evaluation.embed import keras_embedder
    from facenet_tf.evaluation.lfw import FusionMember, evaluate_lfw_fusion
    from facenet_tf.evaluation.verification import Recipe, combine_flip

    keras.utils.set_random_seed(1)
    first = keras_embedder(create_model("nns2", embedding_dim=8, input_shape=(64, 48, 3)), "first")
    second = keras_embedder(create_model("nns2", embedding_dim=4, input_shape=(56, 56, 3)), "second")
    members = [FusionMember(first, AlignConfig(mode="center", output_size=(64, 48)), "mean"),
               FusionMember(second, AlignConfig(mode="center", output_size=(56, 56), crop_size=150), "none")]
    recipe = Recipe("none", "cosine", True)
    (report,) = evaluate_lfw_fusion(members, "view1", str(lfw_root), subset=4, recipes=(recipe,), progress=False,
                                    cache_root=tmp_path / "cache")
    sets = [PairArrays.from_pairs(load_pairs(name, lfw_root), subset=4) for name in ("view1_train", "view1_test")]

    def side(member, paths):
        crops = align_images(list(paths), config=member.align, progress=False, cache=False).images
        mirror = member.embedder(crops[:, :, ::-1].copy()) if member.flip != "none" else None
        return combine_flip(member.embedder(crops), mirror, member.flip)

    def fused(pairs):
        return tuple(np.concatenate([side(m, paths) for m in members], axis=1) / np.sqrt(2)
                     for paths in (pairs.paths_a, pairs.paths_b))

    direct = recipe.score(fused(sets[1]), None, sets[1].is_same, train=(fused(sets[0]), None, sets[0].is_same))
    assert report["metrics"]["accuracy_mean"] == pytest.approx(direct.accuracy_mean)
    assert report["model"] == "first + second" and [m["flip"] for m in report["members"]] == ["mean", "none"]
    with pytest.raises(ValueError, match="at least two"):
        evaluate_lfw_fusion(members[:1], "view1", str(lfw_root), subset=4)
    with pytest.raises(ValueError, match="flip=none"):
        evaluate_lfw_fusion(members, "view1", str(lfw_root), subset=4, recipes=(Recipe("mean"),))


@pytest.mark.parametrize("flags, expected", [
    (["--recipe=flip=max"], "eval_lfw.py: error: --recipe: flip must be one of ('none', 'mean', 'concat'), got 'max'"),
    (["--recipe=flip=mean", "--flip"], "eval_lfw.py: error: --flip and --recipe both say how to use the mirror image"),
    (["--test_time_crops=zoom"], "eval_lfw.py: error: --test_time_crops: expected one of ['none', 'scale3', 'shift5']"),
])
def test_a_bad_recipe_is_a_usage_error_before_any_work(tmp_path, flags, expected):
    from tests.reliability.conftest import python_env, run

    out = tmp_path / "out"
    proc = run(["experiments/eval_lfw.py", "--model=nns2", "--pairs=view1", f"--output_dir={out}", "--alignment=center",
                *flags], tmp_path / "log.txt", timeout=60, env=python_env(FACENET_TF_CACHE_DIR=str(tmp_path / "c")))
    assert proc.returncode == 2, proc.output
    (line,) = proc.output.strip().splitlines()
    assert line.startswith(expected), line
    assert not (tmp_path / "c").exists() and not (out / "results.json").exists()


def test_test_time_crops_embed_each_view_and_average(lfw_root, tmp_path):
    """``crops``: an image's embedding is the normalised sum of its views' embeddings (each view a shifted or
    rescaled crop of the same detection), mirror images likewise; the views are refused where they mean nothing."""
    from facenet_tf.align import AlignConfig, align_images
    from facenet_tf.evaluation.embed import keras_embedder, l2_normalize
    from facenet_tf.evaluation.lfw import embed_pairs, load_pair_sets, test_time_views

    keras.utils.set_random_seed(0)
    embedder = keras_embedder(create_model("nns2", embedding_dim=8, input_shape=(64, 48, 3)), "tiny")
    sets = load_pair_sets("view1_test", str(lfw_root), subset=1)
    align = AlignConfig(mode="detect", output_size=(64, 48), margin=0.2)
    views = test_time_views(align, "scale3")
    assert [v.margin for v in views] == [0.1, 0.2, 0.3] and all(v.shift == (0, 0) for v in views)
    assert [v.shift for v in test_time_views(align, "shift5")][1:] == [(-0.05, 0), (0.05, 0), (0, -0.05), (0, 0.05)]
    ((plain, mirrored),), _ = embed_pairs(embedder, sets, align, mirrored=True, progress=False,
                                          cache_root=tmp_path, crops="shift5")
    crops = [align_images(sets[0].paths_a, config=v, progress=False, cache_root=tmp_path).images
             for v in test_time_views(align, "shift5")]
    np.testing.assert_allclose(plain[0], l2_normalize(sum(embedder(c) for c in crops)), atol=1e-5)
    np.testing.assert_allclose(mirrored[0], l2_normalize(sum(embedder(c[:, :, ::-1].copy()) for c in crops)),
                               atol=1e-5)
    assert not np.allclose(crops[0], crops[1])
    with pytest.raises(ValueError, match="detect alignment"):
        test_time_views(AlignConfig(mode="center"), "scale3")
    with pytest.raises(ValueError, match="must be one of"):
        test_time_views(align, "zoom9")


def test_eval_lfw_scores_with_the_selected_recipe_unless_told_otherwise(tmp_path):
    """Without --recipe or --flip, eval_lfw uses the recipe selected on View 1; --flip alone is the paper's
    squared L2 with the mirror image averaged in."""
    from tests.reliability.conftest import python_env, run
    from tests.reliability.test_evaluation import make_tree

    pairs = make_tree(tmp_path / "user")
    keras.utils.set_random_seed(0)
    create_model("nns2", embedding_dim=8, input_shape=(32, 32, 3)).save(tmp_path / "tiny.keras")
    recipes = {}
    for name, extra in (("default", []), ("flip", ["--flip"])):
        out = tmp_path / name
        proc = run(["experiments/eval_lfw.py", f"--model={tmp_path / 'tiny.keras'}", f"--pairs={pairs}",
                    "--alignment=center", "--crop_size=32", "--nocache", f"--output_dir={out}", *extra],
                   tmp_path / f"{name}.txt", timeout=120, env=python_env())
        assert proc.returncode == 0, proc.output
        recipes[name] = json.loads((out / "results.json").read_text())["recipe"]
    assert recipes["default"] == {"flip": "mean", "distance": "cosine", "subtract_mean": True}
    assert recipes["flip"] == {"flip": "mean", "distance": "squared_l2", "subtract_mean": False}
