"""Thresholds measured on a user's own labelled photos (``facenet-tf calibrate KNOWN/``).

From the embeddings of labelled faces (one label per face, e.g. the person folder of each photo) this module
measures the distance distributions and recommends a squared-L2 threshold for each question a user asks:

* **verify** (two faces, same person?): the largest threshold whose pair false-accept rate, the fraction of
  different-person pairs at distance <= t, is at most ``far``. Its true-accept rate (same-person pairs <= t) is
  reported beside it.
* **identify** (one face against a gallery of many people): a face of someone not in the gallery is falsely
  accepted when *any* gallery face is within the threshold, so the rate that matters is per face, not per pair.
  Measured leave-one-person-out: for every face, the nearest face of another person stands in for the nearest
  gallery face of a stranger. The threshold is the largest with at most ``identify_far`` of the faces falsely
  accepted that way. Reported with it: rank-1 (the nearest other face is the same person) and the fraction of
  faces named correctly and accepted.
* **cluster**: the threshold that maximises the pairwise F1 of agglomerative clustering of the faces
  (``facenet_tf.evaluation.clustering``; complete linkage by default, as the ``cluster`` command), swept on a
  grid.

A target rate below what the data can resolve (``far`` below 1 / number of different-person pairs) still gives a
threshold, the one that accepts no pair, but the result says ``resolved: false`` with the reason: label more
photos for a trustworthy figure.

The result is a JSON-ready dict (:func:`calibrate`), saved and read atomically with one-line errors
(:func:`save_calibration`, :func:`load_calibration`); :func:`plot_distances` draws the two distributions and the
three thresholds. Numpy (and matplotlib for the plot) only.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from facenet_tf.atomic import atomic_file, write_json_atomically
from facenet_tf.evaluation import clustering

#: The format of a calibration file (``"format"``); another value is refused.
FORMAT = "facenet-tf calibration 1"
#: The three questions a calibration answers, each with its ``threshold``.
QUESTIONS = ("verify", "identify", "cluster")
DEFAULT_FAR = 1e-3
DEFAULT_IDENTIFY_FAR = 1e-2
#: The cluster thresholds tried (squared L2 of unit vectors lies in [0, 4]).
CLUSTER_GRID = np.round(np.arange(0.30, 1.801, 0.01), 2)


class CalibrationError(ValueError):
    """A calibration file that cannot be used, or labels that cannot be calibrated; the message names the file."""


def _floor4(value: float) -> float:
    """``value`` rounded down to 4 decimals (a threshold a hair lower never accepts more)."""
    return math.floor(value * 1e4) / 1e4


def threshold_at_rate(negatives: np.ndarray, rate: float) -> float:
    """The largest threshold t (rounded down to 4 decimals) with ``mean(negatives <= t) <= rate``: at most
    ``floor(rate * len(negatives))`` of the negatives are accepted."""
    negatives = np.sort(np.asarray(negatives, np.float64))
    allowed = int(math.floor(rate * len(negatives) + 1e-9))
    if allowed >= len(negatives):
        return 4.0
    t = _floor4(np.nextafter(negatives[allowed], -np.inf))
    while t >= negatives[allowed]:  # rounding must not reach the first rejected negative
        t = round(t - 1e-4, 4)
    return max(t, 0.0)


def pair_distances(embeddings: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(matrix, same, different)``: the full squared-L2 matrix and the distances of every same-person and every
    different-person pair (each unordered pair once)."""
    matrix = clustering.distance_matrix(embeddings)
    upper = np.triu_indices(len(labels), k=1)
    same_mask = labels[upper[0]] == labels[upper[1]]
    values = matrix[upper]
    return matrix, values[same_mask], values[~same_mask]


