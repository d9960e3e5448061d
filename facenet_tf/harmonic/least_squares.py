"""Phase 1 in closed form (ours, ``--harmonic_solver=least_squares``) and the ridge regression under it, which
experiments/harmonic_probe.py uses too (``fit_ridge``, ``project``, ``targets_for``)."""

from __future__ import annotations

import logging

import keras
import numpy as np
import tensorflow as tf

from facenet_tf.align import AlignConfig, align_images
from facenet_tf.data.pipeline import ImageBatchLoader, ImageIndex
from facenet_tf.evaluation.embed import l2_normalize
from facenet_tf.harmonic.models import head_layers, set_head_linear
from facenet_tf.harmonic.old_embeddings import precompute_old_embeddings
from facenet_tf.train.config import TrainConfig

logger = logging.getLogger(__name__)


class RidgeMoments:
    """A ridge regression of ``y`` on standardised ``x``, accumulated batch by batch in float64 (``add``: memory
    O(F^2) for F features, not O(N F)) and solved in ``x``'s own units (``solve``)."""

    def __init__(self):
        self.n, self.sx, self.sxx, self.sxy, self.sy = 0, 0.0, 0.0, 0.0, 0.0

    def add(self, x, y) -> "RidgeMoments":
        """Adds the rows ``x`` (N, F) with their targets ``y`` (N, D)."""
        x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
        self.n += len(x)
        self.sx, self.sxx = self.sx + x.sum(0), self.sxx + x.T @ x
        self.sxy, self.sy = self.sxy + x.T @ y, self.sy + y.sum(0)
        return self

    def solve(self, ridge: float, scale: str) -> tuple[np.ndarray, np.ndarray]:
        """``(kernel, bias)`` with ``y ~ x @ kernel + bias``: the ridge solution on features standardised by their
        mean and (population) standard deviation + 1e-6, penalty ``ridge`` times, by ``scale``, the number of rows
        (``rows``: a varying standardised feature's Gram diagonal; phase 1) or the Gram matrix's mean diagonal
        (``trace``: constant features count 0; experiments/harmonic_probe.py)."""
        if scale not in ("rows", "trace"):
            raise ValueError(f"RidgeMoments.solve: scale 'rows' or 'trace', got {scale!r}.")
        n = self.n
        mean_x, mean_y = self.sx / n, self.sy / n
        cov = self.sxx / n - np.outer(mean_x, mean_x)
        std = np.sqrt(np.clip(np.diag(cov), 0, None)) + 1e-6
        gram = n * cov / np.outer(std, std)                               # Z^T Z of the standardised features
        cross = (self.sxy - n * np.outer(mean_x, mean_y)) / std[:, None]  # Z^T (Y - mean Y)
        penalty = ridge * (n if scale == "rows" else np.trace(gram) / len(std))
        w = np.linalg.solve(gram + penalty * np.eye(len(std)), cross)
        kernel = w / std[:, None]
        return kernel, mean_y - mean_x @ kernel


def fit_ridge(x, y, relative_lambda: float) -> tuple[np.ndarray, np.ndarray]:
    """Ridge regression of ``y`` on standardised ``x`` with the penalty ``relative_lambda * trace(Z^T Z) / F``,
    returned in ``x``'s own units: ``(kernel, bias)`` with ``y ~ x @ kernel + bias`` (``project`` normalises)."""
    return RidgeMoments().add(x, y).solve(relative_lambda, scale="trace")


def project(features, kernel, bias) -> np.ndarray:
    """L2-normalised ``features @ kernel + bias`` (float32): the embedding a head set to ``(kernel, bias)`` gives."""
    return l2_normalize(np.asarray(features, np.float64) @ kernel + bias).astype(np.float32)


def targets_for(kind: str, old_vectors, identities) -> np.ndarray:
    """(N, d) regression targets of experiments/harmonic_probe.py: the old embeddings themselves (``image``), or
    the normalised mean old embedding of each one's identity (``centroid``)."""
    if kind == "image":
        return old_vectors
    if kind == "centroid":
        names, index = np.unique(np.asarray(identities), return_inverse=True)
        sums = np.zeros((len(names), old_vectors.shape[1]), np.float64)
        np.add.at(sums, index, old_vectors)
        return l2_normalize(sums)[index].astype(np.float32)
    raise ValueError(f"--targets: unknown target '{kind}' (expected image or centroid).")


def _centre_crop_batches(config: TrainConfig, index: ImageIndex, old_embeddings: np.ndarray | None,
                         batch_size: int):
    """(uint8 centre crops at the new model's size, their precomputed old embeddings) for every training image."""
    old = precompute_old_embeddings(config, index) if old_embeddings is None else np.asarray(old_embeddings)
    if old.shape[0] != len(index):
        raise ValueError(f"{old.shape[0]} old embeddings for {len(index)} training images.")
    loader = ImageBatchLoader(index, config.image_size, config.crop_fraction, seed=config.seed)
    for start in range(0, len(index), batch_size):
        images, _, used = loader.load_indexed(np.arange(start, min(start + batch_size, len(index))))
        yield images, old[used]


