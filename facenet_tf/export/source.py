"""What an export starts from: a zoo model (name + weights), a training workdir, or a ``.keras`` file.

``load_model_source`` turns any of them into a :class:`ModelSource`: the Keras embedding model (float32 RGB
0-255 in, L2-normalised embeddings out, preprocessing inside) plus what the metadata needs to say about it.
Every way it can fail raises ``ModelSourceError`` (a ``ValueError``) whose message says what was expected, so the
binaries can turn it into a usage error.
"""

from __future__ import annotations

import dataclasses
import os
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import keras

#: ``weights=`` value that asks for an untrained (randomly initialised) zoo model, e.g. for speed benchmarks.
RANDOM_WEIGHTS = "random"

#: What each registry preprocessing name means (the model's first layer computes it).
PREPROCESSING = {
    "scale": "x / 127.5 - 1 (keras Rescaling), on float32 RGB 0-255",
    "prewhiten": "(x - mean(x)) / max(std(x), 1 / sqrt(x.size)) per image (davidsandberg/facenet prewhiten), "
                 "on float32 RGB 0-255",
    "fixed": "(x - 127.5) / 128 (davidsandberg/facenet fixed image standardization), on float32 RGB 0-255",
    "unknown": "whatever the model's first layers compute; input float32 RGB 0-255",
}


class ModelSourceError(ValueError):
    """The model to export cannot be found or loaded; the message says what was expected."""


class NonFiniteModelError(ValueError):
    """The model gives NaN or infinite embeddings for ordinary images (e.g. NaN weights): not exported."""


@dataclasses.dataclass(frozen=True)
class ModelSource:
    """A Keras embedding model and where it came from.

    ``name`` is the zoo architecture (``nn2``, ``inception_resnet_v1`` ...) when known, else the model's name;
    ``kind`` is ``zoo``, ``workdir``, ``keras_file`` or ``model`` (an in-memory model handed to the library).
    """

    model: keras.Model
    name: str
    kind: str
    location: str | None = None
    weights: str | None = None
    preprocessing: str = "unknown"

    @property
    def input_size(self) -> tuple[int, int]:
        shape = self.model.input.shape
        return int(shape[1]), int(shape[2])

    @property
    def embedding_size(self) -> int:
        return int(self.model.output.shape[-1])

    def check_images(self) -> np.ndarray:
        """The fixed check batch: two uniform-noise RGB images (0-255, seed 0) at the model's input size."""
        return np.random.default_rng(0).uniform(0, 255, (2, *self.input_size, 3)).astype(np.float32)

    def check_embeddings(self) -> np.ndarray:
        """The model's embeddings of :meth:`check_images`; raises :class:`NonFiniteModelError` (one line, with the
        number of non-finite weights) when any is NaN or infinite."""
        from facenet_tf.models.common import non_finite_weights

        embeddings = np.asarray(self.model(self.check_images(), training=False), np.float32)
        bad, total = non_finite_weights(self.model)
        if np.isfinite(embeddings).all() and not bad:
            return embeddings
        raise NonFiniteModelError(
            f"model '{self.name}' gives NaN or infinite embeddings for ordinary images; {bad} of its {total} weight "
            "values are NaN or infinite (a diverged training run?); not exported")

    def describe(self) -> dict[str, Any]:
        """JSON-ready: what the metadata's ``source`` says."""
        out: dict[str, Any] = {"kind": self.kind, "model": self.name}
        if self.location is not None:
            out["path"] = self.location
        if self.weights is not None:
            out["weights"] = self.weights
        return out


def from_keras_model(model: keras.Model, name: str | None = None, kind: str = "model",
                     location: str | None = None, weights: str | None = None) -> ModelSource:
    """Wraps an in-memory embedding model, checking it is image (N, H, W, 3) -> embedding (N, d)."""
    import keras

    from facenet_tf.models import list_models

    if not isinstance(model, keras.Model):
        raise ModelSourceError(f"expected a keras.Model, got {type(model).__name__}")
    in_shape, out_shape = tuple(model.input.shape), tuple(model.output.shape)
    if len(in_shape) != 4 or in_shape[3] != 3 or in_shape[1] is None or in_shape[2] is None:
        raise ModelSourceError(f"model '{model.name}' must take RGB images of a fixed size (None, H, W, 3); its "
                               f"input shape is {in_shape}")
    if len(out_shape) != 2 or out_shape[1] is None:
        raise ModelSourceError(f"model '{model.name}' must return embeddings (None, d); its output shape is "
                               f"{out_shape}")
    name = name or model.name
    from facenet_tf.models.source import infer_preprocessing

    preprocessing = infer_preprocessing(model)  # what the model's first layer computes
    if preprocessing == "unknown" and name in list_models():
        from facenet_tf.models import get_spec

        preprocessing = get_spec(name).preprocessing
    return ModelSource(model, name, kind, location, weights, preprocessing)


def load_model_source(model: str | os.PathLike, weights: str | None = None) -> ModelSource:
    """The embedding model that ``facenet_tf.models.load_model`` resolves from ``model`` (a zoo name, ``zoo@weights``,
    registered weights, a training workdir, a ``.keras`` file, a SavedModel or a TensorFlow 1 graph). A zoo name
    needs ``weights`` here: registered weights, a weights file, or ``"random"`` for an untrained model (only
    sensible for speed measurements). The model comes in its inference form, batch norm folded into the layer
    before it (``load_model(..., inference=True)``): what is exported computes fewer ops, the same embeddings to
    ~1e-6."""
    from facenet_tf.models import list_models
    from facenet_tf.models.source import load_model, split_source

    text, weights = split_source(model, weights)
    if text in list_models() and weights is None:
        raise ModelSourceError(
            f"zoo model '{text}' needs weights: 'msceleb' (inception_resnet_v1 pretrained on MS-Celeb-1M), the "
            f"path of a weights file, or '{RANDOM_WEIGHTS}' for an untrained model")
    try:
        loaded = load_model(text, None if weights == RANDOM_WEIGHTS else weights, inference=True)  # BN folded
    except (FileNotFoundError, OSError, ValueError, TypeError) as error:
        raise ModelSourceError(str(error).splitlines()[0]) from None
    return from_keras_model(loaded.model, loaded.architecture, loaded.kind, location=loaded.location,
                            weights=weights)