def calibrate(embeddings: np.ndarray, labels, far: float = DEFAULT_FAR,
              identify_far: float = DEFAULT_IDENTIFY_FAR, model: str | None = None,
              linkage: str = "complete") -> dict[str, Any]:
    """Recommended thresholds for ``embeddings`` (``(N, D)`` unit vectors) labelled ``labels`` (one per face); see
    the module docstring. CalibrationError when there are fewer than two people or no person with two faces.
    The pair distances themselves are left out of the result (:func:`pair_distances` gives them)."""
    labels = np.asarray([str(label) for label in labels])
    embeddings = np.asarray(embeddings, np.float64)
    if len(labels) != len(embeddings):
        raise CalibrationError(f"{len(labels)} labels for {len(embeddings)} faces")
    for name, value in (("far", far), ("identify_far", identify_far)):
        if not (math.isfinite(value) and 0 < value < 1):
            raise CalibrationError(f"{name} must be a rate in (0, 1); got {value}")
    people, counts = np.unique(labels, return_counts=True)
    if len(people) < 2 or counts.max() < 2:
        raise CalibrationError(f"calibration needs at least two people and one with two or more faces; got "
                               f"{len(people)} people with at most {counts.max() if len(counts) else 0} face(s) each")
    matrix, same, different = pair_distances(embeddings, labels)
    warnings = []

    verify_t = threshold_at_rate(different, far)
    if len(different) * far < 1:
        warnings.append(f"verify: {len(different)} different-person pairs cannot resolve a false-accept rate of "
                        f"{far:g} (at least {math.ceil(1 / far)} are needed): the threshold accepts none of them")

    others = np.where(labels[:, None] == labels[None, :], np.inf, matrix)
    nearest_other = others.min(axis=1)
    own = np.where((labels[:, None] == labels[None, :]) & ~np.eye(len(labels), dtype=bool), matrix, np.inf)
    nearest_own = own.min(axis=1)
    has_own = np.isfinite(nearest_own)
    identify_t = threshold_at_rate(nearest_other, identify_far)
    if len(labels) * identify_far < 1:
        warnings.append(f"identify: {len(labels)} faces cannot resolve a false-accept rate of {identify_far:g} (at "
                        f"least {math.ceil(1 / identify_far)} are needed): the threshold accepts none of them")
    rank1 = nearest_own[has_own] < nearest_other[has_own]
    named = rank1 & (nearest_own[has_own] <= identify_t)

    tree = clustering.linkage_tree(distances=matrix, linkage=linkage)
    sweep = clustering.threshold_sweep(tree, labels, CLUSTER_GRID)
    best = max(scores.f1 for _, scores in sweep)
    # the middle of the best plateau: the best F1 is usually reached over a range of thresholds
    plateau = [t for t, scores in sweep if scores.f1 >= best - 1e-12]
    cluster_t = float(plateau[len(plateau) // 2])
    cluster_scores = dict(sweep)[cluster_t]

    return {
        "format": FORMAT,
        "model": model,
        "faces": int(len(labels)),
        "people": int(len(people)),
        "same_pairs": int(len(same)),
        "different_pairs": int(len(different)),
        "verify": {"threshold": verify_t, "far_target": far,
                   "far": float(np.mean(different <= verify_t)),
                   "tar": float(np.mean(same <= verify_t)) if len(same) else None},
        "identify": {"threshold": identify_t, "far_target": identify_far,
                     "far": float(np.mean(nearest_other <= identify_t)),
                     "rank1": float(np.mean(rank1)), "named": float(np.mean(named)),
                     "probes": int(has_own.sum())},
        "cluster": {"threshold": cluster_t, "algorithm": "agglomerative", "linkage": linkage,
                    "f1": cluster_scores.f1, "precision": cluster_scores.precision,
                    "recall": cluster_scores.recall, "groups": cluster_scores.n_clusters},
        "resolved": not warnings,
        "warnings": warnings,
        "quantiles": {kind: {str(q): float(np.quantile(values, q)) for q in (0.0, 0.01, 0.1, 0.5, 0.9, 0.99, 1.0)}
                      for kind, values in (("same", same), ("different", different)) if len(values)},
    }


def save_calibration(path: str | os.PathLike, result: dict[str, Any], overwrite: bool = False) -> Path:
    """Write ``result`` as JSON, atomically; FileExistsError without ``overwrite``."""
    return write_json_atomically(path, result, overwrite=overwrite)


def load_calibration(path: str | os.PathLike) -> dict[str, Any]:
    """A calibration written by :func:`save_calibration`; CalibrationError names the file and what is wrong."""
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise CalibrationError(f"calibration file '{path}' does not exist (write one with 'facenet-tf calibrate')") \
            from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CalibrationError(f"calibration file '{path}' is not a JSON calibration: {error}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CalibrationError(f"calibration file '{path}' is not a facenet-tf calibration (expected "
                               f"\"format\": \"{FORMAT}\")")
    for question in QUESTIONS:
        value = data.get(question, {}).get("threshold") if isinstance(data.get(question), dict) else None
        if not isinstance(value, (int, float)) or not 0 < value < 4:
            raise CalibrationError(f"calibration file '{path}': {question}.threshold must be a number in (0, 4); "
                                   f"got {value!r}")
    return data


def plot_distances(result: dict[str, Any], same: np.ndarray, different: np.ndarray, path: str | os.PathLike) -> Path:
    """A PNG of the same-person and different-person distance histograms with the three thresholds, written
    atomically."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7.2, 4.4), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    bins = np.linspace(0.0, 4.0, 81)
    axes.hist(np.asarray(different, np.float64), bins=bins, density=True, alpha=0.5,
              label=f"different people ({len(different)} pairs)")
    axes.hist(np.asarray(same, np.float64), bins=bins, density=True, alpha=0.5, label=f"same person ({len(same)} pairs)")
    for question, style in zip(QUESTIONS, ("-", "--", ":")):
        threshold = result[question]["threshold"]
        axes.axvline(threshold, color="black", linestyle=style, linewidth=1, label=f"{question} {threshold:.3f}")
    axes.set_xlabel("squared distance of the embeddings")
    axes.set_ylabel("density")
    axes.set_title(f"{result['faces']} faces of {result['people']} people")
    axes.legend(loc="upper right", fontsize="small")
    figure.tight_layout()
    path = Path(path)
    with atomic_file(path) as tmp:
        figure.savefig(tmp, format="png")
    return path
