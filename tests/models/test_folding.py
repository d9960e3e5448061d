"""Batch norm folded into the preceding convolution / dense layer (``facenet_tf.models.folding``): every zoo model
with non-trivial batch-norm statistics gives the same embeddings folded, with no batch norm left, and reloads."""

import keras
import numpy as np
import pytest

from facenet_tf.models import create_model, fold_batch_norm, list_models
from facenet_tf.models.folding import find_folds, folded_kernel_and_bias
from tests.models.test_zoo import _small_shape

TOLERANCE = 1e-5  # max abs difference of the (L2-normalised) embeddings
# one block of each kind: every layer type of the network, a third of its build and run time
SHALLOW = {"inception_resnet_v1": {"block35_repeats": 1, "block17_repeats": 1, "block8_repeats": 1}}


def _randomise_batch_norms(model: keras.Model, seed: int = 0) -> int:
    """Random moving statistics (and beta / gamma where present) in every batch norm; returns how many."""
    rng = np.random.default_rng(seed)
    count = 0
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            n = layer.moving_mean.shape[0]
            layer.moving_mean.assign(rng.normal(0.0, 0.5, n))
            layer.moving_variance.assign(rng.uniform(0.2, 3.0, n))
            if layer.center:
                layer.beta.assign(rng.normal(0.0, 0.5, n))
            if layer.scale:
                layer.gamma.assign(rng.uniform(0.5, 2.0, n))
            count += 1
    return count


def _images(shape, count=3, seed=1):
    return np.random.default_rng(seed).uniform(0, 255, (count, *shape)).astype("float32")


def _batch_norms(model):
    return [layer.name for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]


@pytest.mark.parametrize("name", list_models())
def test_folded_zoo_model_matches_and_reloads(name, tmp_path):
    shape = _small_shape(name)
    model = create_model(name, input_shape=shape, embedding_dim=16, batch_norm=True, **SHALLOW.get(name, {}))
    assert _randomise_batch_norms(model) > 0
    images = _images(shape)
    expected = model(images, training=False).numpy()

    folded = fold_batch_norm(model)
    out = folded(images, training=False).numpy()
    error = np.abs(out - expected).max()
    print(f"{name}: max abs error {error:.2e}")
    assert error <= TOLERANCE

    # every batch norm of the zoo follows a convolution or dense layer read by nothing else: all are gone, and
    # every other layer survives under its name
    assert _batch_norms(folded) == []
    assert [layer.name for layer in folded.layers] == [
        layer.name for layer in model.layers if layer.name not in set(_batch_norms(model))]
    assert folded.name == model.name and folded.input.shape == model.input.shape
    assert folded.output.shape == model.output.shape

    path = tmp_path / f"{name}_folded.keras"
    folded.save(path)
    reloaded = keras.saving.load_model(path)
    np.testing.assert_array_equal(reloaded(images, training=False).numpy(), out)
    # the original is untouched (folding computes new weights, it does not rescale the old ones)
    np.testing.assert_array_equal(model(images, training=False).numpy(), expected)


def test_model_without_batch_norm_comes_back_equivalent():
    shape = _small_shape("nn2")
    model = create_model("nn2", input_shape=shape, embedding_dim=16, batch_norm=False)
    assert find_folds(model) == []
    copy = fold_batch_norm(model)
    assert copy is not model
    assert [(type(a), a.name) for a in copy.layers] == [(type(b), b.name) for b in model.layers]
    images = _images(shape)
    np.testing.assert_allclose(copy(images).numpy(), model(images).numpy(), atol=1e-6)
    # the weights are copies: changing the copy leaves the original as it was
    before = model(images).numpy()
    layer = copy.get_layer("conv1")
    layer.kernel.assign(np.zeros(layer.kernel.shape))
    np.testing.assert_array_equal(model(images).numpy(), before)
    assert not np.allclose(copy(images).numpy(), before, atol=1e-3)


