"""The harmonic triplet loss (paper, appendix "Harmonic embeddings"): train a new model (v2) whose embeddings are
comparable with those of a fixed old model (v1).

Design (ours; the paper gives only the idea "mix v1 and v2 embeddings in the triplets, semi-hard negatives mined
from both sets"):

* The batch of B images is embedded by both models. The two sets are stacked into one batch of 2B rows,
  ``[new_0 .. new_{B-1}, old_0 .. old_{B-1}]``, each row keeping its image's label, and the (2B, 2B) squared
  distance matrix of the stack is built (O(B^2) memory, no B^3 tensor).
* **Anchors are the new rows only.** A new anchor ``new_i``'s positives are every other row of its identity in
  *either* set: ``new_j`` and ``old_j`` (j != i of the same label) and ``old_i``, the old embedding of the same
  image, which is the pair that ties the two spaces together. Its negatives are every row of another identity in
  either set, and mining (``semi_hard`` by default) picks among all of them, so a semi-hard negative may be an old
  or a new embedding.
* Old rows are never anchors: a triplet anchored on a fixed old embedding would only move new embeddings as
  positives/negatives, which the new anchors already cover. Mining runs on the whole stacked matrix with
  ``anchor_mask`` (``mining.mine_triplets``) so the existing O(B^2 log B) miner is reused unchanged.
* ``candidates="old"`` (an option, not the default): positives and negatives are the old rows only, so every
  triplet is (new anchor, old positive, old negative) — the new model is trained into the old model's space
  directly ("anchor from one model, positive and negative from the other"); ``"both"`` is the design above.
* Old embeddings get no gradient (``tf.stop_gradient``): v1 is fixed.
* Hinge terms ``[D(a, p) - D(a, n) + margin]_+`` are averaged as ``triplet_loss`` does (``mean_over_pairs``: over
  every triplet formed, one per (new anchor, positive) pair; ``mean_over_active``: over active ones).

For B images with K faces per identity a new anchor has 2K - 1 positives (K - 1 new, K old), so the loss has
about twice as many triplets as the plain triplet loss of the same batch.
"""

from __future__ import annotations

import tensorflow as tf

from facenet_tf.losses import mining
from facenet_tf.losses.distances import pairwise_squared_distances
from facenet_tf.losses.triplet import _one_negative_per_pair, _safe_divide, metrics_from_parts, validate_arguments

HARMONIC_STRATEGIES = ("semi_hard", "hardest", "random_violating")
HARMONIC_CANDIDATES = ("both", "old")


def stack_harmonic_batch(labels: tf.Tensor, new_embeddings: tf.Tensor, old_embeddings: tf.Tensor
                         ) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """(2B,) labels, (2B, D) float32 embeddings ``[new; stop_gradient(old)]`` and the (2B,) anchor mask (True for
    the new rows)."""
    labels = mining.normalise_labels(labels)
    new_embeddings = tf.convert_to_tensor(new_embeddings)
    old_embeddings = tf.convert_to_tensor(old_embeddings)
    for name, value in (("new_embeddings", new_embeddings), ("old_embeddings", old_embeddings)):
        if not value.dtype.is_floating:
            raise TypeError(f"{name} must be a floating tensor, got dtype {value.dtype.name}")
        if value.shape.rank is not None and value.shape.rank != 2:
            raise ValueError(f"{name} must have shape (batch, dim), got shape {value.shape}")
    if (new_embeddings.shape[0] is not None and old_embeddings.shape[0] is not None
            and new_embeddings.shape[0] != old_embeddings.shape[0]):
        raise ValueError(f"new_embeddings and old_embeddings must embed the same batch; got {new_embeddings.shape[0]}"
                         f" and {old_embeddings.shape[0]} rows")
    if (new_embeddings.shape[1] is not None and old_embeddings.shape[1] is not None
            and new_embeddings.shape[1] != old_embeddings.shape[1]):
        raise ValueError(f"new and old embeddings must have the same dimension to be comparable; got "
                         f"{new_embeddings.shape[1]} and {old_embeddings.shape[1]}")
    if labels.shape[0] is not None and new_embeddings.shape[0] is not None and labels.shape[0] != new_embeddings.shape[0]:
        raise ValueError(f"labels and embeddings must have the same batch size; got {labels.shape[0]} labels for "
                         f"{new_embeddings.shape[0]} embeddings")
    checks = [tf.debugging.assert_equal(tf.shape(new_embeddings), tf.shape(old_embeddings),
                                        message="new_embeddings and old_embeddings must have the same shape"),
              tf.debugging.assert_equal(tf.size(labels), tf.shape(new_embeddings)[0],
                                        message="labels and embeddings must have the same batch size")]
    with tf.control_dependencies(checks):
        stacked = tf.concat([tf.cast(new_embeddings, tf.float32),
                             tf.stop_gradient(tf.cast(old_embeddings, tf.float32))], axis=0)
    batch = tf.size(labels)
    anchors = tf.range(2 * batch) < batch
    return tf.concat([labels, labels], axis=0), stacked, anchors


