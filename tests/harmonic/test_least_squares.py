"""--harmonic_solver=least_squares (phase 1 in closed form, facenet_tf.harmonic.least_squares.solve_head_least_squares):
the final projection equals an independent ridge regression of the old embeddings on the projection's input
features (centre crops and their mirror images), every other layer is untouched, the Dense+BatchNorm head of
Inception-ResNet-v1 computes the same function in inference mode, harmonic-loss steps may follow, bad settings
name the flag; the same ridge solve serves experiments/harmonic_probe.py (``fit_ridge``, ``targets_for``)."""

import dataclasses
import os

import numpy as np
import pytest

os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

import keras  # noqa: E402

from facenet_tf.data.pipeline import load_face  # noqa: E402
from facenet_tf.evaluation.embed import l2_normalize  # noqa: E402
from facenet_tf.harmonic.least_squares import RidgeMoments, fit_ridge, project, targets_for  # noqa: E402
from facenet_tf.harmonic.models import head_layers, load_old_model  # noqa: E402
from facenet_tf.harmonic.old_embeddings import precompute_old_embeddings  # noqa: E402
from facenet_tf.harmonic.training import train  # noqa: E402
from facenet_tf.train import TrainConfig, load_embedding_model  # noqa: E402
from facenet_tf.train.loop import split_identities  # noqa: E402

TINY = dict(model="nns2", input_size=(40, 32), embedding_dim=8, identities_per_batch=3, faces_per_identity=3,
            extra_negatives=2, exclude_pairs=(), jitter=0.1)


# The few training steps here run eagerly (cheaper than tracing them); the solve does not depend on it.
pytestmark = pytest.mark.usefixtures("eager", "harmonic_eager")

def _config(tmp_path, data_dir, name, **kw):
    return TrainConfig.from_flags(workdir=str(tmp_path / name), data_dir=str(data_dir), **{**TINY, **kw})


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


def test_inception_resnet_head_with_batch_norm_computes_the_solution(env, tmp_path, irv1_phase1):
    source, flags = irv1_phase1
    config = _config(tmp_path, env, "irv1", **flags, harmonic_solver="least_squares", harmonic_ridge=0.01, steps=0)
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
        TrainConfig.from_flags(workdir=str(tmp_path), **kw)


def test_probe_centroid_targets_are_identity_means():
    rng = np.random.default_rng(3)
    ids = np.repeat(np.arange(12), 4)
    old = l2_normalize(rng.normal(size=(12, 16))[ids] + 0.3 * rng.normal(size=(len(ids), 16))).astype(np.float32)
    names = np.asarray([f"p{k}" for k in ids])
    centroid = targets_for("centroid", old, names)
    for k in np.unique(ids):
        rows = centroid[ids == k]
        np.testing.assert_allclose(rows, np.repeat(rows[:1], len(rows), 0), atol=1e-6)
        np.testing.assert_allclose(rows[0], l2_normalize(old[ids == k].mean(0)[None])[0], atol=1e-5)
    assert targets_for("image", old, names) is old
    with pytest.raises(ValueError, match="unknown target 'median'"):
        targets_for("median", old, names)


def test_probe_ridge_recovers_a_linear_map_and_shrinks_with_lambda():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(400, 24)) * rng.uniform(0.5, 5.0, size=24) + rng.normal(size=24)
    true_kernel, true_bias = rng.normal(size=(24, 8)), rng.normal(size=8)
    y = x @ true_kernel + true_bias
    kernel, bias = fit_ridge(x, y, 1e-10)  # in x's own units, not the standardised ones
    np.testing.assert_allclose(kernel, true_kernel, atol=1e-5)
    np.testing.assert_allclose(bias, true_bias, atol=1e-5)
    x_new = rng.normal(size=(50, 24))
    np.testing.assert_allclose(project(x_new, kernel, bias), l2_normalize(x_new @ true_kernel + true_bias),
                               atol=1e-5)
    heavy, _ = fit_ridge(x, y, 1e3)
    assert np.linalg.norm(heavy) < 0.01 * np.linalg.norm(true_kernel)



def test_ridge_moments_accumulate_batches_and_scale_the_penalty_by_rows_or_trace():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(300, 10)) * rng.uniform(0.5, 3.0, size=10)
    y = x @ rng.normal(size=(10, 4)) + 0.1 * rng.normal(size=(300, 4))
    whole = RidgeMoments().add(x, y)
    pieces = RidgeMoments()
    for k in range(0, 300, 64):
        pieces.add(x[k:k + 64], y[k:k + 64])
    for scale in ("rows", "trace"):
        for a, b in zip(whole.solve(0.5, scale), pieces.solve(0.5, scale)):
            np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
    # Every feature varies: the Gram diagonal is the number of rows, the two scales agree; a constant feature counts
    # 0 in the trace, so the 'trace' penalty is smaller (the probe's) and the fit is less shrunk.
    np.testing.assert_allclose(whole.solve(0.5, "rows")[0], whole.solve(0.5, "trace")[0], rtol=1e-5, atol=1e-6)
    padded = RidgeMoments().add(np.concatenate([x, np.ones((300, 10))], axis=1), y)
    rows, trace = padded.solve(0.5, "rows")[0][:10], padded.solve(0.5, "trace")[0][:10]
    assert np.linalg.norm(trace) > 1.1 * np.linalg.norm(rows)
    np.testing.assert_allclose(fit_ridge(x, y, 0.5)[0], whole.solve(0.5, "trace")[0], rtol=1e-9)
    with pytest.raises(ValueError, match="scale 'rows' or 'trace'"):
        whole.solve(0.5, "diagonal")
