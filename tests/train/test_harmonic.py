"""Harmonic training (facenet_tf/train/harmonic.py): precomputed old embeddings are the old model's embeddings of
the centre crops of the batch's images, phase 1 trains only ``embedding_fc`` of the --init_from model, phase 2
trains everything and resumes from its checkpoints, in-step old embeddings run, bad settings name the flag."""

import dataclasses
import os

import numpy as np
import pytest

os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

from facenet_tf.data.pipeline import load_face  # noqa: E402
from facenet_tf.data.sampling import BatchComposition, IdentityBalancedSampler  # noqa: E402
from facenet_tf.models import create_model  # noqa: E402
from facenet_tf.train import TrainConfig, load_embedding_model, train  # noqa: E402
from facenet_tf.train.harmonic import (build_harmonic_model, harmonic_training_dataset, load_old_model,  # noqa: E402
                                       precompute_old_embeddings)
from facenet_tf.train.loop import split_identities  # noqa: E402

TINY = dict(model="nns2", input_size=(40, 32), embedding_dim=8, identities_per_batch=3, faces_per_identity=3,
            extra_negatives=2, exclude_pairs=(), jitter=0.1)


def _config(tmp_path, data_dir, name, **kw):
    return TrainConfig(workdir=str(tmp_path / name), data_dir=str(data_dir), **{**TINY, **kw})


def test_precomputed_old_embeddings_are_the_old_model_on_centre_crops(env, tmp_path, old_keras):
    config = _config(tmp_path, env, "h", harmonic_with=old_keras, crop_fraction=0.8)
    index, _, _ = split_identities(config)
    old = load_old_model(old_keras)
    values = precompute_old_embeddings(config, index, batch_size=5)
    direct = old(np.stack([load_face(p, (36, 36), 0.8) for p in index.paths]).astype(np.float32)).numpy()
    np.testing.assert_allclose(values, direct, atol=1e-5)
    (file,) = (tmp_path / "cache" / "harmonic").glob("*.npz")  # cached on disk, per image
    with np.load(file) as data:
        assert sorted(data["paths"].tolist()) == sorted(index.paths)
        paths, vectors = data["paths"], data["vectors"].copy()
    vectors[1] = 7.0  # a cached row is read back, not recomputed; a missing image is computed and added
    np.savez(file.with_name("x.npz"), paths=paths[1:], vectors=vectors[1:])
    file.with_name("x.npz").replace(file)
    again = precompute_old_embeddings(config, index, batch_size=5)
    order = list(index.paths)
    assert (again[order.index(str(paths[1]))] == 7.0).all()
    np.testing.assert_allclose(again[order.index(str(paths[0]))], direct[order.index(str(paths[0]))], atol=1e-5)
    with np.load(file) as data:
        assert len(data["paths"]) == len(index.paths)
    composition = BatchComposition(3, 3, 2)
    dataset, _ = harmonic_training_dataset(config, index, composition, start_step=5, old_embeddings=values)
    (images, batch_old), labels = next(iter(dataset))
    expected = IdentityBalancedSampler(index.labels, composition, config.seed).batch(5)
    np.testing.assert_array_equal(labels.numpy(), index.labels[expected])
    np.testing.assert_allclose(batch_old.numpy(), values[expected])
    assert images.shape == (11, 40, 32, 3)


def test_phases_init_freeze_and_resume(env, tmp_path, old_keras):
    base = _config(tmp_path, env, "new", steps=2, checkpoint_every=2)
    train(base, verbose=0)
    new = load_embedding_model(base.workdir)

    phase1 = _config(tmp_path, env, "p1", steps=2, checkpoint_every=2, harmonic_with=old_keras,
                     harmonic_phase="embedding_layer", init_from=base.workdir, learning_rate=0.5)
    summary = train(phase1, verbose=0)
    assert "mean_d_new_old" in summary["history"]
    p1 = load_embedding_model(phase1.workdir)
    for layer in p1.layers:
        for a, b in zip(layer.get_weights(), new.get_layer(layer.name).get_weights()):
            if layer.name == "embedding_fc":
                assert not np.allclose(a, b)  # re-initialised and trained
            else:
                np.testing.assert_array_equal(a, b)  # frozen, batch-norm statistics included

    phase2 = _config(tmp_path, env, "p2", steps=2, checkpoint_every=1, harmonic_with=old_keras,
                     harmonic_phase="all", init_from=phase1.workdir, learning_rate=0.5)
    train(phase2, verbose=0)
    p2 = load_embedding_model(phase2.workdir)
    changed = [l.name for l in p2.layers if l.get_weights()
               and not all(np.allclose(a, b) for a, b in zip(l.get_weights(), p1.get_layer(l.name).get_weights()))]
    assert len(changed) > 3 and "embedding_fc" in changed
    resumed = train(dataclasses.replace(phase2, steps=3), verbose=0)
    assert resumed["start_step"] == 2 and resumed["end_step"] == 3


def test_in_step_old_embeddings_train(env, tmp_path, old_keras):
    config = _config(tmp_path, env, "s", steps=1, checkpoint_every=1, harmonic_with=old_keras,
                     harmonic_old_embeddings="in_step")
    summary = train(config, verbose=0)
    assert summary["end_step"] == 1 and np.isfinite(summary["history"]["loss"][0])


