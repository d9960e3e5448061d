"""Online triplet mining inside the mini-batch (paper, "Triplet loss and selection"), in O(B^2) memory.

Every function takes the (B, B) squared-distance matrix and the labels and returns (B, P) tensors, one slot
per anchor-positive pair: row i is the anchor, slot s one of its positives, P the size of the largest
identity in the batch. No B x B x B tensor is ever built, and the work is O(B^2 log B):

* Positives are gathered per anchor from the label-sorted batch (``positive_pairs``), and each anchor's
  positive distances are sorted (a small (B, P) sort).
* ``semi_hard`` needs, for each pair, the closest negative strictly farther than the positive. Each
  negative of row i is put in the bucket b = #{positives p of row i with D(i, p) < D(i, n)} by one batched
  binary search of the (B, B) distances into the (B, P) sorted positive distances; a negative is farther
  than the k-th closest positive exactly when b > k. A segment minimum per (row, bucket) and a suffix
  minimum over the P + 1 buckets give every pair's semi-hard negative. The minimum runs over exact integer
  keys ``bits(D) << 32 | column`` (the bit pattern of a non-negative float32 orders like the float), so the
  chosen column comes out with the distance and ties are resolved exactly as the definition says.
  This avoids sorting the B x B matrix, which on CPU costs 1.5-2x more than the search. TensorFlow's CPU
  kernels for the search and the segment minimum are single-threaded, so they run on row blocks, side by
  side on the inter-op thread pool (``_by_row_blocks``). For large batches of small identities (the paper's
  ~40 faces per identity) the bucket step is instead compiled by XLA, counting the thresholds below each
  distance with vector compares (``bucket_minimum_keys``): same result, about 0.6x the CPU time at B = 1,800.
* ``batch_all`` uses the same buckets against D(a, p) + margin: per bucket a count and a distance sum,
  prefix-summed over buckets, give the hinge sum of every pair over all its violating negatives.
* ``random_violating`` sorts each anchor's negatives once (``tf.math.top_k``), counts the negatives inside
  the margin by binary search and draws a uniform index among them (stateless random ops: reproducible,
  graph-mode and tf.distribute safe).
* ``hardest`` is one masked argmin per row.

Mining runs on ``tf.stop_gradient`` distances; the loss then reads D(a, p) and D(a, n) of the chosen
triplets back from the differentiable matrix, so the gradient flows only through the chosen triplets, as
in the paper's loss.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Sequence, Union

import tensorflow as tf

STRATEGIES = ("semi_hard", "hardest", "batch_all", "random_violating")
FALLBACKS = ("farthest", "hardest", "skip")

SeedLike = Union[int, Sequence[int], tf.Tensor, tf.random.Generator, None]

_NO_KEY = tf.int64.max
_LOW_32_BITS = 0xFFFFFFFF


@dataclasses.dataclass(frozen=True)
class PositivePairs:
    """Every anchor-positive pair of the batch as (B, P) slots, sorted by D(a, p) within each row.

    Attributes:
      columns: (B, P) int32, batch index of the positive of anchor row i in slot s (0 where not valid).
      valid: (B, P) bool, whether the slot is a real pair (same label, different sample).
      distances: (B, P) float32, D(a, p) without gradient; +inf where not valid, ascending along each row.
    """

    columns: tf.Tensor
    valid: tf.Tensor
    distances: tf.Tensor


@dataclasses.dataclass(frozen=True)
class MinedTriplets:
    """One negative per anchor-positive pair; anchor = row index, all tensors (B, P).

    Attributes:
      positives: int32 batch index of the positive (0 where ``pair_valid`` is False).
      negatives: int32 batch index of the chosen negative (0 where ``valid`` is False).
      valid: bool, the pair formed a triplet (False for dropped pairs and non-pairs).
      pair_valid: bool, the slot is an anchor-positive pair.
      semi_hard_found: bool, the pair has a negative with D(a, n) > D(a, p).
    """

    positives: tf.Tensor
    negatives: tf.Tensor
    valid: tf.Tensor
    pair_valid: tf.Tensor
    semi_hard_found: tf.Tensor


def check_choice(name: str, value: object, choices: Sequence[str]) -> None:
    """Raises ValueError naming the valid choices when ``value`` is not one of them."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(repr(c) for c in choices)}; got {value!r}")


