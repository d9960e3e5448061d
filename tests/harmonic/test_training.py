"""Harmonic training (facenet_tf/harmonic/training.py): precomputed old embeddings are the old model's embeddings of
the centre crops of the batch's images, phase 1 trains only ``embedding_fc`` of the --init_from model, phase 2
trains everything and resumes from its checkpoints, in-step old embeddings run, bad settings name the flag."""

import dataclasses
import json
import os

import numpy as np
import pytest

os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

from facenet_tf.data.pipeline import load_face  # noqa: E402
from facenet_tf.data.sampling import BatchComposition, IdentityBalancedSampler  # noqa: E402
from facenet_tf.harmonic.models import load_old_model  # noqa: E402
from facenet_tf.harmonic.old_embeddings import precompute_old_embeddings  # noqa: E402
from facenet_tf.harmonic.training import build_harmonic_model, harmonic_training_dataset, train  # noqa: E402
from facenet_tf.train import TrainConfig, load_embedding_model  # noqa: E402
from facenet_tf.train.loop import split_identities  # noqa: E402

TINY = dict(model="nns2", input_size=(40, 32), embedding_dim=8, identities_per_batch=3, faces_per_identity=3,
            extra_negatives=2, exclude_pairs=(), jitter=0.1)


def _config(tmp_path, data_dir, name, **kw):
    return TrainConfig.from_flags(workdir=str(tmp_path / name), data_dir=str(data_dir), **{**TINY, **kw})


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


@pytest.mark.usefixtures("eager", "harmonic_eager")  # the traced harmonic step: the tests below
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
    assert (saved.harmonic.candidates, saved.harmonic.anchors, saved.harmonic.same_image_weight) == options
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
        TrainConfig.from_flags(workdir=str(tmp_path), **kw)


def test_phase1_from_a_keras_file_or_zoo_model_trains_only_the_final_projection(env, tmp_path, irv1_phase1):
    # Inception-ResNet-v1's final projection is Bottleneck + its batch norm (no 'embedding_fc'); --init_from takes
    # a .keras file, and --init_from=<zoo name> (+ --init_weights) builds it from the zoo.
    source, flags = irv1_phase1
    config = _config(tmp_path, env, "irv1", **flags)
    model = build_harmonic_model(config)
    trainable = {v.path.split("/")[0] for v in model.embedding_model.trainable_variables}
    assert trainable == {"Bottleneck", "Bottleneck_BatchNorm"}
    reference = load_old_model(str(source))
    conv = "Conv2d_1a_3x3"
    np.testing.assert_array_equal(model.embedding_model.get_layer(conv).get_weights()[0],
                                  reference.get_layer(conv).get_weights()[0])
    assert not np.allclose(model.embedding_model.get_layer("Bottleneck").get_weights()[0],
                           reference.get_layer("Bottleneck").get_weights()[0])  # re-initialised
    zoo = build_harmonic_model(config.with_flags(model="nns2", input_size=(40, 32), init_from="nns2"))
    assert {v.path.split("/")[0] for v in zoo.embedding_model.trainable_variables} == {"embedding_fc"}
    with pytest.raises(ValueError, match="--init_from 'nope'"):
        build_harmonic_model(config.with_flags(init_from="nope"))


@pytest.mark.usefixtures("harmonic_eager")
def test_a_run_with_a_flat_config_json_resumes_and_other_flags_are_refused(env, tmp_path, old_keras):
    """Workdirs written before the harmonic settings were nested hold flat harmonic_* keys: the same flags resume
    them; a changed harmonic flag is refused by its flag name. (The model runs eagerly: two steps cost less than
    tracing them twice.)"""
    from facenet_tf.train import loop

    config = _config(tmp_path, env, "flat", steps=1, checkpoint_every=1, harmonic_with=old_keras,
                     harmonic_old_embeddings="in_step", harmonic_candidates="old")
    with pytest.raises(ValueError, match="--harmonic_with: harmonic training runs through facenet_tf.harmonic"):
        loop.train(config, verbose=0)  # the plain loop alone does not know the harmonic model
    assert not (tmp_path / "flat").exists()
    train(config, verbose=0)
    path = tmp_path / "flat" / "config.json"
    flat = json.dumps(config.flags(), indent=2, sort_keys=True)
    path.write_text(flat)
    assert "harmonic_candidates" in json.loads(path.read_text()) and TrainConfig.load(path.parent) == config
    with pytest.raises(ValueError, match="--harmonic_candidates: was 'old', now 'both'"):
        train(config.with_flags(harmonic_candidates="both", steps=2), verbose=0)
    assert path.read_text() == flat  # refused before anything was written
    resumed = train(dataclasses.replace(config, steps=2), verbose=0)
    assert resumed["start_step"] == 1 and resumed["end_step"] == 2
    assert json.loads(path.read_text())["harmonic"]["candidates"] == "old"  # rewritten nested
