"""Reference mean embeddings of registered weights: what "training-fold mean subtraction" needs for single pairs.

On LFW, subtracting the mean embedding of the training folds before the cosine distance is the evaluation recipe
selected on View 1 (``results/lfw_recipes.md``). A single pair of user photos has no training folds, so each
registered model ships a mean measured once on faces that can be in no LFW pair and no photo collection of this
project: the one image of every LFW person who appears in no View 2 pair and has a single image
(``experiments/reference_mean.py`` writes ``reference/<weights>.json``, beside this module, with its command).

The file holds the mean of the plain embeddings and of the flip-averaged embeddings (``flip``), the crop settings
they were measured with, and how many images went in.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from facenet_tf.atomic import write_json_atomically

REFERENCE_DIR = Path(__file__).resolve().parent / "reference"
FORMAT = "facenet_tf.reference_mean/1"


def reference_path(weights: str) -> Path:
    return REFERENCE_DIR / f"{weights}.json"


def read_reference(weights: str | None) -> dict | None:
    """The reference record of registered ``weights`` (None when it has none, or ``weights`` is None)."""
    if weights is None or not reference_path(weights).is_file():
        return None
    path = reference_path(weights)
    try:
        data = json.loads(path.read_text())
        if data.get("format") != FORMAT:
            raise ValueError(f"format {data.get('format')!r}, expected {FORMAT!r}")
        for key in ("mean", "mean_flip"):
            vector = np.asarray(data[key], np.float64)
            if vector.ndim != 1 or not np.all(np.isfinite(vector)):
                raise ValueError(f"{key} is not a finite vector")
            data[key] = vector
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ValueError(f"'{path}': not a reference mean file: {error}") from None
    return data


def reference_mean(weights: str | None, flip: bool = False) -> np.ndarray | None:
    """The mean embedding stored for ``weights`` (of the flip-averaged embeddings with ``flip``), or None."""
    data = read_reference(weights)
    return None if data is None else data["mean_flip" if flip else "mean"]


def write_reference(weights: str, plain: np.ndarray, flipped: np.ndarray, **provenance) -> Path:
    """Writes the means of the (N, d) ``plain`` and flip-averaged embeddings of ``weights`` (atomically)."""
    plain, flipped = np.asarray(plain, np.float64), np.asarray(flipped, np.float64)
    if plain.ndim != 2 or plain.shape != flipped.shape or not len(plain):
        raise ValueError(f"expected two equal (N, d) arrays with N >= 1, got {plain.shape} and {flipped.shape}")
    record = {"format": FORMAT, "weights": weights, "images": len(plain), **provenance,
              "mean": [round(float(v), 7) for v in plain.mean(axis=0)],
              "mean_flip": [round(float(v), 7) for v in flipped.mean(axis=0)]}
    path = reference_path(weights)
    write_json_atomically(path, record)
    return path


def centre(embeddings: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """``embeddings`` (N, d) with ``mean`` subtracted, back on the unit sphere: their squared L2 distances are twice
    the cosine distances of the mean-subtracted embeddings (the LFW recipe's distance, in the paper's units)."""
    x = np.asarray(embeddings, np.float64) - np.asarray(mean, np.float64)
    return (x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)).astype(np.float32)
