"""The harmonic triplet loss (paper, appendix "Harmonic embeddings"): train a new model (v2) whose embeddings are
comparable with those of a fixed old model (v1).

Design (ours; the paper gives only the idea "mix v1 and v2 embeddings in the triplets, semi-hard negatives mined
from both sets"):

* The batch of B images is embedded by both models. The two sets are stacked into one batch of 2B rows,
  ``[new_0 .. new_{B-1}, old_0 .. old_{B-1}]``, each row keeping its image's label, and the (2B, 2B) squared
  distance matrix of the stack is built (O(B^2) memory, no B^3 tensor).
* **Anchors** (``anchors="new"``, the default) are the new rows only. A new anchor ``new_i``'s positives are
  every other row of its identity in *either* set: ``new_j`` and ``old_j`` (j != i of the same label) and
  ``old_i``, the old embedding of the same image, which is the pair that ties the two spaces together. Its
  negatives are every row of another identity in either set, and mining (``semi_hard`` by default) picks among all
  of them, so a semi-hard negative may be an old or a new embedding. Mining runs on the whole stacked matrix with
  ``anchor_mask`` (``mining.mine_triplets``) so the existing O(B^2 log B) miner is reused unchanged.
* ``anchors="both"``: the old rows are anchors too. A triplet (old anchor, new positive, new negative) moves the
  new embeddings relative to a fixed old one: it asks that a new embedding sit closer to an old embedding of its
  own identity than any new embedding of another identity does -- the comparison a stored old gallery searched
  with new probes makes. Triplets anchored on an old row with an old positive and an old negative carry no
  gradient but are counted like the others.
* ``candidates`` -- where positives and negatives come from: ``"both"`` (both sets, as above); ``"other"`` (the
  other model's rows only: a new anchor against old embeddings, an old anchor against new ones -- "anchor from one
  model, positive and negative from the other"); ``"old"`` (the old rows only; with ``anchors="new"`` the same as
  ``"other"``, the name kept for earlier runs; refused with ``anchors="both"``, where old anchors would only form
  gradient-free old-old-old triplets). ``"other"`` is a per-anchor (2B, 2B) candidate mask for the miner.
* Old embeddings get no gradient (``tf.stop_gradient``): v1 is fixed.
* ``same_image_weight`` (ours, not in the paper; 0 by default): adds ``w * mean_i D(new_i, old_i)``, a direct
  pull of each image's new embedding onto its old one. The triplet hinges only rank distances, so they leave any
  component of the new embeddings outside the old model's span unconstrained; this term penalises it (it is the
  squared-error "feature distillation" of the new model towards the old one). On LFW it did not raise old-new
  accuracy (results/harmonic_view2.md, which also explains why).
* Hinge terms ``[D(a, p) - D(a, n) + margin]_+`` are averaged as ``triplet_loss`` does (``mean_over_pairs``: over
  every triplet formed, one per (anchor, positive) pair; ``mean_over_active``: over active ones).

With the defaults and B images with K faces per identity a new anchor has 2K - 1 positives (K - 1 new, K old), so
the loss has about twice as many triplets as the plain triplet loss of the same batch.
"""

from __future__ import annotations

import tensorflow as tf

from facenet_tf.losses import mining
from facenet_tf.losses.distances import pairwise_squared_distances
from facenet_tf.losses.triplet import _one_negative_per_pair, _safe_divide, metrics_from_parts, validate_arguments