def _aligned_batches(config: TrainConfig, index: ImageIndex, old_embeddings: np.ndarray | None, batch_size: int):
    """(uint8 crops aligned as evaluation aligns them, at the new model's size; the old model's embeddings of the
    same images aligned at its own size) for every readable training image (``facenet_tf.align``, crops cached on
    disk, read a batch at a time)."""
    old = precompute_old_embeddings(config, index) if old_embeddings is None else np.asarray(old_embeddings)
    align = AlignConfig(mode=config.harmonic.fit_alignment, output_size=tuple(config.image_size))
    for start in range(0, len(index), batch_size):
        result = align_images(index.paths[start:start + batch_size], config=align, progress=False, on_error="skip")
        if len(result.images):
            yield result.images, old[start + result.indices]


def solve_head_least_squares(embedding: keras.Model, config: TrainConfig, index: ImageIndex,
                             old_embeddings: np.ndarray | None = None, batch_size: int = 64) -> dict:
    """Phase 1 in closed form (ours, ``--harmonic_solver=least_squares``): sets the final projection (``head_layers``)
    of ``embedding`` to the ridge regression of the old embeddings on the projection's input features.

    Every training image of ``index`` is seen once as the un-augmented centre crop at the new model's input size
    (the crop its precomputed old embedding comes from) or, with ``config.harmonic.fit_alignment`` (``detect``,
    ``landmarks``, ``center``), aligned as evaluation aligns it, each model at its own input size (the old model then
    embeds the aligned crops, cached like ``precompute_old_embeddings``); and once more mirrored when ``config.flip``
    (target: the same old embedding). ``RidgeMoments`` accumulates the regression batch by batch and solves it on
    standardised features with the ridge strength ``config.harmonic.ridge`` times the number of rows (relative to
    the standardised Gram matrix's diagonal: ``scale="rows"``). The solution is written into the layers so that the
    model *in inference mode* computes ``normalise(x K + c)`` exactly (``set_head_linear``). Inception-ResNet-v1's
    head ends in a batch norm without scale, so in *training* mode it would re-standardise each dimension; runs that
    train further from this head should expect a first-step jump there.

    ``experiments/harmonic_probe.py`` measured why: on LFW View 1 a least-squares projection of
    Inception-ResNet-v1 onto an nns2 old model leaves a per-identity residual of 0.11-0.19 where 300 steps of the
    harmonic triplet loss left 0.70 (results/harmonic_view2.md).

    Returns statistics: rows, features, ridge, and the mean cosine of the model's embedding and the old one on a
    sample of (up to ~512) training images.
    """
    head = head_layers(embedding)
    features = keras.Model(embedding.input, embedding.get_layer(head[0]).input)
    call = tf.function(lambda x: features(x, training=False), reduce_retracing=True)
    if config.harmonic.fit_alignment is None:
        batches = _centre_crop_batches(config, index, old_embeddings, batch_size)
    else:
        batches = _aligned_batches(config, index, old_embeddings, batch_size)
    moments, seen = RidgeMoments(), 0
    sample_images, sample_old = [], []
    for images, y in batches:
        y = np.asarray(y, np.float64)
        if seen % max(1, len(index) // 8) < len(images) and sum(map(len, sample_images)) < 512:
            sample_images.append(images[:64])
            sample_old.append(y[:64])
        for view in [images] + ([images[:, :, ::-1]] if config.flip else []):
            moments.add(call(tf.constant(view, tf.float32)).numpy(), y)
        seen += len(images)
        if seen // len(images) % 20 == 1:
            logger.info("least-squares phase 1: features of %d / %d images", seen, len(index))
    kernel, bias = moments.solve(config.harmonic.ridge, scale="rows")
    set_head_linear(embedding, kernel, bias)
    # How well the model now copies the old embeddings of (a sample of) its training images, through the layers.
    images, target = np.concatenate(sample_images), np.concatenate(sample_old)
    fitted = np.concatenate([embedding(tf.constant(images[k:k + batch_size], tf.float32), training=False).numpy()
                             for k in range(0, len(images), batch_size)])
    target = target / np.linalg.norm(target, axis=1, keepdims=True)
    stats = {"solver": "least_squares", "rows": moments.n, "features": int(len(kernel)), "ridge": config.harmonic.ridge,
             "alignment": config.harmonic.fit_alignment or f"centre crop {config.crop_fraction}",
             "sample_same_image_cos": float(np.mean(np.sum(fitted * target, axis=1))), "sample_images": len(images)}
    logger.info("least-squares phase 1: %s", stats)
    return stats
