"""``--mixed_precision``: the mixed_float16 policy for the trained network only (float32 embeddings, loss scaled,
the policy restored), steps skipped on a loss-scale overflow still counted, checkpoints that resume, a float32
final model, and the setting kept in config.json."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from facenet_tf.train import TrainConfig, train
from facenet_tf.train import loop
from tests.train.test_model import _batch


def _config(workdir, data_dir, **kw):
    return TrainConfig(workdir=str(workdir), data_dir=str(data_dir), model="nns2", input_size=(40, 32),
                       embedding_dim=8, identities_per_batch=3, faces_per_identity=3, extra_negatives=2,
                       exclude_pairs=(), checkpoint_every=2, **{"steps": 2, **kw})


def _assert_policy_restored():
    assert keras.config.dtype_policy().name == "float32"
    assert keras.layers.Dense(2).compute_dtype == "float32"


def test_config_round_trips_and_refuses_harmonic(tmp_path):
    config = TrainConfig(workdir=str(tmp_path), mixed_precision=True)
    assert TrainConfig.from_json(config.to_json()) == config and config.mixed_precision
    assert not TrainConfig(workdir=str(tmp_path)).mixed_precision
    with pytest.raises(ValueError, match="--mixed_precision: expected off with --harmonic_with"):
        TrainConfig.from_flags(workdir=str(tmp_path), mixed_precision=True, harmonic_with="x", init_from="y")


def test_mixed_model_embeds_like_the_float32_model_with_its_weights(tmp_path):
    mixed = loop.build_model(_config(tmp_path / "m", tmp_path, mixed_precision=True))
    _assert_policy_restored()
    plain = loop.build_model(_config(tmp_path / "p", tmp_path))
    assert isinstance(mixed.optimizer, keras.optimizers.LossScaleOptimizer)
    assert not isinstance(plain.optimizer, keras.optimizers.LossScaleOptimizer)
    conv = next(layer for layer in mixed.embedding_model.layers if isinstance(layer, keras.layers.Conv2D))
    assert conv.compute_dtype == "float16" and conv.kernel.dtype == "float32"
    mixed.embedding_model.set_weights(plain.embedding_model.get_weights())
    images, _ = _batch(6)
    embeddings = mixed(images)
    assert embeddings.dtype == tf.float32
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1.0, atol=1e-5)
    difference = np.abs(embeddings.numpy() - plain(images).numpy()).max()
    assert 0 < difference < 1e-2  # float16 compute: close to float32, not the same
    exported = loop.float32_embedding_model(mixed.embedding_model, _config(tmp_path, tmp_path, mixed_precision=True))
    assert all(layer.compute_dtype == "float32" for layer in exported.layers)
    np.testing.assert_allclose(exported(images).numpy(), plain(images).numpy(), atol=1e-6)


def test_loss_scale_overflow_skips_the_step_but_counts_it(tmp_path):
    """An overflow of the scaled loss is not a divergence: the weights stay, the scale halves, the step counts."""
    keras.utils.set_random_seed(0)
    model = loop.build_model(_config(tmp_path / "m", tmp_path, mixed_precision=True))
    images, labels = _batch(7)
    model.optimizer.dynamic_scale.assign(3e38)  # any gradient times this overflows float32
    before = [w.numpy().copy() for w in model.trainable_weights]
    out = model.train_on_batch(images, labels, return_dict=True)
    assert out["non_finite"] == 0 and np.isfinite(out["loss"])
    assert int(model.optimizer.iterations.numpy()) == 1
    assert float(model.optimizer.dynamic_scale.numpy()) == pytest.approx(1.5e38)
    for b, w in zip(before, model.trainable_weights):
        np.testing.assert_array_equal(b, w.numpy())
    model.optimizer.dynamic_scale.assign(1.0)
    out = model.train_on_batch(images, labels, return_dict=True)
    assert out["non_finite"] == 0 and int(model.optimizer.iterations.numpy()) == 2
    assert any(not np.array_equal(b, w.numpy()) for b, w in zip(before, model.trainable_weights))


@pytest.mark.usefixtures("eager")
def test_mixed_training_resumes_and_saves_a_float32_model(tiny_tree, tmp_path):
    workdir = tmp_path / "run"
    summary = train(_config(workdir, tiny_tree, mixed_precision=True, steps=4), verbose=0)
    _assert_policy_restored()
    assert summary["end_step"] == 4 and np.isfinite(summary["history"]["loss"]).all()
    assert TrainConfig.load(workdir).mixed_precision
    checkpoint = str(workdir / loop.CHECKPOINT_DIR / "ckpt-4")
    scales = [tf.train.load_variable(checkpoint, name) for name, _ in tf.train.list_variables(checkpoint)
              if "dynamic_scale" in name]
    resumed = train(_config(workdir, tiny_tree, mixed_precision=True, steps=6), verbose=0)
    assert resumed["start_step"] == 4 and resumed["end_step"] == 6
    assert np.isfinite(resumed["history"]["loss"]).all()
    model = loop.load_embedding_model(workdir)
    assert all(layer.compute_dtype == "float32" for layer in model.layers)
    images, _ = _batch(8)
    embeddings = model(images).numpy()
    assert embeddings.dtype == np.float32 and np.isfinite(embeddings).all()
    assert len(scales) == 1 and np.isfinite(scales[0]) and scales[0] > 0
    with pytest.raises(ValueError, match="--mixed_precision: was True, now False"):
        train(_config(workdir, tiny_tree, steps=8), verbose=0)