@pytest.mark.parametrize("candidates,anchors,weight", [("old", "new", 0.0), ("other", "both", 1.5)])
def test_loss_options_train_and_are_kept_in_the_saved_config(env, tmp_path, old_keras, candidates, anchors, weight):
    config = _config(tmp_path, env, "c", steps=1, checkpoint_every=1, harmonic_with=old_keras,
                     harmonic_old_embeddings="in_step", harmonic_candidates=candidates, harmonic_anchors=anchors,
                     harmonic_same_image_weight=weight)
    summary = train(config, verbose=0)
    assert np.isfinite(summary["history"]["loss"][0])
    saved = TrainConfig.load(config.workdir)
    options = (candidates, anchors, weight)
    assert (saved.harmonic_candidates, saved.harmonic_anchors, saved.harmonic_same_image_weight) == options
    model = build_harmonic_model(config)
    assert (model.candidates, model.anchors, model.same_image_weight) == options
    assert tuple(model.get_config()[k] for k in ("candidates", "anchors", "same_image_weight")) == options


@pytest.mark.parametrize("kw,flag", [
    (dict(harmonic_phase="layer"), "--harmonic_phase"),
    (dict(harmonic_with="x", harmonic_phase="embedding_layer"), "--init_from"),
    (dict(init_from="x"), "--init_from"),
    (dict(harmonic_with="x", strategy="batch_all"), "--strategy"),
    (dict(harmonic_with="x", harmonic_old_embeddings="cached"), "--harmonic_old_embeddings"),
    (dict(harmonic_with="x", harmonic_candidates="new"), "--harmonic_candidates"),
    (dict(harmonic_candidates="old"), "--harmonic_candidates"),
    (dict(harmonic_anchors="both"), "--harmonic_anchors"),
    (dict(harmonic_with="x", harmonic_anchors="old"), "--harmonic_anchors"),
    (dict(harmonic_with="x", harmonic_anchors="both", harmonic_candidates="old"), "--harmonic_candidates"),
    (dict(harmonic_same_image_weight=1.0), "--harmonic_same_image_weight"),
    (dict(harmonic_with="x", harmonic_same_image_weight=-1.0), "--harmonic_same_image_weight"),
    (dict(harmonic_with="x", init_weights="msceleb"), "--init_weights"),
])
def test_bad_settings_name_the_flag(tmp_path, kw, flag):
    with pytest.raises(ValueError, match=flag):
        TrainConfig(workdir=str(tmp_path), **kw)


def test_cross_model_distances_pair_each_image_with_each_model():
    from facenet_tf.evaluation.lfw import ImageEmbeddings, PairArrays, cross_model_distances, evaluate_cross_model

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
    from facenet_tf.evaluation.lfw import (ImageEmbeddings, PairArrays, cross_model_distances,
                                           cross_model_distances_by_fold, evaluate_cross_model)

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


def test_phase1_from_a_keras_file_or_zoo_model_trains_only_the_final_projection(env, tmp_path):
    # Inception-ResNet-v1's final projection is Bottleneck + its batch norm (no 'embedding_fc'); --init_from takes
    # a .keras file, and --init_from=<zoo name> (+ --init_weights) builds it from the zoo.
    source = tmp_path / "irv1.keras"
    create_model("inception_resnet_v1", embedding_dim=8, input_shape=(80, 80, 3)).save(source)
    old = tmp_path / "old.keras"
    create_model("nns2", embedding_dim=8, input_shape=(40, 32, 3)).save(old)
    config = _config(tmp_path, env, "irv1", model="inception_resnet_v1", input_size=(80, 80), harmonic_with=str(old),
                     harmonic_phase="embedding_layer", init_from=str(source))
    model = build_harmonic_model(config)
    trainable = {v.path.split("/")[0] for v in model.embedding_model.trainable_variables}
    assert trainable == {"Bottleneck", "Bottleneck_BatchNorm"}
    reference = load_old_model(str(source))
    conv = "Conv2d_1a_3x3"
    np.testing.assert_array_equal(model.embedding_model.get_layer(conv).get_weights()[0],
                                  reference.get_layer(conv).get_weights()[0])
    assert not np.allclose(model.embedding_model.get_layer("Bottleneck").get_weights()[0],
                           reference.get_layer("Bottleneck").get_weights()[0])  # re-initialised
    zoo = build_harmonic_model(dataclasses.replace(config, model="nns2", input_size=(40, 32), init_from="nns2"))
    assert {v.path.split("/")[0] for v in zoo.embedding_model.trainable_variables} == {"embedding_fc"}
    with pytest.raises(ValueError, match="--init_from 'nope'"):
        build_harmonic_model(dataclasses.replace(config, init_from="nope"))


def test_cross_validation_folds_deal_each_kind_evenly():
    from facenet_tf.evaluation.lfw import cross_validation_folds

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
    from facenet_tf.evaluation.lfw import ImageEmbeddings, evaluate_cross_model, load_pair_sets

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