def normalise_labels(labels: tf.Tensor) -> tf.Tensor:
    """Labels of shape (B,) or (B, 1), integer (or integral floats, as Keras casts ``y_true``) -> (B,) int64."""
    labels = tf.convert_to_tensor(labels)
    if labels.dtype in (tf.string, tf.bool) or labels.dtype.is_complex:
        raise TypeError(f"labels must be integer identity ids of shape (batch,) or (batch, 1), "
                        f"got dtype {labels.dtype.name}")
    rank = labels.shape.rank
    if rank is not None and not (rank == 1 or (rank == 2 and labels.shape[1] in (1, None))):
        raise ValueError(f"labels must have shape (batch,) or (batch, 1), got shape {labels.shape}")
    labels = tf.reshape(labels, [-1])
    return labels if labels.dtype == tf.int64 else tf.cast(labels, tf.int64)


def stateless_seed(seed: SeedLike) -> tf.Tensor:
    """A shape-[2] int64 seed for ``tf.random.stateless_*`` from an int, a pair, a tensor or a Generator."""
    if isinstance(seed, tf.random.Generator):
        return tf.cast(seed.make_seeds(1)[:, 0], tf.int64)
    if seed is None:
        raise ValueError("random_violating needs seed=: an int, a shape-[2] integer tensor (e.g. "
                         "(base_seed, step), different every step) or a tf.random.Generator")
    seed = tf.convert_to_tensor(seed)
    if not seed.dtype.is_integer:
        raise TypeError(f"seed must be an integer, a pair of integers or a tf.random.Generator; "
                        f"got dtype {seed.dtype.name}")
    seed = tf.cast(seed, tf.int64)
    if seed.shape.rank == 0:
        return tf.stack([seed, tf.constant(0, tf.int64)])
    if seed.shape.rank == 1 and seed.shape[0] == 2:
        return seed
    raise ValueError(f"seed must be a scalar or have shape [2]; got shape {seed.shape}")


def negative_mask(labels: tf.Tensor) -> tf.Tensor:
    """(B, B) bool, True where the two samples have different labels."""
    return tf.not_equal(labels[:, None], labels[None, :])


def positive_pairs(labels: tf.Tensor, distances: tf.Tensor) -> PositivePairs:
    """All anchor-positive pairs (i, j), i != j, labels[i] == labels[j] (paper: "use all anchor-positive
    pairs"), gathered per anchor and sorted by distance within the row.

    The batch is sorted by label once; anchor i's identity is then one contiguous run of that order, and its
    P slots are the run's members (the anchor itself masked out), so no (B, B) mask has to be compacted.
    """
    batch_size = tf.size(labels)
    order = tf.argsort(labels, stable=True)
    sorted_labels = tf.gather(labels, order)
    run_start = tf.searchsorted(sorted_labels, labels, side="left")
    run_size = tf.searchsorted(sorted_labels, labels, side="right") - run_start
    width = tf.reduce_max(tf.concat([run_size, [0]], axis=0))
    slots = tf.range(width)
    positions = tf.minimum(run_start[:, None] + slots[None, :], tf.maximum(batch_size - 1, 0))
    columns = tf.gather(order, positions)
    valid = tf.logical_and(slots[None, :] < run_size[:, None],
                           tf.not_equal(columns, tf.range(batch_size)[:, None]))
    pair_distances = tf.where(valid, tf.gather(tf.stop_gradient(distances), columns, batch_dims=1),
                              float("inf"))
    by_distance = tf.argsort(pair_distances, axis=1, stable=True)
    return PositivePairs(columns=tf.gather(tf.where(valid, columns, 0), by_distance, batch_dims=1),
                         valid=tf.gather(valid, by_distance, batch_dims=1),
                         distances=tf.gather(pair_distances, by_distance, batch_dims=1))


