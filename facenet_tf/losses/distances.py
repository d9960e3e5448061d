"""Pairwise squared L2 distances between embeddings, the D(x_i, x_j) of the FaceNet paper.

Paper, "The embedding" and "Triplet loss and selection": D is the *squared* L2 distance between unit-norm
embeddings, D = ||f(x_i) - f(x_j)||^2 in [0, 4]. It is computed as ||a||^2 + ||b||^2 - 2 a.b (one matrix
product instead of a B x B x D difference tensor) and is smooth everywhere, so no square root is taken
and there is no NaN gradient at zero distance.
"""

from __future__ import annotations

import tensorflow as tf


@tf.custom_gradient
def _squared_distances_float32(embeddings: tf.Tensor):
    """Forward and backward of the distance matrix for float32 (B, D) embeddings.

    The gradient is written by hand because it needs one (B, B) x (B, D) matrix product where automatic
    differentiation of ``a @ b^T`` with ``a = b`` spends two: for G = dL/dD (zeroed where the distance was
    clamped and on the diagonal),
    dL/dx_i = 2 * (sum_j G_ij + G_ji) * x_i - 2 * sum_j (G_ij + G_ji) * x_j.
    """
    squared_norms = tf.reduce_sum(tf.square(embeddings), axis=1)
    gram = tf.matmul(embeddings, embeddings, transpose_b=True)
    raw = squared_norms[:, None] + squared_norms[None, :] - 2.0 * gram
    # Rounding can make ||a||^2 + ||b||^2 - 2ab slightly negative for (near-)identical rows: clamp to 0,
    # and the diagonal is 0 by definition (it is only rounding noise otherwise). Only negative values are
    # clamped: a NaN (a diverged network's embeddings) stays NaN, so divergence shows in the loss.
    negative = raw < 0.0
    distances = tf.linalg.set_diag(tf.where(negative, 0.0, raw), tf.zeros_like(squared_norms))

    def gradient(upstream: tf.Tensor) -> tf.Tensor:
        upstream = tf.linalg.set_diag(tf.where(negative, 0.0, upstream), tf.zeros_like(squared_norms))
        symmetric = upstream + tf.transpose(upstream)
        row_sums = tf.reduce_sum(symmetric, axis=1, keepdims=True)
        return 2.0 * (row_sums * embeddings - tf.matmul(symmetric, embeddings))

    return distances, gradient


def pairwise_squared_distances(embeddings: tf.Tensor) -> tf.Tensor:
    """Squared L2 distance between every pair of rows: (B, D) -> (B, B) float32.

    Numerically safe for mining: never negative (clamped at 0), exactly 0 on the diagonal, symmetric up to
    rounding, NaN off the diagonal wherever a row is not finite (never hidden as 0), and with a finite gradient
    everywhere for finite rows, including at zero distance (the paper's D is squared,
    so no square root is needed). Computed in float32 whatever the input dtype (float16 / bfloat16
    embeddings from a mixed-precision model lose too much in ||a||^2 + ||b||^2 - 2ab otherwise); the
    gradient flows back to the input dtype through the cast.

    Args:
      embeddings: (B, D) floating tensor, one embedding per row (normally L2-normalised, paper "The
        embedding", but any scale works).

    Returns:
      (B, B) float32 tensor D with D[i, j] = ||embeddings[i] - embeddings[j]||^2.
    """
    embeddings = tf.convert_to_tensor(embeddings)
    if not embeddings.dtype.is_floating:
        raise TypeError(f"embeddings must be a floating tensor (float16, bfloat16, float32, float64), "
                        f"got dtype {embeddings.dtype.name}")
    if embeddings.shape.rank is not None and embeddings.shape.rank != 2:
        raise ValueError(f"embeddings must have shape (batch, dim), got shape {embeddings.shape}")
    return _squared_distances_float32(tf.cast(embeddings, tf.float32))
