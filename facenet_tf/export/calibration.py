"""Data an export is calibrated on, chosen so that no LFW evaluation is contaminated.

- The verification threshold stored in an export (``calibrate_threshold``): the best-accuracy threshold on LFW
  View 1 train (``pairsDevTrain.txt``), centre-aligned — the development split, never the View 2 pairs the model
  is reported on.
- The representative images of full-integer TFLite quantisation (``calibration_images``): centre-aligned LFW
  faces of identities that appear in no View 2 pair (``facenet_tf.data.lfw.training_identities``), so the
  activation ranges are not fitted to the evaluation images.
"""

from __future__ import annotations

import dataclasses
import math
import os
from typing import Any

import numpy as np

from facenet_tf import paths
from facenet_tf.evaluation.embed import Embedder

#: The split the threshold is calibrated on by default (``--calibrate_threshold=view1_train``).
THRESHOLD_SPLIT = "view1_train"


@dataclasses.dataclass(frozen=True)
class Threshold:
    """A squared-L2 verification threshold ("same" iff distance <= value) and where it came from.

    ``source`` is ``"given"`` (a number from the user) or ``"calibrated"`` (``split``, ``alignment``,
    ``accuracy`` on the calibration pairs and their number ``n_pairs`` say how).
    """

    value: float
    source: str = "given"
    split: str | None = None
    alignment: str | None = None
    accuracy: float | None = None
    n_pairs: int | None = None
    crop_size: int | None = None

    def __post_init__(self) -> None:
        if not (isinstance(self.value, (int, float)) and math.isfinite(self.value) and 0.0 <= self.value <= 4.0):
            raise ValueError(f"a squared-L2 threshold between unit vectors lies in [0, 4], got {self.value!r}")
        object.__setattr__(self, "value", float(self.value))
        if self.source not in ("given", "calibrated"):
            raise ValueError(f"threshold source must be 'given' or 'calibrated', got {self.source!r}")

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"value": self.value, "distance": "squared L2 between embeddings",
                               "rule": "same person iff distance <= value", "source": self.source}
        if self.source == "calibrated":
            out.update(split=self.split, alignment=self.alignment, crop_size=self.crop_size,
                       rule_of_choice="best accuracy (ties: smallest)", accuracy=self.accuracy, n_pairs=self.n_pairs)
        return out


def calibrate_threshold(embedder: Embedder, split: str = THRESHOLD_SPLIT, alignment: str = "center",
                        root: str | os.PathLike | None = None, subset: int | None = None, batch_size: int = 64,
                        progress: bool = True, crop_size: int | None = None) -> Threshold:
    """The best-accuracy threshold of ``embedder`` on the pairs of ``split`` (default LFW View 1 train) under the
    resolved LFW root ``root`` (``facenet_tf.data.lfw.load_pairs``: a split name needs it).

    The pairs' images are aligned (``alignment``, at the embedder's input size, ``crop_size`` as in
    ``AlignConfig`` — None keeps its default; cached) and embedded once; ``subset`` keeps the first ``subset``
    same and different pairs (quick checks).
    """
    from facenet_tf.align import align_images
    from facenet_tf.data.lfw import load_pairs
    from facenet_tf.evaluation import verification
    from facenet_tf.evaluation.embed import embed
    from facenet_tf.evaluation.lfw import PairArrays

    pairs = PairArrays.from_pairs(load_pairs(split, root), subset)  # a path reads the tree beside it
    files = sorted(set(pairs.paths_a + pairs.paths_b))
    position = {path: i for i, path in enumerate(files)}
    aligned = align_images(files, alignment, tuple(embedder.input_size), crop_size=crop_size, progress=progress)
    embeddings = embed(embedder, aligned.images, batch_size=batch_size, progress=progress)
    distances = verification.squared_l2(embeddings[[position[p] for p in pairs.paths_a]],
                                        embeddings[[position[p] for p in pairs.paths_b]])
    value, accuracy = verification.best_accuracy_threshold(distances, pairs.is_same)
    if not math.isfinite(value):  # degenerate: everything (or nothing) accepted is best; keep a usable number
        value = float(np.clip(value, 0.0, 4.0))
    return Threshold(value=value, source="calibrated", split=split, alignment=alignment, accuracy=accuracy,
                     n_pairs=int(len(pairs.is_same)), crop_size=aligned_crop_size(crop_size))


def aligned_crop_size(crop_size: int | None) -> int:
    """The centre-crop size the alignment actually uses (its default when None)."""
    from facenet_tf.align import AlignConfig

    return AlignConfig().crop_size if crop_size is None else int(crop_size)


@dataclasses.dataclass(frozen=True, eq=False)
class CalibrationImages:
    """Aligned uint8 face crops (N, H, W, 3) and the files they came from."""

    images: np.ndarray
    paths: tuple[str, ...]
    excluded_identities: int

    def __len__(self) -> int:
        return len(self.paths)


def calibration_paths(num_images: int = 200, root: str | os.PathLike | None = None) -> tuple[list[str], int]:
    """``num_images`` LFW image files of identities in no View 2 pair, spread over as many identities as possible
    (deterministic: identities in sorted order, evenly spaced; first their first images, then their second ...)
    under the resolved LFW root ``root`` (None: ``FileNotFoundError``, one line). Returns the files and the number
    of identities excluded."""
    from facenet_tf.data.lfw import load_pairs, training_identities

    if num_images < 1:
        raise ValueError(f"num_images must be >= 1, got {num_images}")
    split = training_identities(paths.lfw_images_dir(root), [load_pairs("view2", root, check_exists=False)])
    if split.n_images < num_images:
        raise ValueError(f"asked for {num_images} calibration images but only {split.n_images} LFW images belong to "
                         "identities outside View 2")
    names = sorted(split.identities)
    chosen: list[str] = []
    rank = 0
    while len(chosen) < num_images:
        candidates = [name for name in names if len(split.identities[name]) > rank]
        needed = num_images - len(chosen)
        step = len(candidates) / min(needed, len(candidates))
        for i in range(min(needed, len(candidates))):
            chosen.append(str(split.identities[candidates[int(i * step)]][rank]))
        rank += 1
    return chosen, len(split.excluded)


def calibration_images(input_size: tuple[int, int], num_images: int = 200, root: str | os.PathLike | None = None,
                       progress: bool = False, crop_size: int | None = None) -> CalibrationImages:
    """Centre-aligned crops at ``input_size`` of ``calibration_paths(num_images, root)`` (cached by the alignment;
    ``root``: the resolved LFW root); ``crop_size`` as in ``AlignConfig`` (None: its default)."""
    from facenet_tf.align import align_images

    files, excluded = calibration_paths(num_images, root)
    aligned = align_images(files, "center", tuple(input_size), crop_size=crop_size, progress=progress)
    return CalibrationImages(aligned.images, tuple(files), excluded)