@pytest.mark.parametrize("scale,center,use_bias", [(True, True, True), (False, True, False), (True, False, False)])
def test_folded_kernel_and_bias(scale, center, use_bias):
    """The arithmetic, against the definition: gamma * (conv(x) + b - mean) / sqrt(var + eps) + beta."""
    rng = np.random.default_rng(2)
    conv = keras.layers.Conv2D(4, 3, use_bias=use_bias)
    bn = keras.layers.BatchNormalization(scale=scale, center=center, epsilon=0.01)
    x = rng.standard_normal((2, 6, 6, 3)).astype("float32")
    z = conv(x)
    bn(z, training=False)
    if use_bias:
        conv.bias.assign(rng.standard_normal(4))
    _randomise_batch_norms(keras.Sequential([bn]), seed=3)
    kernel, bias = folded_kernel_and_bias(conv, bn)

    gamma = bn.gamma.numpy() if scale else 1.0
    beta = bn.beta.numpy() if center else 0.0
    expected = (conv(x).numpy() - bn.moving_mean.numpy()) / np.sqrt(bn.moving_variance.numpy() + 0.01) * gamma + beta
    refolded = keras.layers.Conv2D(4, 3)
    refolded.build(x.shape)
    refolded.set_weights([kernel, bias])
    np.testing.assert_allclose(refolded(x).numpy(), expected, atol=1e-5)
    np.testing.assert_allclose(bn(conv(x), training=False).numpy(), expected, atol=1e-5)


def test_only_batch_norms_after_a_lone_linear_conv_are_folded():
    """Kept: a batch norm after a ReLU, after a conv whose output is also read elsewhere, after a conv with an
    activation, after a shared (twice-called) conv, and one called with ``training=True``; folded: the rest."""
    inputs = keras.Input((8, 8, 3), name="image")
    a = keras.layers.Conv2D(4, 3, padding="same", name="a")(inputs)
    a_bn = keras.layers.BatchNormalization(name="a_bn")(a)                    # folded
    b = keras.layers.Conv2D(4, 1, name="b")(a_bn)
    b_bn = keras.layers.BatchNormalization(name="b_bn")(b)                    # kept: b also feeds the sum below
    relu = keras.layers.ReLU(name="relu")(b_bn)
    relu_bn = keras.layers.BatchNormalization(name="relu_bn")(relu)           # kept: follows a ReLU
    c = keras.layers.Conv2D(4, 1, activation="relu", name="c")(relu_bn)
    c_bn = keras.layers.BatchNormalization(name="c_bn")(c)                    # kept: conv has an activation
    shared = keras.layers.Conv2D(4, 1, name="shared")
    s_bn = keras.layers.BatchNormalization(name="s_bn")(shared(c_bn))         # kept: shared conv
    s2 = shared(s_bn)
    d = keras.layers.Conv2D(4, 1, name="d")(s2)
    d_bn = keras.layers.BatchNormalization(name="d_bn")(d, training=True)      # kept: training forced
    total = keras.layers.Add(name="sum")([d_bn, b])
    pooled = keras.layers.GlobalAveragePooling2D(name="pool")(total)
    e = keras.layers.Dense(5, name="e")(pooled)
    e_bn = keras.layers.BatchNormalization(name="e_bn")(e)                    # folded: dense with a bias
    model = keras.Model(inputs, e_bn, name="mixed")
    _randomise_batch_norms(model)
    for layer in (model.get_layer("e"), model.get_layer("a")):  # non-zero biases
        if layer.use_bias:
            layer.bias.assign(np.random.default_rng(4).standard_normal(layer.bias.shape))

    assert sorted(fold.batch_norm.name for fold in find_folds(model)) == ["a_bn", "e_bn"]
    folded = fold_batch_norm(model)
    assert sorted(_batch_norms(folded)) == ["b_bn", "c_bn", "d_bn", "relu_bn", "s_bn"]
    assert folded.get_layer("a").use_bias and folded.get_layer("e").use_bias
    x = np.random.default_rng(5).standard_normal((2, 8, 8, 3)).astype("float32")
    # (an explicit training=False overrides the training=True of d_bn's call in both)
    np.testing.assert_allclose(folded(x, training=False).numpy(), model(x, training=False).numpy(), atol=1e-5)


