"""Face verification metrics: the paper's TA/FA, VAL at a FAR, accuracy, the LFW 10-fold protocol, ROC.

Paper, section "Evaluation": for a pair (i, j) with squared L2 distance D(x_i, x_j) and a threshold d,

    TA(d) = {(i, j) in P_same : D <= d},        FA(d) = {(i, j) in P_diff : D <= d},
    VAL(d) = |TA(d)| / |P_same|,                 FAR(d) = |FA(d)| / |P_diff|.

A pair is therefore classified "same" when its distance is **at most** the threshold, everywhere in this module.
The headline metric is VAL at FAR = 1e-3. On LFW (protocol "unrestricted, labeled outside data") the threshold
is chosen on nine training folds and the tenth is classified; the paper reports mean accuracy +- standard error.

Candidate thresholds. For a set of distances with sorted unique values u_1 < ... < u_m, every threshold in
[u_j, u_{j+1}) splits the pairs the same way, so the candidates are one representative per split:
``-inf`` (nothing accepted), the midpoints (u_j + u_{j+1}) / 2 (everything <= u_j accepted; the midpoint is
the choice that leaves the most room on both sides for the held-out data), and ``+inf`` (everything accepted).
All counts for all m + 1 candidates come from one sort and two cumulative sums (``threshold_sweep``), O(N log N).

Pure numpy; no TensorFlow import.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

#: The paper's operating point for VAL.
DEFAULT_FAR_TARGET = 1e-3


# ----------------------------------------------------------------------------------------------------- basics


def squared_l2(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise squared L2 distance ``||a_i - b_i||^2`` of two ``(N, D)`` arrays (the paper's D(x_i, x_j)).

    For L2-normalised embeddings the result lies in [0, 4].
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.ndim != 2 or a.shape != b.shape:
        raise ValueError(f"expected two (N, D) arrays of the same shape, got {a.shape} and {b.shape}")
    difference = a - b
    return np.einsum("nd,nd->n", difference, difference)


def _check_pairs(distances: np.ndarray, is_same: np.ndarray, what: str = "") -> tuple[np.ndarray, np.ndarray]:
    distances = np.asarray(distances, dtype=np.float64)
    is_same = np.asarray(is_same)
    prefix = f"{what}: " if what else ""
    if distances.ndim != 1 or is_same.shape != distances.shape:
        raise ValueError(
            f"{prefix}expected 1-D distances and is_same of the same length, got {distances.shape} and {is_same.shape}"
        )
    if is_same.dtype != bool:
        if not np.isin(is_same, (0, 1)).all():
            raise ValueError(f"{prefix}is_same must be boolean (or 0/1), got values {np.unique(is_same)[:5]}")
        is_same = is_same.astype(bool)
    if not np.isfinite(distances).all():
        raise ValueError(f"{prefix}distances must be finite; {np.count_nonzero(~np.isfinite(distances))} are not")
    if distances.size == 0:
        raise ValueError(f"{prefix}no pairs given")
    return distances, is_same


def accuracy_at_threshold(distances: np.ndarray, is_same: np.ndarray, threshold: float) -> float:
    """Fraction of pairs classified correctly when "same" means ``distance <= threshold``."""
    distances, is_same = _check_pairs(distances, is_same)
    return float(np.mean((distances <= threshold) == is_same))


def val_far_at_threshold(distances: np.ndarray, is_same: np.ndarray, threshold: float) -> tuple[float, float]:
    """The paper's ``(VAL(d), FAR(d))`` at ``d = threshold``: |TA|/|P_same| and |FA|/|P_diff|.

    Raises ValueError when either class is empty (the ratio would be undefined).
    """
    distances, is_same = _check_pairs(distances, is_same)
    n_same = int(np.count_nonzero(is_same))
    n_diff = is_same.size - n_same
    if n_same == 0 or n_diff == 0:
        raise ValueError(f"VAL and FAR need both classes; got {n_same} same and {n_diff} different pairs")
    accepted = distances <= threshold
    return (
        float(np.count_nonzero(accepted & is_same)) / n_same,
        float(np.count_nonzero(accepted & ~is_same)) / n_diff,
    )


@dataclass(frozen=True, eq=False)  # holds arrays: compare fields explicitly
class ThresholdSweep:
    """Counts at every candidate threshold of one set of pairs (see the module docstring), in increasing order.

    ``true_accepts[j]`` = |TA(thresholds[j])|, ``false_accepts[j]`` = |FA(thresholds[j])|; both are
    non-decreasing, start at 0 (threshold ``-inf``) and end at ``n_same`` / ``n_different`` (``+inf``).
    """

    thresholds: np.ndarray
    true_accepts: np.ndarray
    false_accepts: np.ndarray
    n_same: int
    n_different: int

    @property
    def accuracy(self) -> np.ndarray:
        """Accuracy at each candidate: (|TA| + true rejects) / all pairs."""
        correct = self.true_accepts + (self.n_different - self.false_accepts)
        return correct / (self.n_same + self.n_different)

    @property
    def val(self) -> np.ndarray:
        """VAL at each candidate (needs at least one same pair)."""
        if self.n_same == 0:
            raise ValueError("VAL is undefined without same-person pairs")
        return self.true_accepts / self.n_same

    @property
    def far(self) -> np.ndarray:
        """FAR at each candidate (needs at least one different pair)."""
        if self.n_different == 0:
            raise ValueError("FAR is undefined without different-person pairs")
        return self.false_accepts / self.n_different


def candidate_thresholds(unique_sorted: np.ndarray) -> np.ndarray:
    """``[-inf, midpoints of consecutive values..., +inf]`` for strictly increasing finite ``unique_sorted``.

    Each midpoint m between u_j and u_{j+1} satisfies u_j <= m < u_{j+1}, so ``distance <= m`` accepts exactly
    the distances <= u_j. (Where floating point cannot represent a value strictly between two adjacent floats,
    or the midpoint would overflow, u_j itself is used.)
    """
    lower, upper = unique_sorted[:-1], unique_sorted[1:]
    with np.errstate(over="ignore", invalid="ignore"):
        middle = lower + (upper - lower) / 2
    middle = np.where(np.isfinite(middle) & (middle >= lower) & (middle < upper), middle, lower)
    return np.concatenate([[-np.inf], middle, [np.inf]])


def threshold_sweep(distances: np.ndarray, is_same: np.ndarray) -> ThresholdSweep:
    """|TA| and |FA| at every candidate threshold, in O(N log N): one sort, then cumulative sums of the per-value
    counts of same and different pairs."""
    distances, is_same = _check_pairs(distances, is_same)
    unique, inverse = np.unique(distances, return_inverse=True)
    same_per_value = np.bincount(inverse[is_same], minlength=unique.size)
    diff_per_value = np.bincount(inverse[~is_same], minlength=unique.size)
    zero = np.zeros(1, dtype=np.int64)
    return ThresholdSweep(
        thresholds=candidate_thresholds(unique),
        true_accepts=np.concatenate([zero, np.cumsum(same_per_value)]),
        false_accepts=np.concatenate([zero, np.cumsum(diff_per_value)]),
        n_same=int(np.count_nonzero(is_same)),
        n_different=int(np.count_nonzero(~is_same)),
    )


def best_accuracy_threshold(distances: np.ndarray, is_same: np.ndarray) -> tuple[float, float]:
    """``(threshold, accuracy)``: the candidate threshold with the highest accuracy on these pairs.

    Tie-break: the **smallest** threshold among those with the maximal accuracy — the most conservative one
    (fewest false accepts), and a deterministic rule that does not depend on the pair order.
    """
    sweep = threshold_sweep(distances, is_same)
    accuracy = sweep.accuracy
    best = int(np.argmax(accuracy))  # argmax returns the first (smallest-threshold) maximum
    return float(sweep.thresholds[best]), float(accuracy[best])


def threshold_at_far(
    distances: np.ndarray, is_same: np.ndarray, far_target: float = DEFAULT_FAR_TARGET
) -> tuple[float, float]:
    """``(threshold, far)``: the largest candidate threshold whose FAR on these pairs is <= ``far_target``.

    No interpolation: FAR is a step function of d, and the largest d with FAR(d) <= target lies just below the
    distance of the first different-person pair that would push FAR over the target. The candidate used is the
    midpoint between that distance and the largest distance below it, i.e. the operating point with the highest
    VAL whose FAR on the data it was chosen on does not exceed the target (an interpolated threshold could
    exceed it). ``-inf`` is returned (VAL = 0) when even the smallest different-pair distance would already
    exceed the target, e.g. fewer than 1 / far_target different pairs and one at the minimal distance.
    With 2,700 different pairs in nine LFW folds, FAR <= 1e-3 allows 2 false accepts.
    """
    if not 0.0 <= far_target <= 1.0:
        raise ValueError(f"far_target must be in [0, 1], got {far_target}")
    sweep = threshold_sweep(distances, is_same)
    far = sweep.far
    # FAR is non-decreasing and far[0] = 0 <= target, so the admissible candidates are a prefix.
    last = int(np.searchsorted(far, far_target, side="right")) - 1
    return float(sweep.thresholds[last]), float(far[last])


# ------------------------------------------------------------------------------------------------------- ROC


@dataclass(frozen=True, eq=False)  # holds arrays: compare fields explicitly
class RocCurve:
    """VAL against FAR at every candidate threshold (increasing), from (0, 0) at ``-inf`` to (1, 1) at ``+inf``.

    ``auc`` is the trapezoidal area under VAL(FAR); ``eer`` the equal error rate, where FAR = 1 - VAL, linearly
    interpolated between the two ROC points that bracket it.
    """

    thresholds: np.ndarray
    far: np.ndarray
    val: np.ndarray
    auc: float
    eer: float

    def val_at(self, far_target: float) -> float:
        """The highest VAL on the curve at a FAR no larger than ``far_target`` (pooled pairs, no cross-validation:
        for reading a ROC at several operating points, not the protocol's VAL@FAR)."""
        ok = self.far <= far_target
        return float(self.val[ok].max()) if ok.any() else 0.0

    def to_dict(self) -> dict:
        """JSON-ready: lists, with the infinite end thresholds as ``None``."""
        return {
            "thresholds": [float(t) if math.isfinite(t) else None for t in self.thresholds],
            "far": self.far.tolist(),
            "val": self.val.tolist(),
            "auc": self.auc,
            "eer": self.eer,
        }


def equal_error_rate(far: np.ndarray, val: np.ndarray) -> float:
    """The rate at which FAR equals the false-reject rate 1 - VAL on the ROC polyline (FAR, VAL increasing)."""
    difference = np.asarray(far) - (1.0 - np.asarray(val))  # non-decreasing from -1 to 1
    j = int(np.argmax(difference >= 0))
    if difference[j] == 0 or j == 0:
        return float(far[j])
    # linear interpolation on the segment (j-1, j): the point where FAR - (1 - VAL) = 0
    step = -difference[j - 1] / (difference[j] - difference[j - 1])
    return float(far[j - 1] + step * (far[j] - far[j - 1]))


def roc_curve(distances: np.ndarray, is_same: np.ndarray) -> RocCurve:
    """The ROC of the paper's VAL/FAR over all candidate thresholds, with AUC and EER."""
    sweep = threshold_sweep(distances, is_same)
    far, val = sweep.far, sweep.val
    auc = float(np.sum((far[1:] - far[:-1]) * (val[1:] + val[:-1]) / 2))
    return RocCurve(thresholds=sweep.thresholds, far=far, val=val, auc=auc, eer=equal_error_rate(far, val))


# --------------------------------------------------------------------------------------------- the protocol


@dataclass(frozen=True)
class FoldResult:
    """One held-out fold: thresholds chosen on the training pairs, metrics measured on the held-out pairs.

    ``accuracy_threshold`` maximises training accuracy (``train_accuracy``); ``far_threshold`` is the largest
    with training FAR <= the target (``train_far``); ``val``/``far`` are measured at it on the held-out fold.
    """

    fold: int
    accuracy_threshold: float
    train_accuracy: float
    accuracy: float
    far_threshold: float
    train_far: float
    val: float
    far: float
    n_same: int
    n_different: int

    def to_dict(self) -> dict:
        return {
            key: (None if isinstance(value, float) and not math.isfinite(value) else value)
            for key, value in self.__dict__.items()
        }


def _mean_std_sem(values: np.ndarray) -> tuple[float, float, float]:
    mean = float(np.mean(values))
    if values.size < 2:
        return mean, math.nan, math.nan
    std = float(np.std(values, ddof=1))
    return mean, std, std / math.sqrt(values.size)


def paired_fold_difference(folds_a, folds_b) -> dict:
    """Fold-by-fold accuracy of one comparison minus another on the same folds (e.g. old-new minus new-new in
    harmonic evaluation): ``folds_a``/``folds_b`` are ``FoldResult``s or their dicts (``fold``, ``accuracy``).
    Returns the mean difference, its standard error over the folds (sample std, ddof=1), how many folds are
    higher / equal / lower, and the per-fold differences. A paired comparison: fold-to-fold spread common to both
    comparisons cancels."""
    def accuracies(folds):
        return {int(f["fold"] if isinstance(f, dict) else f.fold): float(f["accuracy"] if isinstance(f, dict)
                                                                           else f.accuracy) for f in folds}

    a, b = accuracies(folds_a), accuracies(folds_b)
    if sorted(a) != sorted(b):
        raise ValueError(f"paired_fold_difference: the folds differ ({sorted(a)} vs {sorted(b)}).")
    diff = np.array([a[k] - b[k] for k in sorted(a)])
    mean, _, sem = _mean_std_sem(diff)
    return {"mean": mean, "sem": sem, "higher": int((diff > 1e-12).sum()),
            "equal": int((np.abs(diff) <= 1e-12).sum()), "lower": int((diff < -1e-12).sum()),
            "folds": diff.tolist()}


@dataclass(frozen=True, eq=False)  # holds arrays: compare fields explicitly
class VerificationResult:
    """Everything ``evaluate_verification`` / ``evaluate_with_train_split`` measure.

    Spread statistics use the **sample** standard deviation over folds (``ddof=1``) and the standard error of
    the mean ``std / sqrt(n_folds)``, which is what the paper's "mean +- standard error" reports. With a single
    held-out set (``evaluate_with_train_split``) they are NaN (``None`` in ``to_dict``).
    ``roc`` is computed on all evaluated pairs (all folds pooled; the test set in the train-split mode).
    """

    folds: tuple[FoldResult, ...]
    far_target: float
    roc: RocCurve
    protocol: str

    @property
    def n_folds(self) -> int:
        return len(self.folds)

    def _stats(self, key: str) -> tuple[float, float, float]:
        return _mean_std_sem(np.array([getattr(fold, key) for fold in self.folds], dtype=np.float64))

    @property
    def accuracy_mean(self) -> float:
        return self._stats("accuracy")[0]

    @property
    def accuracy_std(self) -> float:
        """Sample standard deviation (ddof=1) of the per-fold accuracies."""
        return self._stats("accuracy")[1]

    @property
    def accuracy_sem(self) -> float:
        """Standard error of the mean accuracy: ``accuracy_std / sqrt(n_folds)``."""
        return self._stats("accuracy")[2]

    @property
    def val_mean(self) -> float:
        return self._stats("val")[0]

    @property
    def val_std(self) -> float:
        """Sample standard deviation (ddof=1) of the per-fold VAL at the target FAR."""
        return self._stats("val")[1]

    @property
    def val_sem(self) -> float:
        return self._stats("val")[2]

    @property
    def far_mean(self) -> float:
        """Mean held-out FAR at the per-fold VAL thresholds (compare with ``far_target``)."""
        return self._stats("far")[0]

    @property
    def accuracy_thresholds(self) -> np.ndarray:
        return np.array([fold.accuracy_threshold for fold in self.folds])

    def to_dict(self, include_roc: bool = False) -> dict:
        """JSON-ready summary (non-finite numbers become ``None``); the ROC arrays only with ``include_roc``."""

        def clean(value: float) -> float | None:
            return value if math.isfinite(value) else None

        result = {
            "protocol": self.protocol,
            "n_folds": self.n_folds,
            "far_target": self.far_target,
            "accuracy_mean": clean(self.accuracy_mean),
            "accuracy_std": clean(self.accuracy_std),
            "accuracy_sem": clean(self.accuracy_sem),
            "val_mean": clean(self.val_mean),
            "val_std": clean(self.val_std),
            "val_sem": clean(self.val_sem),
            "far_mean": clean(self.far_mean),
            "auc": self.roc.auc,
            "eer": self.roc.eer,
            "folds": [fold.to_dict() for fold in self.folds],
        }
        if include_roc:
            result["roc"] = self.roc.to_dict()
        return result

    def format_table(self) -> str:
        """A plain-text table: one row per fold, then mean +- SE (and std), AUC and EER."""

        def number(value: float, width: int, digits: int = 4) -> str:
            return f"{value:{width}.{digits}f}" if math.isfinite(value) else f"{'-':>{width}}"

        far_label = f"VAL@FAR={self.far_target:g}"
        header = f"{'fold':>4}  {'threshold':>9}  {'accuracy':>8}  {'VAL thr':>9}  {far_label:>14}  {'FAR':>7}"
        lines = [f"Verification: {self.protocol}", header, "-" * len(header)]
        for fold in self.folds:
            lines.append(
                f"{fold.fold:>4}  {number(fold.accuracy_threshold, 9)}  {number(fold.accuracy, 8)}  "
                f"{number(fold.far_threshold, 9)}  {number(fold.val, 14)}  {number(fold.far, 7)}"
            )
        lines.append("-" * len(header))
        lines.append(
            f"accuracy {self.accuracy_mean:.4f} +- {self.accuracy_sem:.4f} (SE; std {self.accuracy_std:.4f}, ddof=1)"
            if self.n_folds > 1
            else f"accuracy {self.accuracy_mean:.4f}"
        )
        lines.append(
            f"VAL {self.val_mean:.4f} +- {self.val_std:.4f} (std, ddof=1) at FAR {self.far_mean:.5f} "
            f"(target {self.far_target:g})"
            if self.n_folds > 1
            else f"VAL {self.val_mean:.4f} at FAR {self.far_mean:.5f} (target {self.far_target:g})"
        )
        lines.append(f"ROC AUC {self.roc.auc:.4f}, EER {self.roc.eer:.4f}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.format_table()


def evaluate_fold(
    train_distances: np.ndarray,
    train_same: np.ndarray,
    test_distances: np.ndarray,
    test_same: np.ndarray,
    far_target: float = DEFAULT_FAR_TARGET,
    fold: int = 0,
) -> FoldResult:
    """Choose both thresholds on the training pairs only, then measure accuracy, VAL and FAR on the test pairs."""
    train_distances, train_same = _check_pairs(train_distances, train_same, "training pairs")
    test_distances, test_same = _check_pairs(test_distances, test_same, "held-out pairs")
    accuracy_threshold, train_accuracy = best_accuracy_threshold(train_distances, train_same)
    far_threshold, train_far = threshold_at_far(train_distances, train_same, far_target)
    val, far = val_far_at_threshold(test_distances, test_same, far_threshold)
    n_same = int(np.count_nonzero(test_same))
    return FoldResult(
        fold=fold,
        accuracy_threshold=accuracy_threshold,
        train_accuracy=train_accuracy,
        accuracy=accuracy_at_threshold(test_distances, test_same, accuracy_threshold),
        far_threshold=far_threshold,
        train_far=train_far,
        val=val,
        far=far,
        n_same=n_same,
        n_different=test_same.size - n_same,
    )


def evaluate_verification(
    distances: np.ndarray,
    is_same: np.ndarray,
    folds: np.ndarray | Sequence[int],
    far_target: float = DEFAULT_FAR_TARGET,
) -> VerificationResult:
    """The LFW k-fold protocol (paper, "Evaluation"): for each fold, thresholds chosen on the OTHER folds only.

    For held-out fold k (in increasing order of the fold ids in ``folds``):

    * accuracy: the threshold maximising accuracy on the pairs of all other folds (``best_accuracy_threshold``,
      ties to the smallest), applied to fold k;
    * VAL at ``far_target``: the largest threshold with FAR <= ``far_target`` on the other folds
      (``threshold_at_far``), at which VAL and FAR of fold k are measured.

    Reports mean accuracy +- standard error (sample std, ddof=1, over sqrt(n_folds)), VAL mean +- std, the mean
    held-out FAR, and the ROC/AUC/EER of all pairs pooled.

    Args:
        distances: (N,) pair distances (e.g. ``squared_l2`` of L2-normalised embeddings); smaller = more similar.
        is_same: (N,) bool, True for same-person pairs.
        folds: (N,) fold id of each pair (e.g. ``PairsFile.folds``); at least two distinct ids.
    """
    distances, is_same = _check_pairs(distances, is_same)
    folds = np.asarray(folds)
    if folds.shape != distances.shape:
        raise ValueError(f"folds must have one id per pair: shape {folds.shape} vs distances {distances.shape}")
    fold_ids = np.unique(folds)
    if fold_ids.size < 2:
        raise ValueError(
            f"the k-fold protocol needs at least 2 folds, got {fold_ids.size}; with one test set choose the "
            "thresholds on separate training pairs: evaluate_with_train_split(...)"
        )
    results = []
    for fold_id in fold_ids:
        held_out = folds == fold_id
        results.append(
            evaluate_fold(
                distances[~held_out],
                is_same[~held_out],
                distances[held_out],
                is_same[held_out],
                far_target,
                fold=int(fold_id),
            )
        )
    return VerificationResult(
        folds=tuple(results),
        far_target=far_target,
        roc=roc_curve(distances, is_same),
        protocol=f"{fold_ids.size}-fold, thresholds chosen on the other folds",
    )


def evaluate_with_train_split(
    train_distances: np.ndarray,
    train_same: np.ndarray,
    test_distances: np.ndarray,
    test_same: np.ndarray,
    far_target: float = DEFAULT_FAR_TARGET,
) -> VerificationResult:
    """Single test set (e.g. LFW View 1 test): thresholds chosen on separate training pairs (View 1 train).

    Same rules as one fold of ``evaluate_verification``; the result has one fold, NaN spread statistics, and
    the ROC of the test pairs.
    """
    result = evaluate_fold(train_distances, train_same, test_distances, test_same, far_target, fold=0)
    return VerificationResult(
        folds=(result,),
        far_target=far_target,
        roc=roc_curve(test_distances, test_same),
        protocol="thresholds chosen on a separate training set",
    )


# ------------------------------------------------------------------------------------- recipes on embeddings

#: ``pair_distances`` metrics. On unit vectors the two rank pairs identically (1 - cos = ||a - b||² / 2); they
#: differ once a mean has been subtracted, which leaves the vectors off the unit sphere.
DISTANCE_METRICS = ("squared_l2", "cosine")
#: How ``combine_flip`` joins the embedding of an image and of its mirror image.
FLIP_MODES = ("none", "mean", "concat")


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def combine_flip(plain: np.ndarray, mirrored: np.ndarray | None, mode: str) -> np.ndarray:
    """One embedding per image from its own (``plain``, (N, d)) and its mirror image's (``mirrored``): ``none``
    the plain one; ``mean`` the normalised sum (d); ``concat`` both side by side, scaled to unit length (2d:
    the squared L2 distance is then the mean of the two models' distances)."""
    plain = np.asarray(plain, np.float64)
    if mode == "none":
        return plain
    if mode not in FLIP_MODES:
        raise ValueError(f"flip mode must be one of {FLIP_MODES}, got {mode!r}")
    if mirrored is None or np.shape(mirrored) != plain.shape:
        raise ValueError(f"flip mode {mode!r} needs the mirror images' embeddings, of shape {plain.shape}")
    mirrored = np.asarray(mirrored, np.float64)
    if mode == "mean":
        return _unit(plain + mirrored)
    return np.concatenate([plain, mirrored], axis=1) / math.sqrt(2.0)


def pair_distances(a: np.ndarray, b: np.ndarray, metric: str = "squared_l2",
                   mean: np.ndarray | None = None) -> np.ndarray:
    """Distances of the pairs (a_i, b_i) of two (N, d) embedding arrays; smaller = more alike.

    ``mean`` (d,): subtracted from every embedding first (training-fold mean subtraction: the mean embedding of
    the images that chose the threshold; the vectors are not renormalised). ``metric``: ``squared_l2`` (the
    paper's D) or ``cosine`` (1 - cosine similarity, in [0, 2])."""
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    if mean is not None:
        a, b = a - mean, b - mean
    if metric == "squared_l2":
        return squared_l2(a, b)
    if metric == "cosine":
        return 1.0 - np.einsum("nd,nd->n", _unit(a), _unit(b))
    raise ValueError(f"metric must be one of {DISTANCE_METRICS}, got {metric!r}")


def mean_embedding(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The mean of every embedding of the pairs (both sides; an image in several pairs counts each time)."""
    return np.concatenate([np.asarray(a, np.float64), np.asarray(b, np.float64)]).mean(axis=0)


def evaluate_embeddings(a: np.ndarray, b: np.ndarray, is_same: np.ndarray, folds: np.ndarray | Sequence[int],
                        metric: str = "squared_l2", subtract_mean: bool = False,
                        far_target: float = DEFAULT_FAR_TARGET) -> VerificationResult:
    """The k-fold protocol of ``evaluate_verification`` on the embeddings of each pair's two images.

    ``subtract_mean``: for held-out fold k, the mean embedding of the other folds' pairs is subtracted from every
    embedding before the distances that choose fold k's thresholds and classify it (so nothing of fold k is used
    to classify fold k). The pooled ROC takes each pair's distance from its own held-out fold."""
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    folds = np.asarray(folds)
    if not subtract_mean:
        return evaluate_verification(pair_distances(a, b, metric), is_same, folds, far_target)
    distances, is_same = _check_pairs(np.zeros(len(a)), is_same)
    fold_ids = np.unique(folds)
    if folds.shape != distances.shape or fold_ids.size < 2:
        raise ValueError(f"folds must give each of the {len(a)} pairs a fold id, with at least 2 folds")
    results, pooled = [], np.empty(len(a))
    for fold_id in fold_ids:
        held_out = folds == fold_id
        d = pair_distances(a, b, metric, mean_embedding(a[~held_out], b[~held_out]))
        pooled[held_out] = d[held_out]
        results.append(evaluate_fold(d[~held_out], is_same[~held_out], d[held_out], is_same[held_out], far_target,
                                     fold=int(fold_id)))
    return VerificationResult(folds=tuple(results), far_target=far_target, roc=roc_curve(pooled, is_same),
                              protocol=f"{fold_ids.size}-fold, thresholds and mean embedding from the other folds")


def evaluate_embeddings_with_train_split(train: tuple[np.ndarray, np.ndarray], train_same: np.ndarray,
                                         test: tuple[np.ndarray, np.ndarray], test_same: np.ndarray,
                                         metric: str = "squared_l2", subtract_mean: bool = False,
                                         far_target: float = DEFAULT_FAR_TARGET) -> VerificationResult:
    """``evaluate_with_train_split`` on embeddings (``train`` and ``test``: (a, b) arrays); ``subtract_mean``
    subtracts the training pairs' mean embedding from every embedding of both sets."""
    mean = mean_embedding(*train) if subtract_mean else None
    result = evaluate_with_train_split(pair_distances(*train, metric, mean), train_same,
                                       pair_distances(*test, metric, mean), test_same, far_target)
    if subtract_mean:
        result = VerificationResult(folds=result.folds, far_target=far_target, roc=result.roc,
                                    protocol="thresholds and mean embedding chosen on a separate training set")
    return result


@dataclass(frozen=True)
class Recipe:
    """How a pair is scored from its images' embeddings: ``flip`` (``FLIP_MODES``: the mirror image's embedding
    left out, averaged in or concatenated), ``distance`` (``DISTANCE_METRICS``) and ``subtract_mean``
    (training-fold mean subtraction). The default is the paper's: squared L2 of the plain embeddings."""

    flip: str = "none"
    distance: str = "squared_l2"
    subtract_mean: bool = False

    def __post_init__(self) -> None:
        if self.flip not in FLIP_MODES:
            raise ValueError(f"flip must be one of {FLIP_MODES}, got {self.flip!r}")
        if self.distance not in DISTANCE_METRICS:
            raise ValueError(f"distance must be one of {DISTANCE_METRICS}, got {self.distance!r}")

    @property
    def name(self) -> str:
        return f"flip={self.flip},distance={self.distance},subtract_mean={str(self.subtract_mean).lower()}"

    @classmethod
    def parse(cls, text: str) -> "Recipe":
        """The inverse of :attr:`name` (any order, any subset of the keys): ``flip=mean,distance=cosine``."""
        values: dict = {}
        for item in filter(None, (part.strip() for part in text.split(","))):
            key, _, value = item.partition("=")
            if key not in ("flip", "distance", "subtract_mean") or not value:
                raise ValueError(f"recipe {text!r}: expected key=value items of flip, distance, subtract_mean; "
                                 f"got {item!r}")
            if key == "subtract_mean":
                if value not in ("true", "false"):
                    raise ValueError(f"recipe {text!r}: subtract_mean is true or false, got {value!r}")
                values[key] = value == "true"
            else:
                values[key] = value
        return cls(**values)

    def score(self, plain: tuple[np.ndarray, np.ndarray], mirrored: tuple[np.ndarray, np.ndarray] | None,
              is_same: np.ndarray, folds: np.ndarray | None = None,
              train: tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray] | None, np.ndarray] | None
              = None, far_target: float = DEFAULT_FAR_TARGET) -> VerificationResult:
        """Evaluates the pairs whose images' embeddings are ``plain`` = (a, b) (and ``mirrored``, their mirror
        images'): in ``folds`` (k-fold protocol) or, with ``train`` = (plain, mirrored, is_same) of separate
        training pairs, thresholds (and mean) chosen on those."""
        def joined(p, m):
            return tuple(combine_flip(x, None if m is None else y, self.flip) for x, y in zip(p, m or (None, None)))

        test = joined(plain, mirrored)
        if train is not None:
            train_plain, train_mirrored, train_same = train
            return evaluate_embeddings_with_train_split(joined(train_plain, train_mirrored), train_same, test,
                                                        is_same, self.distance, self.subtract_mean, far_target)
        return evaluate_embeddings(*test, is_same, folds, self.distance, self.subtract_mean, far_target)


#: The scoring recipe selected on LFW View 1 for both registered models (results/lfw_recipes.md): the mirror
#: image's embedding averaged in, cosine distance, the training folds' mean embedding subtracted. The default of
#: experiments/eval_lfw.py.
SELECTED_RECIPE = Recipe(flip="mean", distance="cosine", subtract_mean=True)