def harmonic_triplet_loss_with_metrics(labels: tf.Tensor, new_embeddings: tf.Tensor, old_embeddings: tf.Tensor,
                                       margin: float | tf.Tensor = 0.2, strategy: str = "semi_hard",
                                       fallback: str = "farthest", reduction: str | None = None,
                                       seed: mining.SeedLike = None, candidates: str = "both"
                                       ) -> dict[str, tf.Tensor]:
    """The harmonic triplet loss and its statistics (module docstring for the triplets it forms).

    Args:
      labels: (B,) or (B, 1) integer identity ids, one per image.
      new_embeddings: (B, D) embeddings of the model being trained (differentiable).
      old_embeddings: (B, D) embeddings of the same images by the fixed old model (no gradient flows to them).
      margin, strategy (``semi_hard`` | ``hardest`` | ``random_violating``), fallback, reduction, seed: as
        ``triplet_loss``; ``batch_all`` is not offered.
      candidates: ``both`` (positives and negatives from both sets) or ``old`` (from the old set only).

    Returns:
      dict with the keys of ``triplet_loss_with_metrics`` (``loss``, ``fraction_active``, ``num_triplets``,
      ``num_pairs``, ``mean_positive_distance``, ``mean_negative_distance``, ``fraction_semi_hard_found``; pairs and
      triplets are those anchored on new rows) plus ``mean_same_image_distance``: the mean D(new_i, old_i) over
      the batch, how far apart the two models put the same image (no gradient).
    """
    mining.check_choice("strategy", strategy, HARMONIC_STRATEGIES)
    mining.check_choice("candidates", candidates, HARMONIC_CANDIDATES)
    reduction = validate_arguments(margin, strategy, fallback, reduction, seed)
    labels, stacked, anchors = stack_harmonic_batch(labels, new_embeddings, old_embeddings)
    distances = pairwise_squared_distances(stacked)
    margin = tf.cast(margin, tf.float32)
    triplets = mining.mine_triplets(labels, distances, margin, strategy, fallback, seed, anchor_mask=anchors,
                                    candidate_mask=None if candidates == "both" else tf.logical_not(anchors))
    parts = _one_negative_per_pair(distances, triplets, margin, reduction)
    half = tf.size(labels) // 2
    same_image = tf.linalg.diag_part(tf.stop_gradient(distances)[:half, half:])
    return {**metrics_from_parts(parts),
            "mean_same_image_distance": _safe_divide(tf.reduce_sum(same_image), tf.cast(half, tf.float32))}


def harmonic_triplet_loss(labels: tf.Tensor, new_embeddings: tf.Tensor, old_embeddings: tf.Tensor,
                          margin: float | tf.Tensor = 0.2, strategy: str = "semi_hard", fallback: str = "farthest",
                          reduction: str | None = None, seed: mining.SeedLike = None,
                          candidates: str = "both") -> tf.Tensor:
    """The scalar harmonic triplet loss (``harmonic_triplet_loss_with_metrics``); 0 with a zero gradient when the
    batch forms no triplet."""
    return harmonic_triplet_loss_with_metrics(labels, new_embeddings, old_embeddings, margin, strategy, fallback,
                                              reduction, seed, candidates)["loss"]
