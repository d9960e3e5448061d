"""--harmonic_solver=least_squares (phase 1 in closed form, facenet_tf.train.harmonic.solve_head_least_squares):
the final projection equals an independent ridge regression of the old embeddings on the projection's input
features (centre crops and their mirror images), every other layer is untouched, the Dense+BatchNorm head of
Inception-ResNet-v1 computes the same function in inference mode, harmonic-loss steps may follow, bad settings
name the flag."""

import dataclasses
import os

import numpy as np
import pytest

os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

import keras  # noqa: E402

from facenet_tf.data.pipeline import load_face  # noqa: E402
from facenet_tf.models import create_model  # noqa: E402
from facenet_tf.train import TrainConfig, load_embedding_model, train  # noqa: E402
from facenet_tf.train.harmonic import head_layers, load_old_model, precompute_old_embeddings  # noqa: E402
from facenet_tf.train.loop import split_identities  # noqa: E402

TINY = dict(model="nns2", input_size=(40, 32), embedding_dim=8, identities_per_batch=3, faces_per_identity=3,
            extra_negatives=2, exclude_pairs=(), jitter=0.1)


def _config(tmp_path, data_dir, name, **kw):
    return TrainConfig(workdir=str(tmp_path / name), data_dir=str(data_dir), **{**TINY, **kw})


def _reference(model, config, old, ridge, crops=None):
    """Ridge regression written out directly: explicit standardised design matrix, lstsq on the stacked system."""
    index, _, _ = split_identities(config)
    dense = model.get_layer(head_layers(model)[0])
    features = keras.Model(model.input, dense.input)
    if crops is None:
        crops = np.stack([load_face(p, config.image_size, config.crop_fraction) for p in index.paths])
    crops = np.asarray(crops, np.float32)
    x = np.concatenate([features(crops).numpy(), features(crops[:, :, ::-1]).numpy()]).astype(np.float64)
    y = np.concatenate([old, old]).astype(np.float64)
    mean, std = x.mean(0), x.std(0) + 1e-6
    z = (x - mean) / std
    stacked = np.concatenate([z, np.sqrt(ridge * len(z)) * np.eye(z.shape[1])])
    target = np.concatenate([y - y.mean(0), np.zeros((z.shape[1], y.shape[1]))])
    w = np.linalg.lstsq(stacked, target, rcond=None)[0]
    z_crops = (features(crops).numpy().astype(np.float64) - mean) / std
    projected = z_crops @ w + y.mean(0)
    return crops, projected / np.linalg.norm(projected, axis=1, keepdims=True)


@pytest.mark.parametrize("ridge", [1e-6, 100.0])
def test_nns2_head_is_the_ridge_solution_and_nothing_else_changes(env, tmp_path, old_keras, ridge):
    base = _config(tmp_path, env, "new", steps=2, checkpoint_every=2)
    train(base, verbose=0)
    new = load_embedding_model(base.workdir)
    config = _config(tmp_path, env, "p1", steps=0, harmonic_with=old_keras, harmonic_phase="embedding_layer",
                     init_from=base.workdir, harmonic_solver="least_squares", harmonic_ridge=ridge)
    summary = train(config, verbose=0)
    assert summary["end_step"] == 0 and "history" not in summary
    stats = summary["least_squares"]
    assert stats["rows"] == 64 and stats["ridge"] == ridge  # 32 images and their mirror images
    p1 = load_embedding_model(config.workdir)
    for layer in p1.layers:
        if layer.name != "embedding_fc":
            for a, b in zip(layer.get_weights(), new.get_layer(layer.name).get_weights()):
                np.testing.assert_array_equal(a, b)
    index, _, _ = split_identities(config)
    old = precompute_old_embeddings(config, index)
    crops, expected = _reference(p1, config, old, ridge)
    np.testing.assert_allclose(p1(crops).numpy(), expected, atol=2e-4)
    # More features than rows: a near-interpolating fit copies each image's old embedding; heavy shrinkage
    # leaves every prediction near the mean old embedding.
    old_unit = old / np.linalg.norm(old, axis=1, keepdims=True)
    mean_unit = old_unit.mean(0) / np.linalg.norm(old_unit.mean(0))
    spread = np.linalg.norm(old_unit - mean_unit, axis=1).mean()
    error = np.linalg.norm(p1(crops).numpy() - old_unit, axis=1).mean()
    to_mean = np.linalg.norm(p1(crops).numpy() - mean_unit, axis=1).mean()
    if ridge < 1e-3:
        assert error < 0.1 * spread
    else:
        assert to_mean < 0.5 * spread < error


