"""Offline triplet selection (paper, "Triplet loss and selection": "generate triplets offline every n steps, using
the most recent network checkpoint and computing the argmin and argmax on a subset of the data").

``select_triplets`` is the pure selection on fixed embeddings of a subset (numpy, no training code): for each
anchor, the **hard positive** argmax_p D(a, p) over the other images of its identity, and a negative that is either
the **hardest**, argmin_n D(a, n), or the paper's **semi-hard** one, the closest negative strictly farther than that
positive, D(a, p) < D(a, n). An anchor without a semi-hard negative falls back as the online miner does
(``facenet_tf.losses.mining``, ``fallback``): its ``farthest`` or ``hardest`` negative, or no triplet (``skip``).
Ties go to the smallest index (positive, negative and fallback alike). Anchors whose identity has no other image in
the subset, or with no image of another identity, form no triplet.

``offline_triplet_loss_with_metrics`` is the hinge over a batch of given triplets laid out as ``[anchors; positives;
negatives]`` (T rows each), with the statistics of ``triplet_loss_with_metrics`` under the same names.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf

from facenet_tf.losses.mining import FALLBACKS, check_choice
from facenet_tf.losses.triplet import REDUCTIONS, metrics_from_parts

NEGATIVES = ("semi_hard", "hardest")


@dataclasses.dataclass(frozen=True)
class OfflineSelection:
    """One triplet per selected anchor; indices are rows of the embedded subset, all arrays (T,), anchors ascending.

    Attributes:
      anchors, positives, negatives: int64 row indices.
      positive_distances, negative_distances: float64 D(a, p) and D(a, n).
      candidates: how many anchors had a positive and a negative (the triplets ``skip`` could have formed).
    """

    anchors: np.ndarray
    positives: np.ndarray
    negatives: np.ndarray
    positive_distances: np.ndarray
    negative_distances: np.ndarray
    candidates: int

    def __len__(self) -> int:
        return int(self.anchors.size)

    @property
    def semi_hard(self) -> np.ndarray:
        """(T,) bool: the triplet's negative is farther than its positive, D(a, p) < D(a, n)."""
        return self.negative_distances > self.positive_distances

    def stats(self) -> dict[str, float]:
        """What a refresh logs: ``num_triplets``, ``candidates``, ``mean_d_ap``, ``mean_d_an``,
        ``semi_hard_fraction`` (of the triplets; 0 where there is none)."""
        count = len(self)
        mean = (lambda values: float(values.mean())) if count else (lambda values: 0.0)
        return {"num_triplets": float(count), "candidates": float(self.candidates),
                "mean_d_ap": mean(self.positive_distances), "mean_d_an": mean(self.negative_distances),
                "semi_hard_fraction": mean(self.semi_hard.astype(np.float64))}


def _squared_distances(rows: np.ndarray, columns: np.ndarray) -> np.ndarray:
    """(r, N) float64 squared L2 distances, ||a||^2 + ||b||^2 - 2ab clamped at 0 (as ``losses.distances``)."""
    raw = (np.sum(rows * rows, axis=1)[:, None] + np.sum(columns * columns, axis=1)[None, :]
           - 2.0 * rows @ columns.T)
    return np.maximum(raw, 0.0)


def _first_arg(values: np.ndarray, largest: bool) -> np.ndarray:
    """Row-wise argmax / argmin; numpy returns the first (smallest) index of a tie."""
    return np.argmax(values, axis=1) if largest else np.argmin(values, axis=1)