def _float_bits(values: tf.Tensor) -> tf.Tensor:
    """int32 bit pattern of non-negative float32 values, ordered like the floats (the sign bit is cleared, so
    -0.0 counts as +0.0)."""
    return tf.bitwise.bitwise_and(tf.bitcast(values, tf.int32), 0x7FFFFFFF)


def _row_segments(buckets: tf.Tensor, negative: tf.Tensor, width: tf.Tensor) -> tf.Tensor:
    """Segment id row * width + bucket for negatives, -1 (dropped by segment ops) elsewhere."""
    offsets = tf.range(tf.shape(buckets)[0]) * width
    return tf.where(negative, buckets + offsets[:, None], -1)


def _suffix_minimum(values: tf.Tensor) -> tf.Tensor:
    """out[:, b] = min(values[:, b:]) for a small (B, W) int64 tensor, by log2(W) doubling steps."""
    width = tf.shape(values)[1]

    def step(shift, current):
        # current[:, b + shift] where it exists, int64 max past the end.
        index = tf.range(width) + shift
        shifted = tf.where(index < width, tf.gather(current, tf.minimum(index, width - 1), axis=1), _NO_KEY)
        return shift * 2, tf.minimum(current, shifted)

    _, result = tf.while_loop(lambda shift, _: shift < width, step, (tf.constant(1), values))
    return result


def _key_columns(keys: tf.Tensor, valid: tf.Tensor) -> tf.Tensor:
    """Batch index stored in the low 32 bits of a distance key; 0 where not ``valid``."""
    return tf.where(valid, tf.cast(tf.bitwise.bitwise_and(keys, _LOW_32_BITS), tf.int32), 0)


def _row_arg_extreme(values: tf.Tensor, largest: bool) -> tf.Tensor:
    """(B,) int32 argmax / argmin of each row; an empty batch (which a tf.distribute replica can get) gives
    an empty result instead of argmax's error on an empty axis."""
    reduce = tf.argmax if largest else tf.argmin
    return tf.cond(tf.shape(values)[1] > 0, lambda: reduce(values, axis=1, output_type=tf.int32),
                   lambda: tf.zeros([tf.shape(values)[0]], tf.int32))


def _farthest_negatives(distances: tf.Tensor, negative: tf.Tensor) -> tf.Tensor:
    """(B,) int32 column of each anchor's farthest negative (arbitrary where it has none)."""
    return _row_arg_extreme(tf.where(negative, distances, -1.0), largest=True)


def _closest_negatives(distances: tf.Tensor, negative: tf.Tensor) -> tf.Tensor:
    """(B,) int32 column of each anchor's closest negative (arbitrary where it has none)."""
    return _row_arg_extreme(tf.where(negative, distances, float("inf")), largest=False)


def _semi_hard_found(distances: tf.Tensor, negative: tf.Tensor, pairs: PositivePairs) -> tf.Tensor:
    """(B, P) bool: the pair has a negative farther than its positive (its farthest negative is)."""
    farthest_distance = tf.gather(distances, _farthest_negatives(distances, negative), batch_dims=1)
    has_negative = tf.reduce_any(negative, axis=1)
    return tf.logical_and(tf.logical_and(pairs.valid, has_negative[:, None]),
                          farthest_distance[:, None] > pairs.distances)


