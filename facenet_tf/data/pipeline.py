"""The training input pipeline: identity-balanced batches of decoded, cropped, augmented faces as ``tf.data``.

Flow per step ``i``: ``IdentityBalancedSampler.batch(i)`` picks image indices (pure function of seed and step, so
resuming at step ``i`` replays the same data) -> a thread pool decodes and resizes the images (OpenCV releases the
GIL, so decoding runs in parallel) -> ``tf.data`` prefetches whole batches while the model trains -> random crop
and flip run as vectorised TensorFlow ops on the batch.

An unreadable or corrupt image is skipped: one warning names the file, the count is kept
(``ImageBatchLoader.skipped``), and another image of the same identity (or a random negative) takes its place so
the batch keeps its size.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import logging
import os
from pathlib import Path
from typing import Mapping, Sequence

import cv2
import numpy as np
import tensorflow as tf

from facenet_tf.data.images import ImageReadError, read_image
from facenet_tf.data.sampling import BatchComposition, IdentityBalancedSampler

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True, eq=False)
class ImageIndex:
    """Every training image with its integer identity label; ``names[label]`` is the identity's name."""

    paths: tuple[str, ...]
    labels: np.ndarray
    names: tuple[str, ...]

    @classmethod
    def from_identities(cls, identities: Mapping[str, Sequence[str | os.PathLike]]) -> "ImageIndex":
        if not identities:
            raise ValueError("No identities to train on (the image tree or the split left none).")
        names = tuple(sorted(identities))
        paths, labels = [], []
        for label, name in enumerate(names):
            for path in identities[name]:
                paths.append(str(path))
                labels.append(label)
        return cls(tuple(paths), np.asarray(labels, np.int64), names)

    def __len__(self) -> int:
        return len(self.paths)


def center_crop_box(height: int, width: int, out_h: int, out_w: int, fraction: float) -> tuple[int, int, int, int]:
    """A centred box covering ``fraction`` of the image's shorter side, with the output's aspect ratio:
    ``(top, left, box_h, box_w)``."""
    box_h = min(height, round(min(height, width) * fraction * max(1.0, out_h / out_w)))
    box_w = min(width, round(box_h * out_w / out_h))
    return (height - box_h) // 2, (width - box_w) // 2, box_h, box_w


def load_face(path: str, size: tuple[int, int], crop_fraction: float) -> np.ndarray:
    """Reads an image, takes its centred crop (``crop_fraction`` of the shorter side) and resizes to ``size``."""
    image = read_image(path)
    top, left, box_h, box_w = center_crop_box(*image.shape[:2], *size, crop_fraction)
    crop = image[top:top + box_h, left:left + box_w]
    return cv2.resize(crop, (size[1], size[0]), interpolation=cv2.INTER_AREA)


