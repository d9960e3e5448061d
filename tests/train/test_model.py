"""TripletModel: the custom train_step learns, reports the mining metrics, saves/loads as .keras."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from facenet_tf.models import create_model
from facenet_tf.train import TripletModel
from facenet_tf.train.model import METRIC_KEYS, NON_FINITE


def _batch(seed=0, identities=4, per_identity=4, shape=(40, 32, 3)):
    rng = np.random.default_rng(seed)
    bases = rng.uniform(0, 255, size=(identities, *shape))
    images = np.concatenate([np.clip(b + rng.normal(0, 15, size=(per_identity, *shape)), 0, 255) for b in bases])
    labels = np.repeat(np.arange(identities), per_identity).astype(np.int32)
    return images.astype("float32"), labels


def _model(**kwargs):
    keras.utils.set_random_seed(0)
    embedding = create_model("nns2", embedding_dim=8, input_shape=(40, 32, 3), batch_norm=True)
    model = TripletModel(embedding, **kwargs)
    model.compile(optimizer=keras.optimizers.Adagrad(0.05), jit_compile=False)
    return model


def test_train_step_learns_and_reports_metrics():
    images, labels = _batch()
    model = _model()
    first = model.train_on_batch(images, labels, return_dict=True)
    assert set(first) == {*METRIC_KEYS, "non_finite"} and first["non_finite"] == 0
    for _ in range(15):
        last = model.train_on_batch(images, labels, return_dict=True)
    assert all(np.isfinite(v) for v in last.values())
    assert last["loss"] < first["loss"]
    # 4 identities x 4 images: 4 * 4 * 3 = 48 anchor-positive pairs, each one triplet (semi-hard strategy)
    assert first["num_triplets"] == pytest.approx(48)
    assert 0.0 <= last["active_fraction"] <= 1.0 and 0.0 <= last["semi_hard_fraction"] <= 1.0


def test_test_step_reports_without_training():
    images, labels = _batch(1)
    model = _model()
    before = [w.numpy().copy() for w in model.trainable_weights]
    result = model.evaluate(images, labels, batch_size=len(images), verbose=0, return_dict=True)
    assert set(result) == set(METRIC_KEYS)  # the finiteness check is part of training only
    for b, w in zip(before, model.trainable_weights):
        np.testing.assert_array_equal(b, w.numpy())


@pytest.mark.parametrize("strategy", ["hardest", "batch_all", "random_violating"])
def test_other_strategies_train(strategy):
    images, labels = _batch(2)
    model = _model(strategy=strategy)
    out = model.train_on_batch(images, labels, return_dict=True)
    assert np.isfinite(out["loss"])


def test_keras_round_trip(tmp_path):
    model = _model(margin=0.3, strategy="hardest")
    images, _ = _batch(3)
    path = tmp_path / "triplet.keras"
    model.save(path)
    again = keras.saving.load_model(path)
    assert isinstance(again, TripletModel) and again.margin == 0.3 and again.strategy == "hardest"
    np.testing.assert_allclose(again(images).numpy(), model(images).numpy(), atol=1e-6)


def test_float16_embeddings_train():
    """Mixed precision: the embedding model computes in float16; distances and loss stay float32."""
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = _model()
        images, labels = _batch(4)
        out = model.train_on_batch(images, labels, return_dict=True)
        assert np.isfinite(out["loss"])
        assert model(images).dtype == tf.float32
    finally:
        keras.mixed_precision.set_global_policy("float32")


@pytest.mark.parametrize("inject,what", [("images", "embeddings"), ("weights", "weights")])
def test_non_finite_step_is_reported_and_not_applied(inject, what):
    """A NaN image or weight is reported in the step's logs (``non_finite``: the first of weights, embeddings,
    loss, gradients that is not finite) and the step leaves every trainable weight as it was."""
    images, labels = _batch(5)
    model = _model()
    model.train_on_batch(images, labels)  # AdaGrad accumulators are non-zero from here on
    if inject == "images":
        images[5, 10:20] = np.nan
    else:
        kernel = model.embedding_model.trainable_weights[0]
        kernel.assign(tf.tensor_scatter_nd_update(kernel, [[0] * len(kernel.shape)], [np.nan]))
    before = [w.numpy().copy() for w in model.trainable_weights]
    out = model.train_on_batch(images, labels, return_dict=True)
    assert NON_FINITE[int(out["non_finite"]) - 1] == what
    for b, w in zip(before, model.trainable_weights):
        np.testing.assert_array_equal(b, w.numpy())  # NaN where it was injected, nothing else changed