def _parallel_parts() -> int:
    """How many row blocks to mine in parallel: TensorFlow's CPU kernels for the binary search and the segment
    minimum are single-threaded, but independent ops of a graph run concurrently on the inter-op pool."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(cores, 4))


def _by_row_blocks(function, tensors: Sequence[tf.Tensor], parts: int) -> tf.Tensor:
    """``function(*tensors)`` computed on ``parts`` blocks of rows (concatenated back), so that single-threaded
    kernels inside it can run side by side. ``function`` must treat rows independently."""
    if parts == 1:
        return function(*tensors)
    rows = tf.shape(tensors[0])[0]
    sizes = tf.stack([(rows + parts - 1 - part) // parts for part in range(parts)])  # sums to rows
    blocks = zip(*(tf.split(tensor, sizes, num=parts) for tensor in tensors))
    return tf.concat([function(*block) for block in blocks], axis=0)


def _bucket_minimum_keys(thresholds: tf.Tensor, distances: tf.Tensor, negative: tf.Tensor,
                         count: bool = False) -> tf.Tensor:
    """(rows, P + 1) int64: per row and bucket b, the smallest key ``bits(D) << 32 | column`` among the row's
    negatives with exactly b thresholds strictly below their distance (int64 max if none).

    The bucket is found by binary search, or with ``count`` by counting the thresholds below, one (rows, B)
    compare-and-add per threshold in a loop (meant to be compiled by XLA, which fuses each pass into vector
    code; written as a loop rather than one broadcast compare so that no rows x P x B tensor is ever built)."""
    rows = tf.shape(distances)[0]
    width = tf.shape(thresholds)[1] + 1
    if count:
        def add_threshold(slot, buckets):
            below = tf.gather(thresholds, slot, axis=1)[:, None] < distances
            return slot + 1, buckets + tf.cast(below, tf.int32)

        _, buckets = tf.while_loop(lambda slot, _: slot < width - 1, add_threshold,
                                   (tf.constant(0), tf.zeros(tf.shape(distances), tf.int32)))
    else:
        buckets = tf.searchsorted(thresholds, distances, side="left")  # #thresholds strictly closer
    columns = tf.range(tf.cast(tf.shape(distances)[1], tf.int64), dtype=tf.int64)
    keys = tf.bitwise.left_shift(tf.cast(_float_bits(distances), tf.int64), 32) + columns[None, :]
    minimum = tf.math.unsorted_segment_min(tf.reshape(keys, [-1]),
                                           tf.reshape(_row_segments(buckets, negative, width), [-1]),
                                           rows * width)
    return tf.reshape(minimum, [rows, width])


# The bucket step fused by XLA: counting the P thresholds below each distance with vector compares (and the
# segment minimum) takes about 0.6x the CPU time of the binary-search version at B = 1,800, P = 40 (measured
# with benchmarks/mining.py's setup), but the count grows with P, so it is used for large batches of small
# identities only (the paper's ~40 faces per identity). It is compiled once per (B, P) shape.
_fused_bucket_minimum_keys = tf.function(lambda t, d, n: _bucket_minimum_keys(t, d, n, count=True),
                                         jit_compile=True, reduce_retracing=True)
FUSED_MIN_BATCH = 256
FUSED_MAX_POSITIVES = 64


def bucket_minimum_keys(thresholds: tf.Tensor, distances: tf.Tensor, negative: tf.Tensor,
                        fused: bool | None = None) -> tf.Tensor:
    """``_bucket_minimum_keys`` for the whole batch: XLA-fused counting for batches of at least
    ``FUSED_MIN_BATCH`` with at most ``FUSED_MAX_POSITIVES`` thresholds per row (``fused=None``), else the binary
    search on row blocks run side by side. Both give identical results (tests/losses)."""
    searched = lambda: _by_row_blocks(_bucket_minimum_keys, [thresholds, distances, negative], _parallel_parts())
    counted = lambda: _fused_bucket_minimum_keys(thresholds, distances, negative)
    if fused is not None:
        return counted() if fused else searched()
    use_fused = tf.logical_and(tf.shape(distances)[0] >= FUSED_MIN_BATCH,
                               tf.shape(thresholds)[1] <= FUSED_MAX_POSITIVES)
    return tf.cond(use_fused, counted, searched)


def _semi_hard(distances: tf.Tensor, negative: tf.Tensor, pairs: PositivePairs,
               fallback: str) -> MinedTriplets:
    """The paper's semi-hard negatives via buckets between the sorted positives (module docstring)."""
    bucket_minimum = bucket_minimum_keys(pairs.distances, distances, negative)
    beyond = _suffix_minimum(bucket_minimum)
    # Slot k (k-th closest positive) takes the closest negative in buckets k+1.. (farther than it).
    semi_hard_keys = beyond[:, 1:]
    found = tf.logical_and(pairs.valid, tf.not_equal(semi_hard_keys, _NO_KEY))
    has_negative = tf.logical_and(pairs.valid, tf.not_equal(beyond[:, :1], _NO_KEY))  # any negative at all
    chosen = _key_columns(semi_hard_keys, found)
    if fallback == "skip":
        valid = found
    else:
        valid = has_negative
        if fallback == "farthest":
            fallback_columns = _farthest_negatives(distances, negative)[:, None]
        else:  # hardest: the smallest key over all buckets
            fallback_columns = _key_columns(beyond[:, :1], has_negative)
        chosen = tf.where(found, chosen, tf.where(valid, fallback_columns, 0))
    return MinedTriplets(positives=pairs.columns, negatives=chosen, valid=valid, pair_valid=pairs.valid,
                         semi_hard_found=found)