def test_nested_and_sequential_models():
    inner_in = keras.Input((6, 6, 2))
    inner_out = keras.layers.BatchNormalization(name="inner_bn")(keras.layers.Conv2D(3, 3, name="inner_conv")(inner_in))
    inner = keras.Model(inner_in, inner_out, name="inner")
    outer_in = keras.Input((6, 6, 2))
    outer = keras.Model(outer_in, keras.layers.Flatten(name="flat")(inner(outer_in)), name="outer")
    _randomise_batch_norms(inner)
    folded = fold_batch_norm(outer)
    assert _batch_norms(folded.get_layer("inner")) == []
    x = np.random.default_rng(6).standard_normal((2, 6, 6, 2)).astype("float32")
    np.testing.assert_allclose(folded(x).numpy(), outer(x).numpy(), atol=1e-5)

    sequential = keras.Sequential([keras.Input((5,)), keras.layers.Dense(4, use_bias=False, name="dense"),
                                   keras.layers.BatchNormalization(name="bn")], name="seq")
    _randomise_batch_norms(sequential)
    folded = fold_batch_norm(sequential)
    assert [layer.name for layer in folded.layers][-1] == "dense"
    v = np.random.default_rng(7).standard_normal((3, 5)).astype("float32")
    np.testing.assert_allclose(folded(v).numpy(), sequential(v).numpy(), atol=1e-5)

    with pytest.raises(ValueError, match="must be built"):
        fold_batch_norm(keras.Sequential([keras.layers.Dense(2)]))


def test_fuse_activation_moves_plain_relus_into_the_conv():
    shape = _small_shape("inception_resnet_v1")
    model = create_model("inception_resnet_v1", input_shape=shape, embedding_dim=8, **SHALLOW["inception_resnet_v1"])
    _randomise_batch_norms(model)
    folds = find_folds(model, fuse_activation=True)
    # every conv_bn's Activation("relu") goes; the bottleneck's batch norm (no activation after it) only folds
    assert {fold.activation for fold in folds} == {"relu", "linear"}
    assert [fold.layer.name for fold in folds if fold.activation == "linear"] == ["Bottleneck"]
    fused = fold_batch_norm(model, fuse_activation=True)
    removed = {fold.activation_layer.name for fold in folds if fold.activation_layer is not None}
    assert not removed & {layer.name for layer in fused.layers}
    assert fused.get_layer("Conv2d_1a_3x3").get_config()["activation"] == "relu"
    images = _images(shape, 2)
    np.testing.assert_allclose(fused(images).numpy(), model(images, training=False).numpy(), atol=TOLERANCE)

    # a capped ReLU (ReLU6) is not plain relu: it stays a layer
    inputs = keras.Input((4, 4, 2))
    y = keras.layers.BatchNormalization(name="bn")(keras.layers.Conv2D(2, 1, name="conv")(inputs))
    capped = keras.Model(inputs, keras.layers.ReLU(max_value=6.0, name="relu6")(y))
    (fold,) = find_folds(capped, fuse_activation=True)
    assert fold.activation_layer is None
    assert "relu6" in [layer.name for layer in fold_batch_norm(capped, fuse_activation=True).layers]


def test_frozen_function_matches_the_model_at_any_batch_and_holds_no_variables():
    """``frozen_function``: the folded model's embeddings (≤ 1e-5) at batch 1 and 3, from a graph whose weights are
    constants (no variable is captured); later weight changes do not reach it; ``keras_embedder(frozen=True)``
    embeds the same."""
    from facenet_tf.evaluation.embed import keras_embedder
    from facenet_tf.models import frozen_function

    keras.utils.set_random_seed(0)
    model = create_model("nns2", embedding_dim=16, input_shape=(64, 48, 3))
    _randomise_batch_norms(model)
    folded = fold_batch_norm(model)
    call = frozen_function(folded)
    images = _images((64, 48, 3))
    expected = np.asarray(model(images, training=False))
    for batch in (images[:1], images):
        np.testing.assert_allclose(call(batch).numpy(), expected[:len(batch)], atol=TOLERANCE)
    concrete = call.get_concrete_function()
    assert not concrete.variables and not concrete.captured_inputs
    folded.layers[-2].kernel.assign(np.zeros(folded.layers[-2].kernel.shape, "float32"))  # the model moves on
    np.testing.assert_allclose(call(images).numpy(), expected, atol=TOLERANCE)
    embedder = keras_embedder(model, "nns2", frozen=True)
    np.testing.assert_allclose(embedder(images), expected, atol=TOLERANCE)