def test_inception_resnet_head_with_batch_norm_computes_the_solution(env, tmp_path):
    source = tmp_path / "irv1.keras"
    create_model("inception_resnet_v1", embedding_dim=8, input_shape=(80, 80, 3)).save(source)
    old = tmp_path / "old.keras"
    create_model("nns2", embedding_dim=8, input_shape=(40, 32, 3)).save(old)
    config = _config(tmp_path, env, "irv1", model="inception_resnet_v1", input_size=(80, 80), harmonic_with=str(old),
                     harmonic_phase="embedding_layer", init_from=str(source), harmonic_solver="least_squares",
                     harmonic_ridge=0.01, steps=0)
    train(config, verbose=0)
    model = load_embedding_model(config.workdir)
    reference = load_old_model(str(source))
    np.testing.assert_array_equal(model.get_layer("Conv2d_1a_3x3").get_weights()[0],
                                  reference.get_layer("Conv2d_1a_3x3").get_weights()[0])
    index, _, _ = split_identities(config)
    crops, expected = _reference(model, config, precompute_old_embeddings(config, index), 0.01)
    np.testing.assert_allclose(model(crops, training=False).numpy(), expected, atol=2e-4)


def test_fit_on_crops_aligned_like_evaluation(env, tmp_path, old_keras):
    # --harmonic_fit_alignment: both models see the images as facenet_tf.align crops them, each at its own size
    # ('center' here: the tiny tree has no faces for a detector), and the old model embeds them in the solve.
    from facenet_tf.align import align_images

    base = _config(tmp_path, env, "new", steps=2, checkpoint_every=2)
    train(base, verbose=0)
    config = _config(tmp_path, env, "p1", steps=0, harmonic_with=old_keras, harmonic_phase="embedding_layer",
                     init_from=base.workdir, harmonic_solver="least_squares", harmonic_ridge=0.01,
                     harmonic_fit_alignment="center")
    summary = train(config, verbose=0)
    assert summary["least_squares"]["alignment"] == "center" and summary["least_squares"]["rows"] == 64
    model = load_embedding_model(config.workdir)
    index, _, _ = split_identities(config)
    new_crops = align_images(index.paths, mode="center", output_size=(40, 32), progress=False).images
    old_crops = align_images(index.paths, mode="center", output_size=(36, 36), progress=False).images
    old = load_old_model(old_keras)(old_crops.astype(np.float32)).numpy()
    crops, expected = _reference(model, config, old, 0.01, crops=new_crops)
    np.testing.assert_allclose(model(crops).numpy(), expected, atol=2e-4)


def test_harmonic_loss_steps_follow_the_solve_and_resume(env, tmp_path, old_keras):
    base = _config(tmp_path, env, "new", steps=2, checkpoint_every=2)
    train(base, verbose=0)
    config = _config(tmp_path, env, "p1", steps=2, checkpoint_every=1, harmonic_with=old_keras,
                     harmonic_phase="embedding_layer", init_from=base.workdir, harmonic_solver="least_squares",
                     learning_rate=0.01)
    summary = train(config, verbose=0)
    assert summary["end_step"] == 2 and len(summary["history"]["loss"]) == 2 and "least_squares" in summary
    resumed = train(dataclasses.replace(config, steps=3), verbose=0)
    assert resumed["start_step"] == 2 and resumed["end_step"] == 3 and "least_squares" not in resumed


@pytest.mark.parametrize("kw,flag", [
    (dict(harmonic_solver="lstsq"), "--harmonic_solver"),
    (dict(harmonic_solver="least_squares"), "--harmonic_solver"),
    (dict(harmonic_with="x", harmonic_solver="least_squares"), "--harmonic_solver"),  # phase all
    (dict(harmonic_with="x", init_from="y", harmonic_phase="embedding_layer", harmonic_solver="least_squares",
          harmonic_old_embeddings="in_step"), "--harmonic_old_embeddings"),
    (dict(harmonic_ridge=-1.0), "--harmonic_ridge"),
    (dict(steps=0), "--steps"),
    (dict(harmonic_fit_alignment="detect"), "--harmonic_fit_alignment"),
    (dict(harmonic_with="x", init_from="y", harmonic_phase="embedding_layer", harmonic_solver="least_squares",
          harmonic_fit_alignment="mtcnn"), "--harmonic_fit_alignment"),
])
def test_bad_least_squares_settings_name_the_flag(tmp_path, kw, flag):
    with pytest.raises(ValueError, match=flag):
        TrainConfig(workdir=str(tmp_path), **kw)