def _random_violating(distances: tf.Tensor, negative: tf.Tensor, pairs: PositivePairs, margin: tf.Tensor,
                      seed: SeedLike) -> MinedTriplets:
    """A uniformly drawn negative inside the margin, D(a, n) < D(a, p) + margin, per pair; O(B^2 log B)."""
    sorted_negated, sorted_columns = tf.math.top_k(tf.where(negative, -distances, float("-inf")),
                                                   k=tf.shape(distances)[1])
    sorted_distances = -sorted_negated  # ascending; non-negatives (+inf) at the end
    inside = tf.searchsorted(sorted_distances, pairs.distances + margin, side="left")
    inside = tf.where(pairs.valid, inside, 0)
    # One uniform number per (anchor, positive) pair: the draw depends on (seed, anchor, positive) only, not on
    # how the pair slots happen to be laid out.
    uniform = tf.random.stateless_uniform(tf.shape(distances), seed=stateless_seed(seed), alg="philox")
    uniform = tf.gather(uniform, pairs.columns, batch_dims=1)
    draws = tf.minimum(tf.cast(tf.floor(uniform * tf.cast(inside, tf.float32)), tf.int32), inside - 1)
    valid = inside > 0
    chosen = tf.where(valid, tf.gather(sorted_columns, tf.maximum(draws, 0), batch_dims=1), 0)
    found = _semi_hard_found(distances, negative, pairs)
    return MinedTriplets(positives=pairs.columns, negatives=chosen, valid=valid, pair_valid=pairs.valid,
                         semi_hard_found=found)


def _hardest(distances: tf.Tensor, negative: tf.Tensor, pairs: PositivePairs) -> MinedTriplets:
    """The closest negative of the anchor for every pair: one masked argmin per row, no sort."""
    has_negative = tf.logical_and(pairs.valid, tf.reduce_any(negative, axis=1)[:, None])
    closest = _closest_negatives(distances, negative)[:, None]
    chosen = tf.where(has_negative, closest, 0)
    found = _semi_hard_found(distances, negative, pairs)
    return MinedTriplets(positives=pairs.columns, negatives=chosen, valid=has_negative,
                         pair_valid=pairs.valid, semi_hard_found=found)


