"""Turning face crops into embeddings, from any model source: a zoo name (+ weights), a training workdir, a
``.keras`` file or an exported SavedModel.

Every source becomes an :class:`Embedder`: a function from float32 RGB 0-255 images at the model's input size to
L2-normalised embeddings, plus that input size. Embeddings of a set of images are computed once, batched, with a
progress bar, and reused by every metric. A model that yields a NaN or an infinite embedding is refused
(:class:`NonFiniteEmbeddingError`): its distances, and every metric computed from them, would be meaningless.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Sequence

import numpy as np
from tqdm.auto import tqdm


class NonFiniteEmbeddingError(ValueError):
    """A model produced a NaN or infinite embedding. ``model`` names the model, ``index`` is the position of the
    first such input among the images being embedded, ``source`` names that input when known."""

    def __init__(self, model: str, index: int, value: float, source: str | None = None) -> None:
        self.model = model
        self.index = index
        self.source = source
        kind = "NaN" if np.isnan(value) else "inf"
        where = f"input {index}" + (f" ({source!r})" if source is not None else "")
        super().__init__(f"model '{model}' produced a non-finite embedding ({kind}) for {where}; "
                         "refusing to use it (check the model's weights and its input preprocessing)")

    @classmethod
    def for_weights(cls, model: str, bad: int, total: int) -> "NonFiniteEmbeddingError":
        """The error for a model whose weights hold ``bad`` non-finite values of ``total`` (``index`` -1)."""
        error = cls.__new__(cls)
        error.model, error.index, error.source = model, -1, None
        ValueError.__init__(error, f"model '{model}' has {bad} NaN or infinite weight values (of {total}): its "
                                   "embeddings would be meaningless (a diverged training run?); refusing to use it")
        return error


def check_finite(embeddings: np.ndarray, model: str, first_index: int = 0,
                 sources: Sequence[str] | None = None) -> np.ndarray:
    """Returns ``embeddings`` (N, d) when every value is finite; else raises :class:`NonFiniteEmbeddingError` for
    the first bad row, numbered from ``first_index`` (the row's position in a larger set) and named by
    ``sources[index]`` when given."""
    finite = np.isfinite(embeddings).reshape(len(embeddings), -1).all(axis=1)
    if not finite.all():
        row = int(np.argmin(finite))
        index = first_index + row
        value = embeddings[row][~np.isfinite(embeddings[row])].flat[0]
        raise NonFiniteEmbeddingError(model, index, float(value), None if sources is None else str(sources[index]))
    return embeddings


@dataclasses.dataclass(frozen=True)
class Embedder:
    """``fn(images float32 (N, H, W, 3) in 0-255) -> embeddings (N, d)``; ``input_size`` is (H, W).

    Calling it checks the embeddings (:func:`check_finite`); ``first_index`` and ``sources`` only number and name
    the inputs in that error."""

    fn: Callable[[np.ndarray], np.ndarray]
    input_size: tuple[int, int]
    name: str
    preprocessing: str = "inside the model"

    def __call__(self, images: np.ndarray, first_index: int = 0, sources: Sequence[str] | None = None
                 ) -> np.ndarray:
        out = np.asarray(self.fn(np.asarray(images, np.float32)), np.float32)
        return check_finite(out, self.name, first_index, sources)


def keras_embedder(model, name: str | None = None, frozen: bool = False) -> Embedder:
    """An :class:`Embedder` calling a Keras embedding model through one ``tf.function``. A model with a NaN or
    infinite weight is refused here (:class:`NonFiniteEmbeddingError`, index -1): an activation can hide such
    weights and give finite, meaningless embeddings.

    ``frozen``: call the model frozen to constants (``facenet_tf.models.frozen_function``): level with a
    TensorFlow 1 frozen graph at batch 1 (about 1.35x the plain call, ``results/inference_folding_cpu.md``) for a
    few seconds more set-up; for long-lived processes that embed one face at a time (a server), not for a
    command that embeds a few photos and exits."""
    import tensorflow as tf

    from facenet_tf.models.common import non_finite_weights
    from facenet_tf.models.folding import frozen_function

    bad, total = non_finite_weights(model)
    if bad:
        raise NonFiniteEmbeddingError.for_weights(name or model.name, bad, total)

    call = frozen_function(model) if frozen else tf.function(lambda x: model(x, training=False),
                                                              reduce_retracing=True)
    return Embedder(lambda x: call(x).numpy(), (int(model.input.shape[1]), int(model.input.shape[2])),
                    name or model.name)


def load_embedder(source: str, weights: str | None = None, at_init: bool = False) -> Embedder:
    """An :class:`Embedder` over the inference form (batch norm folded) of the model that
    ``facenet_tf.models.load_model`` resolves from ``source`` and
    ``weights`` (a zoo name, ``zoo@weights``, registered weights, a training workdir — ``at_init``: before its
    first step —, a ``.keras`` file, a SavedModel export or a TensorFlow 1 graph). ValueError names a source that
    is none of these."""
    from facenet_tf.models.source import load_model

    loaded = load_model(source, weights, at_init=at_init, inference=True)
    return keras_embedder(loaded.model, loaded.name)


def l2_normalize(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def embed(embedder: Embedder | Callable[[np.ndarray], np.ndarray], images: np.ndarray, batch_size: int = 64,
          flip: bool = False, progress: bool = True, description: str = "embedding",
          sources: Sequence[str] | None = None) -> np.ndarray:
    """Embeddings of uint8/float ``images`` (N, H, W, 3), in batches.

    ``flip``: test-time augmentation, the embedding of the image plus that of its mirror image, renormalised.
    ``sources``: a name per image (e.g. its file), used only in errors.

    Raises:
        NonFiniteEmbeddingError: some embedding holds a NaN or an infinity; names the model and the first such
            image (its index in ``images``).
    """
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"images must be (N, H, W, 3); got shape {images.shape}.")
    if not isinstance(embedder, Embedder):
        name = getattr(embedder, "__name__", type(embedder).__name__)
        embedder = Embedder(embedder, (int(images.shape[1]), int(images.shape[2])), name)
    outputs = []
    starts = range(0, len(images), batch_size)
    for start in tqdm(starts, desc=description, unit="batch", disable=not progress or len(starts) < 2):
        batch = images[start:start + batch_size].astype(np.float32)
        out = embedder(batch, start, sources)
        if flip:
            out = l2_normalize(out + embedder(batch[:, :, ::-1], start, sources))
        outputs.append(out)
    if not outputs:
        return np.zeros((0, 0), np.float32)
    return np.concatenate(outputs).astype(np.float32)