class ImageBatchLoader:
    """Decodes batches of images in a thread pool; skips (warns once per file, counts) unreadable ones."""

    def __init__(self, index: ImageIndex, size: tuple[int, int], crop_fraction: float = 1.0,
                 num_threads: int | None = None, seed: int = 0):
        if not 0.1 <= crop_fraction <= 1.0:
            raise ValueError(f"crop_fraction must be in [0.1, 1], got {crop_fraction}.")
        self.index = index
        self.size = tuple(size)
        self.crop_fraction = crop_fraction
        self.bad: set[int] = set()
        self.skipped = 0
        self._rng = np.random.default_rng(seed)
        self._pool = concurrent.futures.ThreadPoolExecutor(num_threads or min(8, (os.cpu_count() or 2) * 2))

    def _load(self, i: int) -> np.ndarray | None:
        if i in self.bad:
            return None
        try:
            return load_face(self.index.paths[i], self.size, self.crop_fraction)
        except ImageReadError as error:
            self.bad.add(i)
            self.skipped += 1
            logger.warning("Skipping image: %s", error)
            return None

    def _substitute(self, i: int) -> int:
        """Another image of the same identity if one is usable, else any usable image."""
        labels = self.index.labels
        same = [j for j in np.flatnonzero(labels == labels[i]) if j not in self.bad]
        if same:
            return int(self._rng.choice(same))
        good = np.setdiff1d(np.arange(len(self.index)), list(self.bad))
        if good.size == 0:
            raise RuntimeError("Every image of the training set failed to load.")
        return int(self._rng.choice(good))

    def load(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(uint8 images (B, H, W, 3), int32 labels (B,))`` for image ``indices``."""
        images, labels, _ = self.load_indexed(indices)
        return images, labels

    def load_indexed(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """As ``load``, plus the image indices actually used (unreadable images replaced by substitutes)."""
        indices = np.array(indices, np.int64)
        images = list(self._pool.map(self._load, indices))
        for k, image in enumerate(images):
            while image is None:
                indices[k] = self._substitute(int(indices[k]))
                image = self._load(int(indices[k]))
            images[k] = image
        return np.stack(images), self.index.labels[indices].astype(np.int32), indices


def augment(images: tf.Tensor, seed: tf.Tensor, output_size: tuple[int, int], flip: bool = True) -> tf.Tensor:
    """Random crop of ``output_size`` from each image (uint8 batch) and random horizontal flip; float32 0-255.

    Vectorised over the batch (``tf.image.crop_and_resize`` with per-image boxes), stateless and seeded, so the
    augmentation of a step is reproducible.
    """
    batch = tf.shape(images)[0]
    in_h, in_w = images.shape[1], images.shape[2]
    out_h, out_w = output_size
    offsets = tf.random.stateless_uniform([batch, 2], seed=seed)
    top = offsets[:, 0] * (in_h - out_h) / (in_h - 1)
    left = offsets[:, 1] * (in_w - out_w) / (in_w - 1)
    boxes = tf.stack([top, left, top + (out_h - 1) / (in_h - 1), left + (out_w - 1) / (in_w - 1)], axis=1)
    crops = tf.image.crop_and_resize(tf.cast(images, tf.float32), boxes, tf.range(batch), [out_h, out_w])
    if flip:
        do_flip = tf.random.stateless_uniform([batch, 1, 1, 1], seed=seed + 1) < 0.5
        crops = tf.where(do_flip, tf.reverse(crops, axis=[2]), crops)
    return crops


def training_dataset(index: ImageIndex, input_size: tuple[int, int], composition: BatchComposition,
                     seed: int = 0, start_step: int = 0, crop_fraction: float = 1.0, jitter: float = 0.1,
                     flip: bool = True, prefetch: int = 2, sampler=None) -> tuple[tf.data.Dataset, ImageBatchLoader]:
    """An endless dataset of ``(images float32 (B, H, W, 3) in 0-255, labels int32 (B,))`` from ``start_step``.

    Images are loaded at ``(1 + jitter)`` times ``input_size`` and randomly cropped back to it (``jitter=0``: no
    crop augmentation). Returns the loader too, whose ``skipped`` counts unreadable images. ``sampler``: what gives
    the image indices of each step, anything with ``batch(step)`` and ``batch_size`` (``batch`` may block until the
    indices of that step are known); None: ``IdentityBalancedSampler`` of ``composition``.
    """
    if sampler is None:
        sampler = IdentityBalancedSampler(index.labels, composition, seed)
    out_h, out_w = input_size
    load_size = (round(out_h * (1 + jitter)), round(out_w * (1 + jitter)))
    loader = ImageBatchLoader(index, load_size, crop_fraction, seed=seed)

    def batches():
        step = start_step
        while True:
            images, labels = loader.load(sampler.batch(step))
            yield images, labels, np.int64(step)
            step += 1

    b = sampler.batch_size
    ds = tf.data.Dataset.from_generator(batches, output_signature=(
        tf.TensorSpec((b, *load_size, 3), tf.uint8), tf.TensorSpec((b,), tf.int32), tf.TensorSpec((), tf.int64)))

    def finish(images, labels, step):
        seed_pair = tf.stack([tf.constant(seed, tf.int64), step])
        if jitter or flip:
            images = augment(images, seed_pair, (out_h, out_w), flip)
        else:
            images = tf.cast(images, tf.float32)
        return images, labels

    ds = ds.map(finish, num_parallel_calls=tf.data.AUTOTUNE).prefetch(prefetch)
    return ds, loader


def folder_index(images_dir: str | os.PathLike | Path) -> ImageIndex:
    """The ``ImageIndex`` of an ``<identity>/*.jpg`` tree."""
    from facenet_tf.data.lfw import list_identities

    return ImageIndex.from_identities(list_identities(images_dir))