def mine_triplets(labels: tf.Tensor, distances: tf.Tensor, margin: float | tf.Tensor = 0.2,
                  strategy: str = "semi_hard", fallback: str = "farthest", seed: SeedLike = None,
                  anchor_mask: tf.Tensor | None = None, candidate_mask: tf.Tensor | None = None) -> MinedTriplets:
    """Chooses one negative for every anchor-positive pair of the batch (paper, "Triplet loss and selection").

    Args:
      labels: (B,) or (B, 1) integer identity ids.
      distances: (B, B) float32 squared distances (``pairwise_squared_distances``); gradients are not needed
        and not propagated (mining runs on ``tf.stop_gradient``).
      margin: the hinge margin (``random_violating`` draws among negatives with D(a, n) - D(a, p) < margin).
      strategy: ``semi_hard`` | ``hardest`` | ``random_violating`` (``batch_all`` has no single negative).
      fallback: ``semi_hard`` pairs without a negative farther than the positive take the anchor's
        ``farthest`` or ``hardest`` negative, or are dropped (``skip``).
      seed: ``random_violating`` only; see ``triplet_loss``.
      anchor_mask: optional (B,) bool; rows where it is False are not anchors (their slots get
        ``pair_valid``, ``valid`` and ``semi_hard_found`` False). They still serve as positives and negatives
        of the other rows (the harmonic loss: anchors are the new model's rows only). None: every row.
      candidate_mask: optional (B,) bool, columns where it is False are never positives or negatives (the
        harmonic loss's ``candidates="old"``: new anchors against old embeddings only); or (B, B) bool, where
        ``candidate_mask[i, j]`` False keeps column j out of anchor row i's positives and negatives (the harmonic
        loss's ``candidates="other"``: each anchor against the other model's embeddings). None: every column.

    Returns:
      ``MinedTriplets`` of (B, P) tensors, anchor = row. Pairs whose anchor has no negative at all are never
      valid.
    """
    triplets = _mine_all_rows(labels, distances, margin, strategy, fallback, seed, candidate_mask)
    if anchor_mask is None:
        return triplets
    rows = tf.convert_to_tensor(anchor_mask, tf.bool)[:, None]
    return MinedTriplets(positives=triplets.positives, negatives=triplets.negatives,
                         valid=tf.logical_and(triplets.valid, rows), pair_valid=tf.logical_and(triplets.pair_valid, rows),
                         semi_hard_found=tf.logical_and(triplets.semi_hard_found, rows))


def _restrict_candidates(negative: tf.Tensor, pairs: PositivePairs, candidate_mask: tf.Tensor
                         ) -> tuple[tf.Tensor, PositivePairs]:
    """Drops the columns outside ``candidate_mask`` ((B,) for every row, or (B, B) per row) from the negatives and
    the positive pairs (re-sorted so the remaining pairs stay ordered by distance, invalid slots last)."""
    candidate = tf.convert_to_tensor(candidate_mask, tf.bool)
    if candidate.shape.rank == 2:
        negative = tf.logical_and(negative, candidate)
        valid = tf.logical_and(pairs.valid, tf.gather(candidate, pairs.columns, batch_dims=1))
    elif candidate.shape.rank == 1:
        negative = tf.logical_and(negative, candidate[None, :])
        valid = tf.logical_and(pairs.valid, tf.gather(candidate, pairs.columns))
    else:
        raise ValueError(f"candidate_mask must have shape (batch,) or (batch, batch), got shape {candidate.shape}")
    pair_distances = tf.where(valid, pairs.distances, float("inf"))
    by_distance = tf.argsort(pair_distances, axis=1, stable=True)
    return negative, PositivePairs(columns=tf.gather(pairs.columns, by_distance, batch_dims=1),
                                   valid=tf.gather(valid, by_distance, batch_dims=1),
                                   distances=tf.gather(pair_distances, by_distance, batch_dims=1))


def _mine_all_rows(labels, distances, margin, strategy, fallback, seed, candidate_mask=None) -> MinedTriplets:
    """``mine_triplets`` with every row an anchor."""
    check_choice("strategy", strategy, ("semi_hard", "hardest", "random_violating"))
    check_choice("fallback", fallback, FALLBACKS)
    labels = normalise_labels(labels)
    distances = tf.stop_gradient(tf.convert_to_tensor(distances, tf.float32))
    negative = negative_mask(labels)
    pairs = positive_pairs(labels, distances)
    if candidate_mask is not None:
        negative, pairs = _restrict_candidates(negative, pairs, candidate_mask)
    if strategy == "semi_hard":
        return _semi_hard(distances, negative, pairs, fallback)
    if strategy == "hardest":
        return _hardest(distances, negative, pairs)
    return _random_violating(distances, negative, pairs, tf.cast(margin, tf.float32), seed)