def select_triplets(embeddings, labels, negative: str = "semi_hard", fallback: str = "farthest",
                    block_rows: int = 512) -> OfflineSelection:
    """The paper's offline selection on a subset: one (hard positive, negative) per anchor.

    Args:
      embeddings: (N, D) embeddings of the subset (any float dtype; distances in float64, so exactly representable
        embeddings give exact ties).
      labels: (N,) integer identity of each row.
      negative: ``semi_hard`` (closest negative with D(a, n) > D(a, p)) | ``hardest`` (argmin D(a, n)).
      fallback: ``semi_hard`` anchors without one take their ``farthest`` or ``hardest`` negative, or are dropped
        (``skip``). Ignored for ``hardest``.
      block_rows: anchors per block: memory is O(block_rows x N), never N x N.

    Returns:
      ``OfflineSelection`` (module docstring for ties and anchors without triplets).
    """
    check_choice("negative", negative, NEGATIVES)
    check_choice("fallback", fallback, FALLBACKS)
    embeddings = np.asarray(embeddings, np.float64)
    labels = np.asarray(labels).reshape(-1)
    if embeddings.ndim != 2 or embeddings.shape[0] != labels.size:
        raise ValueError(f"embeddings must have shape (N, D) with N = {labels.size} labels; got shape "
                         f"{embeddings.shape}")
    parts, candidates = [], 0
    for start in range(0, labels.size, max(1, int(block_rows))):
        rows = np.arange(start, min(start + block_rows, labels.size))
        distances = _squared_distances(embeddings[rows], embeddings)
        same = labels[rows, None] == labels[None, :]
        positive = same.copy()
        positive[np.arange(rows.size), rows] = False
        other = ~same
        has = positive.any(axis=1) & other.any(axis=1)
        candidates += int(has.sum())
        positives = _first_arg(np.where(positive, distances, -np.inf), largest=True)
        d_ap = distances[np.arange(rows.size), positives]
        hardest = _first_arg(np.where(other, distances, np.inf), largest=False)
        if negative == "hardest":
            negatives, keep = hardest, has
        else:
            farther = other & (distances > d_ap[:, None])
            found = farther.any(axis=1)
            semi_hard = _first_arg(np.where(farther, distances, np.inf), largest=False)
            if fallback == "skip":
                negatives, keep = semi_hard, has & found
            else:
                substitute = (hardest if fallback == "hardest"
                              else _first_arg(np.where(other, distances, -np.inf), largest=True))
                negatives, keep = np.where(found, semi_hard, substitute), has
        chosen = np.flatnonzero(keep)
        parts.append((rows[chosen], positives[chosen], negatives[chosen], d_ap[chosen],
                      distances[chosen, negatives[chosen]]))
    if not parts:
        empty = np.zeros(0, np.int64)
        return OfflineSelection(empty, empty, empty, np.zeros(0), np.zeros(0), 0)
    anchors, positives, negatives, d_ap, d_an = (np.concatenate(column) for column in zip(*parts))
    return OfflineSelection(anchors.astype(np.int64), positives.astype(np.int64), negatives.astype(np.int64),
                            d_ap.astype(np.float64), d_an.astype(np.float64), candidates)


def offline_triplet_loss_with_metrics(embeddings: tf.Tensor, margin: float | tf.Tensor = 0.2,
                                      reduction: str | None = None) -> dict[str, tf.Tensor]:
    """The hinge mean over given triplets: ``embeddings`` is (3T, D), rows ``[0, T)`` the anchors, ``[T, 2T)`` their
    positives and ``[2T, 3T)`` their negatives (how ``--strategy=offline`` batches are laid out).

    Returns the ``triplet_loss_with_metrics`` statistics (``METRIC_NAMES``): every row triple is one triplet and one
    anchor-positive pair; ``fraction_semi_hard_found`` is the fraction of triplets with D(a, n) > D(a, p) at these
    embeddings. ``reduction``: ``mean_over_pairs`` (None: over every triplet) or ``mean_over_active``.
    """
    reduction = reduction or "mean_over_pairs"
    check_choice("reduction", reduction, REDUCTIONS)
    embeddings = tf.cast(tf.convert_to_tensor(embeddings), tf.float32)
    anchors, positives, negatives = tf.split(embeddings, 3, axis=0)
    positive_distances = tf.reduce_sum(tf.square(anchors - positives), axis=1)
    negative_distances = tf.reduce_sum(tf.square(anchors - negatives), axis=1)
    hinge = tf.nn.relu(positive_distances - negative_distances + tf.cast(margin, tf.float32))
    count = tf.cast(tf.shape(anchors)[0], tf.float32)
    num_active = tf.reduce_sum(tf.cast(tf.stop_gradient(hinge) > 0.0, tf.float32))
    denominator = count if reduction == "mean_over_pairs" else num_active
    found = tf.reduce_sum(tf.cast(tf.stop_gradient(negative_distances > positive_distances), tf.float32))
    return metrics_from_parts({
        "loss": tf.reduce_sum(hinge) / tf.maximum(denominator, 1.0),
        "num_triplets": count,
        "num_active": num_active,
        "sum_positive_distance": tf.reduce_sum(tf.stop_gradient(positive_distances)),
        "sum_negative_distance": tf.reduce_sum(tf.stop_gradient(negative_distances)),
        "num_pairs": count,
        "num_found": found,
    })