HARMONIC_STRATEGIES = ("semi_hard", "hardest", "random_violating")
HARMONIC_CANDIDATES = ("both", "old", "other")
HARMONIC_ANCHORS = ("new", "both")


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
                                       seed: mining.SeedLike = None, candidates: str = "both",
                                       anchors: str = "new", same_image_weight: float = 0.0
                                       ) -> dict[str, tf.Tensor]:
    """The harmonic triplet loss and its statistics (module docstring for the triplets it forms).

    Args:
      labels: (B,) or (B, 1) integer identity ids, one per image.
      new_embeddings: (B, D) embeddings of the model being trained (differentiable).
      old_embeddings: (B, D) embeddings of the same images by the fixed old model (no gradient flows to them).
      margin, strategy (``semi_hard`` | ``hardest`` | ``random_violating``), fallback, reduction, seed: as
        ``triplet_loss``; ``batch_all`` is not offered.
      candidates: ``both`` (positives and negatives from both sets), ``other`` (from the other model's set) or
        ``old`` (from the old set only; needs ``anchors="new"``).
      anchors: ``new`` (only new rows are anchors) or ``both`` (old rows too).
      same_image_weight: w >= 0; the loss gets ``+ w * mean_i D(new_i, old_i)`` (0: the paper's loss alone).

    Returns:
      dict with the keys of ``triplet_loss_with_metrics`` (``loss``, ``fraction_active``, ``num_triplets``,
      ``num_pairs``, ``mean_positive_distance``, ``mean_negative_distance``, ``fraction_semi_hard_found``; pairs and
      triplets are those of the anchors chosen; ``loss`` includes the same-image term) plus
      ``mean_same_image_distance``: the mean D(new_i, old_i) over the batch, how far apart the two models put the
      same image.
    """
    mining.check_choice("strategy", strategy, HARMONIC_STRATEGIES)
    mining.check_choice("candidates", candidates, HARMONIC_CANDIDATES)
    mining.check_choice("anchors", anchors, HARMONIC_ANCHORS)
    if anchors == "both" and candidates == "old":
        raise ValueError("candidates='old' with anchors='both' would give old anchors only old positives and "
                         "negatives (no gradient); use candidates='other' or 'both'")
    if not isinstance(same_image_weight, (int, float)) or not same_image_weight >= 0:
        raise ValueError(f"same_image_weight must be a number >= 0, got {same_image_weight!r}")
    reduction = validate_arguments(margin, strategy, fallback, reduction, seed)
    labels, stacked, is_new = stack_harmonic_batch(labels, new_embeddings, old_embeddings)
    distances = pairwise_squared_distances(stacked)
    margin = tf.cast(margin, tf.float32)
    if candidates == "both":
        candidate_mask = None
    elif anchors == "new":  # "old" and "other" coincide: the new anchors' other model is the old one
        candidate_mask = tf.logical_not(is_new)
    else:
        candidate_mask = tf.not_equal(is_new[:, None], is_new[None, :])
    triplets = mining.mine_triplets(labels, distances, margin, strategy, fallback, seed,
                                    anchor_mask=is_new if anchors == "new" else None, candidate_mask=candidate_mask)
    parts = _one_negative_per_pair(distances, triplets, margin, reduction)
    half = tf.size(labels) // 2
    # Directly, not from the Gram-expanded distance matrix: there |a|^2 + |b|^2 - 2ab cancels for an image whose two
    # embeddings nearly coincide, and the clamp at 0 would zero that image's gradient.
    same_image = tf.reduce_sum(tf.square(stacked[:half] - tf.stop_gradient(stacked[half:])), axis=1)
    mean_same_image = _safe_divide(tf.reduce_sum(same_image), tf.cast(half, tf.float32))
    metrics = metrics_from_parts(parts)
    if same_image_weight:
        metrics["loss"] = metrics["loss"] + float(same_image_weight) * mean_same_image
    return {**metrics, "mean_same_image_distance": tf.stop_gradient(mean_same_image)}


def harmonic_triplet_loss(labels: tf.Tensor, new_embeddings: tf.Tensor, old_embeddings: tf.Tensor,
                          margin: float | tf.Tensor = 0.2, strategy: str = "semi_hard", fallback: str = "farthest",
                          reduction: str | None = None, seed: mining.SeedLike = None,
                          candidates: str = "both", anchors: str = "new", same_image_weight: float = 0.0
                          ) -> tf.Tensor:
    """The scalar harmonic triplet loss (``harmonic_triplet_loss_with_metrics``); 0 with a zero gradient when the
    batch forms no triplet."""
    return harmonic_triplet_loss_with_metrics(labels, new_embeddings, old_embeddings, margin, strategy, fallback,
                                              reduction, seed, candidates, anchors, same_image_weight)["loss"]
