"""The paper's Table 4 with our models: verification against JPEG quality and image size (paper, "Sensitivity to
Image Quality"), on LFW pairs.

Each condition degrades the images in one of two places:

- ``crop``: the aligned face crop (the model's input, e.g. 160×160) is re-encoded as JPEG at the quality, or
  re-sampled through ``side×side`` pixels (down to that size, then back up to the model's input: the paper's image
  sizes, 40×40 = 1,600 to 256×256 = 65,536 pixels, are the face image before the network's resize);
- ``photo``: the whole photo is degraded first (re-encoded at the quality, or re-sampled so that it holds the
  condition's pixel count, keeping its aspect ratio, and back up to its own size), then detected and aligned as
  usual: users' photos are degraded before detection.

Every condition is scored with the same recipe and protocol as ``facenet_tf.evaluation.lfw`` (thresholds from the
other folds). ``PAPER_TABLE4`` holds the paper's VAL at FAR = 1e-3 of NN1 on its first hold-out split, for the
side-by-side table (their test set and model are not ours: compare shapes, not levels).
"""

from __future__ import annotations

import dataclasses
import math
import os
from typing import Callable, Sequence

import cv2
import numpy as np

from facenet_tf.align import AlignConfig, align_images
from facenet_tf.data.images import read_image
from facenet_tf.evaluation import verification
from facenet_tf.evaluation.embed import Embedder, embed
from facenet_tf.evaluation.lfw import score_pair_sets

JPEG_QUALITIES = (10, 20, 30, 50, 70, 90)
IMAGE_PIXELS = (1600, 6400, 14400, 25600, 65536)
#: Paper, Table 4 (NN1, first split): VAL (%) at FAR = 1e-3.
PAPER_TABLE4 = {"jpeg": dict(zip(JPEG_QUALITIES, (67.3, 81.4, 83.9, 85.5, 86.1, 86.5))),
                "pixels": dict(zip(IMAGE_PIXELS, (37.8, 79.5, 84.5, 85.7, 86.4)))}
KINDS = ("none", "jpeg", "pixels")
PLACES = ("crop", "photo")


@dataclasses.dataclass(frozen=True)
class Condition:
    """``kind`` ``none`` (the images as they are), ``jpeg`` (``level`` = quality 1-100) or ``pixels`` (``level`` =
    pixel count, e.g. 1,600 = 40×40)."""

    kind: str = "none"
    level: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"condition kind must be one of {KINDS}, got {self.kind!r}")
        if self.kind == "none" and self.level is not None:
            raise ValueError("condition 'none' takes no level")
        if self.kind == "jpeg" and not (isinstance(self.level, int) and 1 <= self.level <= 100):
            raise ValueError(f"a JPEG quality is a whole number in 1..100, got {self.level!r}")
        if self.kind == "pixels" and not (isinstance(self.level, int) and self.level >= 16):
            raise ValueError(f"a pixel count is a whole number >= 16, got {self.level!r}")

    @property
    def name(self) -> str:
        return "none" if self.kind == "none" else f"{self.kind}={self.level}"

    @property
    def paper_val(self) -> float | None:
        return PAPER_TABLE4.get(self.kind, {}).get(self.level)


def table4_conditions() -> list[Condition]:
    """The undegraded images, then every JPEG quality and every image size of the paper's Table 4."""
    return ([Condition()] + [Condition("jpeg", q) for q in JPEG_QUALITIES]
            + [Condition("pixels", p) for p in IMAGE_PIXELS])


def jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    """``image`` (uint8 RGB) encoded as JPEG at ``quality`` and decoded again."""
    ok, data = cv2.imencode(".jpg", np.ascontiguousarray(image[:, :, ::-1]), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError(f"JPEG encoding at quality {quality} failed for an image of shape {image.shape}")
    return cv2.imdecode(data, cv2.IMREAD_COLOR)[:, :, ::-1]


def resample(image: np.ndarray, pixels: int) -> np.ndarray:
    """``image`` re-sampled through ``pixels`` pixels: shrunk (area averaging), keeping its aspect ratio, to about
    that many pixels, then enlarged (bilinear) back to its own size; an image already that small or smaller is
    returned unchanged."""
    height, width = image.shape[:2]
    scale = math.sqrt(pixels / (height * width))
    if scale >= 1.0:
        return image
    small = cv2.resize(image, (max(1, round(width * scale)), max(1, round(height * scale))),
                       interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)


def degrade(image: np.ndarray, condition: Condition) -> np.ndarray:
    if condition.kind == "jpeg":
        return jpeg(image, condition.level)
    if condition.kind == "pixels":
        return resample(image, condition.level)
    return image


def align_degraded_photos(paths: Sequence[str], condition: Condition, align: AlignConfig,
                          batch_size: int = 32) -> tuple[np.ndarray, int]:
    """Each photo read, degraded by ``condition`` in memory, and aligned by ``align`` (MTCNN in batches, as
    ``align_images`` does for files); returns the crops and how many fell back to the centre crop."""
    from facenet_tf.align import get_detector
    from facenet_tf.align.pipeline import align_with_faces

    detector = get_detector(align.min_face_size, align.thresholds) if align.uses_detector else None
    crops, fallbacks = [], 0
    for start in range(0, len(paths), batch_size):
        chunk = list(paths[start:start + batch_size])
        images = [degrade(read_image(path), condition) for path in chunk]
        faces = detector.detect_batch(images, batch_size=len(images)) if detector else [None] * len(images)
        for path, image, found in zip(chunk, images, faces):
            crop, info = align_with_faces(image, found, align, path)
            crops.append(crop)
            fallbacks += int(info.fallback)
    return np.stack(crops), fallbacks


def evaluate_robustness(embedder: Embedder, sets, align: AlignConfig, conditions: Sequence[Condition],
                        place: str, recipe: verification.Recipe = verification.Recipe(), far_target: float = 1e-3, progress: bool = False, batch_size: int = 64,
                        cache: bool = True, log: Callable[[str], None] = lambda _: None,
                        done: Sequence[dict] = (), on_row: Callable[[dict], None] = lambda _: None) -> list[dict]:
    """One row per condition: the protocol's accuracy and VAL at ``far_target`` of ``embedder`` on ``sets``
    (``facenet_tf.evaluation.lfw.load_pair_sets``: View 1's two sets or one k-fold set) with the images degraded
    at ``place`` (``crop`` or ``photo``). ``done``: rows of an interrupted run, kept as they are (their conditions
    are not evaluated again); ``on_row`` is called with each new row (e.g. to save progress)."""
    if place not in PLACES:
        raise ValueError(f"place must be one of {PLACES}, got {place!r}")
    images = sorted({p for s in sets for p in s.paths_a + s.paths_b})
    position = {p: i for i, p in enumerate(images)}
    crops = None
    kept = {(r["place"], r["condition"]): r for r in done}
    rows = []
    for condition in conditions:
        if (place, condition.name) in kept:
            rows.append(kept[place, condition.name])
            continue
        if place == "crop" or condition.kind == "none":
            if crops is None:
                crops = align_images(images, config=align, progress=progress, cache=cache)
            aligned, fallbacks = crops.images, crops.fallback_count
            inputs = np.stack([degrade(crop, condition) for crop in aligned])
        else:
            inputs, fallbacks = align_degraded_photos(images, condition, align)
        plain = embed(embedder, inputs, batch_size=batch_size, progress=progress, sources=images)
        mirror = None
        if recipe.flip != "none":
            mirror = embed(embedder, inputs[:, :, ::-1], batch_size=batch_size, progress=progress, sources=images)
        per_set = []
        for s in sets:
            a, b = [position[p] for p in s.paths_a], [position[p] for p in s.paths_b]
            per_set.append(((plain[a], plain[b]), None if mirror is None else (mirror[a], mirror[b])))
        scored = score_pair_sets(recipe, sets, per_set, len(sets) == 2, far_target)
        rows.append({"condition": condition.name, "kind": condition.kind, "level": condition.level, "place": place,
                     "accuracy": scored.accuracy_mean, "accuracy_sem": scored.accuracy_sem,
                     "val": scored.val_mean, "val_std": scored.val_std, "far": scored.far_mean,
                     "fallbacks": fallbacks, "images": len(images), "paper_val": condition.paper_val,
                     "folds": [f.to_dict() for f in scored.folds]})
        on_row(rows[-1])
        log(f"{place} {condition.name}: accuracy {100 * scored.accuracy_mean:.2f}%, VAL@{far_target:g} "
            f"{100 * scored.val_mean:.2f}%, fallbacks {fallbacks}")
    return rows


def format_table4(rows: list[dict]) -> str:
    """Markdown: one line per condition, our VAL and accuracy per place beside the paper's VAL."""
    places = [p for p in PLACES if any(r["place"] == p for r in rows)]
    by = {(r["place"], r["condition"]): r for r in rows}
    names = list(dict.fromkeys(r["condition"] for r in rows))
    head = "| condition | paper VAL (NN1) | " + " | ".join(f"{p}: VAL @ 1e-3 | {p}: accuracy ± SE" for p in places)
    lines = [head + " |", "| --- " * (2 + 2 * len(places)) + "|"]
    for name in names:
        any_row = next(by[(p, name)] for p in places if (p, name) in by)
        paper = "" if any_row["paper_val"] is None else f"{any_row['paper_val']:.1f}%"
        cells = []
        for p in places:
            r = by.get((p, name))
            if r is None:
                cells += ["", ""]
                continue
            sem = "" if not np.isfinite(r["accuracy_sem"]) else f" ± {100 * r['accuracy_sem']:.2f}"
            cells += [f"{100 * r['val']:.2f}%", f"{100 * r['accuracy']:.2f}%{sem}"]
        lines.append(f"| {name} | {paper} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot_table4(rows: list[dict], path: str | os.PathLike, title: str) -> None:
    """Two panels (JPEG quality, image pixels): VAL against the level, one line per place and the paper's."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from facenet_tf.atomic import atomic_file

    figure, axes = plt.subplots(1, 2, figsize=(10, 4))
    for axis, kind, label in ((axes[0], "jpeg", "JPEG quality"), (axes[1], "pixels", "image pixels")):
        for place in PLACES:
            points = sorted((r["level"], 100 * r["val"]) for r in rows if r["kind"] == kind and r["place"] == place)
            if points:
                axis.plot(*zip(*points), marker="o", label=f"ours, degraded {place}")
        paper = sorted(PAPER_TABLE4[kind].items())
        axis.plot(*zip(*paper), marker="s", linestyle="--", label="paper (NN1, its test set)")
        axis.set_xlabel(label)
        axis.set_ylabel("VAL (%) at FAR = 1e-3")
        if kind == "pixels":  # the paper's sizes, named by their side (40×40 ... 256×256)
            levels = [level for level, _ in paper]
            axis.set_xscale("log")
            axis.minorticks_off()
            axis.set_xticks(levels, [f"{round(level ** 0.5)}²" for level in levels])
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    figure.suptitle(title)
    figure.tight_layout()
    with atomic_file(path, suffix=".png") as tmp:
        figure.savefig(tmp, dpi=110)
    plt.close(figure)
