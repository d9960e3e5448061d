"""The harmonic triplet loss with semi-hard mining written in ``keras.ops`` only, so it is not tied to one Keras 3
backend (checked: TensorFlow in the tests, JAX on CPU and on an H100), e.g. to train on an accelerator where
TensorFlow is not installed (``experiments/harmonic_jax.py``).

It computes what ``facenet_tf.losses.harmonic_triplet_loss_with_metrics`` computes for ``anchors="new"``,
``strategy="semi_hard"`` and ``candidates`` ``"both"`` or ``"old"`` (same triplets, same loss, same statistics;
``tests/losses/test_portable.py`` checks it against that implementation), but with a simpler miner: every
anchor's positives are laid out in ``max_positives`` slots (a static bound, since XLA needs static shapes), and each
slot's semi-hard negative is a masked minimum over a (B, max_positives, 2B) tensor. Memory is
O(B * max_positives * B): fine for identity-balanced batches of a few hundred images (B = 180 with 4 faces per
identity and both candidate sets: 180 x 7 x 360 values), while the TensorFlow miner stays O(B^2) for the paper's
batches of ~1,800. Pairs beyond ``max_positives`` would be dropped; ``positives_dropped`` counts them so a caller
can check the bound (it is 0 when ``max_positives`` >= the largest number of positives of an anchor).
"""

from __future__ import annotations

from keras import ops

PORTABLE_CANDIDATES = ("both", "old")
PORTABLE_FALLBACKS = ("farthest", "skip")
PORTABLE_REDUCTIONS = ("mean_over_pairs", "mean_over_active")


def pairwise_squared_distances(embeddings):
    """(N, D) -> (N, N) float32 squared L2 distances, clamped at 0 with an exact zero diagonal."""
    x = ops.cast(embeddings, "float32")
    norms = ops.sum(ops.square(x), axis=1)
    raw = norms[:, None] + norms[None, :] - 2.0 * ops.matmul(x, ops.transpose(x))
    off_diagonal = ops.logical_not(ops.eye(ops.shape(x)[0], dtype="bool"))
    return ops.where(ops.logical_and(raw > 0.0, off_diagonal), raw, 0.0)


def max_positives_needed(faces_per_identity: int, candidates: str) -> int:
    """The slot count that holds every positive of a new anchor in identity-balanced batches with at most
    ``faces_per_identity`` images per identity: its K - 1 other new rows and K old rows (``both``), or the K old
    rows (``old``)."""
    if candidates not in PORTABLE_CANDIDATES:
        raise ValueError(f"candidates must be one of {PORTABLE_CANDIDATES}; got {candidates!r}")
    return 2 * faces_per_identity - 1 if candidates == "both" else faces_per_identity