@dataclasses.dataclass(frozen=True)
class BatchAllSums:
    """Per anchor-positive pair sums over all its negatives (``batch_all``), all (B, P).

    Attributes:
      pairs: the ``PositivePairs`` the slots refer to.
      active_counts: float32, #negatives with D(a, n) < D(a, p) + margin (a positive hinge).
      active_distance_sums: float64, sum of those D(a, n), differentiable w.r.t. the distance matrix.
      negative_counts: float32, #negatives of the anchor (the pair's number of valid triplets).
      negative_distance_sums: float32, sum of D(a, n) over all the anchor's negatives (no gradient).
      semi_hard_found: bool, the pair has a negative with D(a, n) > D(a, p).
    """

    pairs: PositivePairs
    active_counts: tf.Tensor
    active_distance_sums: tf.Tensor
    negative_counts: tf.Tensor
    negative_distance_sums: tf.Tensor
    semi_hard_found: tf.Tensor


def batch_all_sums(labels: tf.Tensor, distances: tf.Tensor, margin: float | tf.Tensor = 0.2) -> BatchAllSums:
    """Sums over every valid triplet (a, p, n) in O(B^2) memory (``batch_all``).

    The negatives of row i with a positive hinge for its k-th closest positive are those with
    D(i, n) < D(i, p_k) + margin; bucketing every negative by #{k : D(i, p_k) + margin <= D(i, n)} (one binary
    search), a per-(row, bucket) count and distance sum, prefix-summed over buckets, give each pair's count
    and sum. Distance sums are accumulated in float64 because the pair's hinge sum is their difference
    with count * (D(a, p) + margin), which cancels in float32 for large batches.
    """
    labels = normalise_labels(labels)
    distances = tf.convert_to_tensor(distances, tf.float32)
    plain = tf.stop_gradient(distances)
    negative = negative_mask(labels)
    pairs = positive_pairs(labels, plain)
    batch_size = tf.shape(distances)[0]
    width = tf.shape(pairs.distances)[1] + 1
    thresholds = pairs.distances + tf.cast(margin, tf.float32)
    # Sorted thresholds (the pair distances are sorted, the margin is shared), so bucket b holds the
    # negatives that are active for slots b, b+1, ...
    buckets = tf.searchsorted(thresholds, plain, side="right")
    segments = tf.reshape(_row_segments(buckets, negative, width), [-1])
    counts = tf.math.unsorted_segment_sum(tf.ones([batch_size * batch_size], tf.float32), segments,
                                          batch_size * width)
    sums = tf.math.unsorted_segment_sum(tf.reshape(tf.cast(distances, tf.float64), [-1]), segments,
                                        batch_size * width)
    active_counts = tf.cumsum(tf.reshape(counts, [batch_size, width]), axis=1)[:, :-1]
    active_sums = tf.cumsum(tf.reshape(sums, [batch_size, width]), axis=1)[:, :-1]
    negative_float = tf.cast(negative, tf.float32)
    negative_counts = tf.reduce_sum(negative_float, axis=1, keepdims=True)
    negative_sums = tf.reduce_sum(negative_float * plain, axis=1, keepdims=True)
    valid = pairs.valid
    zero = tf.zeros_like(pairs.distances)
    found = _semi_hard_found(plain, negative, pairs)
    return BatchAllSums(pairs=pairs,
                        active_counts=tf.where(valid, active_counts, zero),
                        active_distance_sums=tf.where(valid, active_sums, tf.zeros_like(active_sums)),
                        negative_counts=tf.where(valid, tf.broadcast_to(negative_counts, tf.shape(zero)), zero),
                        negative_distance_sums=tf.where(valid, tf.broadcast_to(negative_sums, tf.shape(zero)),
                                                        zero),
                        semi_hard_found=found)
