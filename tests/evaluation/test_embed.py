"""``embed`` / ``Embedder`` refuse non-finite embeddings: a model with a NaN weight, or one that overflows to inf
for some inputs, is named with the first bad input instead of being scored."""

import keras
import numpy as np
import pytest

from facenet_tf.evaluation.embed import Embedder, NonFiniteEmbeddingError, embed, keras_embedder


def tiny_model(name: str, kernel: np.ndarray, activation: str | None = None) -> keras.Model:
    inputs = keras.Input((8, 8, 3))
    pooled = keras.layers.GlobalAveragePooling2D()(inputs)
    dense = keras.layers.Dense(kernel.shape[1], activation=activation, use_bias=False)
    model = keras.Model(inputs, dense(pooled), name=name)
    dense.set_weights([kernel.astype("float32")])
    return model


@pytest.fixture(scope="module")
def images():
    """Six images: dark ones (0-0.1), except image 3, which is bright (255)."""
    x = np.random.default_rng(0).uniform(0, 0.1, (6, 8, 8, 3)).astype("float32")
    x[3] = 255.0
    return x


def test_a_nan_weight_is_refused_at_the_first_input(images):
    kernel = np.ones((3, 4))
    kernel[1, 2] = np.nan
    model = tiny_model("nan_weight_model", kernel)
    with pytest.raises(NonFiniteEmbeddingError, match="'nan_weight_model' has 1 NaN or infinite weight values"):
        keras_embedder(model)  # refused on sight: an activation could hide the NaN
    embedder = Embedder(lambda x: model(x, training=False).numpy(), (8, 8), "nan_weight_model")  # unchecked call
    with pytest.raises(NonFiniteEmbeddingError) as error:
        embed(embedder, images, batch_size=4, progress=False)
    assert isinstance(error.value, ValueError)
    assert (error.value.model, error.value.index) == ("nan_weight_model", 0)
    assert "nan_weight_model" in str(error.value) and "input 0" in str(error.value) and "NaN" in str(error.value)
    with pytest.raises(NonFiniteEmbeddingError):  # a direct call is checked too
        embedder(images[:1])
    keras.backend.clear_session()


def test_inf_for_some_inputs_names_the_first_of_them(images):
    # exp(100 * mean pixel): finite for the dark images, inf for the bright image 3 (in the second batch)
    model = tiny_model("overflow_model", np.full((3, 2), 100.0 / 3), activation="exponential")
    embedder = keras_embedder(model)
    assert np.isfinite(embed(embedder, images[:3], batch_size=2, progress=False)).all()
    with pytest.raises(NonFiniteEmbeddingError, match=r"'overflow_model'.*\(inf\) for input 3\b") as error:
        embed(embedder, images, batch_size=2, progress=False)
    assert error.value.index == 3
    # the mirror pass of flip is checked as well, with the same input numbers
    with pytest.raises(NonFiniteEmbeddingError) as error:
        embed(embedder, images, batch_size=2, flip=True, progress=False)
    assert error.value.index == 3
    keras.backend.clear_session()


def test_plain_callables_and_named_sources(images):
    def half_inf(batch):
        out = np.ones((len(batch), 2), np.float32)
        out[batch[:, 0, 0, 0] > 100] = np.inf
        return out

    with pytest.raises(NonFiniteEmbeddingError, match=r"'half_inf'.*input 3 \('b\.jpg'\)"):
        embed(half_inf, images, batch_size=4, progress=False, sources=["a", "a", "a", "b.jpg", "c", "d"])
    finite = Embedder(lambda x: np.ones((len(x), 2)), (8, 8), "ones")
    assert embed(finite, images, batch_size=4, progress=False).shape == (6, 2)