def harmonic_triplet_loss_with_metrics(labels, new_embeddings, old_embeddings, max_positives: int,
                                       margin: float = 0.2, candidates: str = "both", fallback: str = "farthest",
                                       reduction: str = "mean_over_pairs", same_image_weight: float = 0.0) -> dict:
    """Harmonic triplet loss (new anchors, semi-hard negatives from the candidate set) and its statistics.

    Args:
      labels: (B,) integer identity ids.
      new_embeddings: (B, D) embeddings of the model being trained.
      old_embeddings: (B, D) the fixed old model's embeddings of the same images (no gradient flows to them).
      max_positives: static number of positive slots per anchor (``max_positives_needed``).
      margin, fallback (``farthest`` | ``skip``), reduction, same_image_weight: as the TensorFlow loss.
      candidates: ``both`` (positives and negatives among new and old rows) or ``old`` (old rows only).

    Returns:
      dict: ``loss`` (with the same-image term), ``num_triplets``, ``fraction_active``, ``num_pairs``,
      ``mean_positive_distance``, ``mean_negative_distance``, ``fraction_semi_hard_found``,
      ``mean_same_image_distance`` and ``positives_dropped`` (pairs that did not fit in ``max_positives``).
    """
    if candidates not in PORTABLE_CANDIDATES:
        raise ValueError(f"candidates must be one of {PORTABLE_CANDIDATES} here (the TensorFlow loss "
                         f"facenet_tf.losses.harmonic_triplet_loss also has 'other' and anchors='both'); "
                         f"got {candidates!r}")
    if fallback not in PORTABLE_FALLBACKS:
        raise ValueError(f"fallback must be one of {PORTABLE_FALLBACKS}; got {fallback!r}")
    if reduction not in PORTABLE_REDUCTIONS:
        raise ValueError(f"reduction must be one of {PORTABLE_REDUCTIONS}; got {reduction!r}")
    if not isinstance(max_positives, int) or max_positives < 1:
        raise ValueError(f"max_positives must be a positive int (a static shape); got {max_positives!r}")
    if not same_image_weight >= 0:
        raise ValueError(f"same_image_weight must be >= 0; got {same_image_weight!r}")
    if len(new_embeddings.shape) != 2 or tuple(new_embeddings.shape) != tuple(old_embeddings.shape):
        raise ValueError(f"new and old embeddings must both have shape (batch, dim); got {new_embeddings.shape} "
                         f"and {old_embeddings.shape}")

    batch = new_embeddings.shape[0]
    labels = ops.reshape(ops.cast(labels, "int32"), (-1,))
    new = ops.cast(new_embeddings, "float32")
    old = ops.stop_gradient(ops.cast(old_embeddings, "float32"))
    distances = pairwise_squared_distances(ops.concatenate([new, old], axis=0))  # (2B, 2B)
    rows = distances[:batch]  # the new anchors' rows, (B, 2B), differentiable
    mined = ops.stop_gradient(rows)

    columns = ops.arange(2 * batch)
    column_labels = ops.concatenate([labels, labels], axis=0)
    candidate = columns >= batch if candidates == "old" else ops.ones((2 * batch,), "bool")
    same = ops.equal(labels[:, None], column_labels[None, :])
    not_self = ops.not_equal(ops.arange(batch)[:, None], columns[None, :])
    positive = ops.logical_and(ops.logical_and(same, not_self), candidate[None, :])  # (B, 2B)
    negative = ops.logical_and(ops.logical_not(same), candidate[None, :])

    # Slot s of anchor a holds its (s+1)-th positive column in index order.
    rank = ops.cumsum(ops.cast(positive, "int32"), axis=1) - 1
    slots = ops.arange(max_positives)
    selects = ops.logical_and(positive[:, None, :], ops.equal(rank[:, None, :], slots[None, :, None]))  # (B, P, 2B)
    pair_valid = ops.any(selects, axis=2)
    positive_distances = ops.sum(ops.where(selects, rows[:, None, :], 0.0), axis=2)  # differentiable
    positives_dropped = ops.sum(ops.cast(positive, "float32")) - ops.sum(ops.cast(pair_valid, "float32"))

    # Semi-hard: the closest negative strictly farther than the positive (ties: the lowest column).
    beyond = ops.logical_and(negative[:, None, :],
                             mined[:, None, :] > ops.stop_gradient(positive_distances)[:, :, None])
    found = ops.logical_and(pair_valid, ops.any(beyond, axis=2))
    semi_hard_columns = ops.argmin(ops.where(beyond, mined[:, None, :], float("inf")), axis=2)
    has_negative = ops.any(negative, axis=1)
    if fallback == "skip":
        valid = found
        chosen = semi_hard_columns
    else:
        valid = ops.logical_and(pair_valid, has_negative[:, None])
        farthest = ops.argmax(ops.where(negative, mined, -1.0), axis=1)
        chosen = ops.where(found, semi_hard_columns, farthest[:, None])
    negative_distances = ops.take_along_axis(rows, ops.cast(chosen, "int32"), axis=1)

    weights = ops.cast(valid, "float32")
    hinge = ops.where(valid, ops.relu(positive_distances - negative_distances + margin), 0.0)
    num_triplets = ops.sum(weights)
    num_active = ops.sum(ops.cast(ops.stop_gradient(hinge) > 0.0, "float32"))
    num_pairs = ops.sum(ops.cast(pair_valid, "float32"))
    denominator = num_triplets if reduction == "mean_over_pairs" else num_active
    loss = ops.sum(hinge) / ops.maximum(denominator, 1.0)
    same_image = ops.sum(ops.square(new - old), axis=1)
    mean_same_image = ops.mean(same_image)
    if same_image_weight:
        loss = loss + float(same_image_weight) * mean_same_image

    def ratio(numerator, count):
        return numerator / ops.maximum(count, 1.0)

    return {
        "loss": loss,
        "num_triplets": num_triplets,
        "fraction_active": ratio(num_active, num_triplets),
        "num_pairs": num_pairs,
        "mean_positive_distance": ratio(ops.sum(weights * ops.stop_gradient(positive_distances)), num_triplets),
        "mean_negative_distance": ratio(ops.sum(weights * ops.stop_gradient(negative_distances)), num_triplets),
        "fraction_semi_hard_found": ratio(ops.sum(ops.cast(found, "float32")), num_pairs),
        "mean_same_image_distance": ops.stop_gradient(mean_same_image),
        "positives_dropped": positives_dropped,
    }
