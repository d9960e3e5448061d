"""What the new model sees in harmonic training with ``--harmonic_fit_alignment``: the training images aligned as
evaluation aligns them (``AlignedCropLoader``) and, with ``--harmonic_views``, K fixed augmented views of each
(``view_boxes``, ``crop_views``)."""

from __future__ import annotations

import zlib
from pathlib import Path

import cv2
import numpy as np
import tensorflow as tf

from facenet_tf.align import AlignConfig, align_images
from facenet_tf.data.pipeline import ImageBatchLoader, ImageIndex

VIEW_SCHEME = 1  # bump when view_boxes changes: cached view embeddings are keyed by it


def padded_size(size: tuple[int, int], jitter: float) -> tuple[int, int]:
    """The training pipeline's load size for ``size`` and ``jitter``: crops padded to ``(1 + jitter)`` times."""
    return round(size[0] * (1 + jitter)), round(size[1] * (1 + jitter))


def view_boxes(image_paths, views: int, jitter: float, flip: bool) -> tuple[np.ndarray, np.ndarray]:
    """The fixed augmented views of ``--harmonic_views``: ``(boxes (N, views, 4) float32, mirror (N, views) bool)``.

    A box is ``(y1, x1, y2, x2)`` relative to the image's aligned crop (0 and 1 = its edges; beyond them is the
    reflection padding of ``AlignedCropLoader``), the same for every model's crop of the image whatever its size.
    View 0 is the crop itself; view 1 its mirror when ``flip`` (else drawn like the rest); view k >= 2 a zoom-in by a
    factor drawn in [1 - jitter, 1], its centre shifted by up to ``jitter / 2`` of the crop along each axis, and,
    when ``flip``, mirrored with probability 1/2. Drawn from the image's file name and folder (not its full path)
    and the view's index only, so every run, split and machine gets the same views of an image."""
    n = len(image_paths)
    boxes = np.tile(np.array([0.0, 0.0, 1.0, 1.0], np.float32), (n, views, 1))
    mirror = np.zeros((n, views), bool)
    for i, path in enumerate(image_paths):
        name = "/".join(Path(path).parts[-2:]).encode()
        for k in range(1, views):
            if k == 1 and flip:
                mirror[i, k] = True
                continue
            rng = np.random.default_rng([VIEW_SCHEME, k, zlib.crc32(name)])
            scale = rng.uniform(1.0 - jitter, 1.0)
            dy, dx = rng.uniform(-jitter / 2, jitter / 2, size=2)
            lo, hi = -jitter / 2, 1.0 + jitter / 2  # the padded region
            cy = np.clip(0.5 + dy, lo + scale / 2, hi - scale / 2)
            cx = np.clip(0.5 + dx, lo + scale / 2, hi - scale / 2)
            boxes[i, k] = (cy - scale / 2, cx - scale / 2, cy + scale / 2, cx + scale / 2)
            mirror[i, k] = flip and rng.random() < 0.5
    return boxes, mirror


def crop_views(images, boxes, mirror, size: tuple[int, int]) -> tf.Tensor:
    """Views of crops padded by reflection around their centre (``AlignedCropLoader`` at a larger size): ``images``
    (B, Hp, Wp, 3), ``boxes`` (B, 4) relative to the unpadded ``size`` crop (``view_boxes``), ``mirror`` (B,) ->
    (B, *size, 3) float32, bilinear. The box (0, 0, 1, 1) gives back the crop's pixels (to within 1e-3)."""
    images = tf.convert_to_tensor(images)
    hp, wp = int(images.shape[1]), int(images.shape[2])
    h, w = size
    if hp < h or wp < w:
        raise ValueError(f"crop_views: padded images {(hp, wp)} are smaller than the crops {(h, w)}.")
    top, left = (hp - h) // 2, (wp - w) // 2
    boxes = tf.cast(boxes, tf.float32)
    y = (top + boxes[:, 0::2] * (h - 1)) / max(hp - 1, 1)
    x = (left + boxes[:, 1::2] * (w - 1)) / max(wp - 1, 1)
    normalised = tf.stack([y[:, 0], x[:, 0], y[:, 1], x[:, 1]], axis=1)
    count = tf.shape(images)[0]
    crops = tf.image.crop_and_resize(tf.cast(images, tf.float32), normalised, tf.range(count), [h, w])
    mirror = tf.reshape(tf.cast(mirror, tf.bool), [-1, 1, 1, 1])
    return tf.where(mirror, tf.reverse(crops, axis=[2]), crops)


class AlignedCropLoader(ImageBatchLoader):
    """An ``ImageBatchLoader`` over the images of ``index`` aligned as evaluation aligns them (``facenet_tf.align``
    mode ``mode`` at ``align_size``, default ``size``; read from or written to the crop cache once, then held in
    memory). A larger ``size`` (the training pipeline's ``(1 + jitter)`` load size) pads each crop by reflection
    around its centre instead of resizing it, so the random ``align_size`` crop taken from it later is a shift of
    up to ``jitter / 2`` of the evaluation's framing at the evaluation's scale.
    Unreadable images are skipped (logged by ``align_images``) and replaced like the parent class replaces them."""

    def __init__(self, index: ImageIndex, size: tuple[int, int], mode: str,
                 align_size: tuple[int, int] | None = None, seed: int = 0):
        super().__init__(index, size, 1.0, num_threads=1, seed=seed)
        align = AlignConfig(mode=mode, output_size=tuple(align_size or size))
        result = align_images(index.paths, config=align, progress=False, on_error="skip")
        (h, w), (out_h, out_w) = align.output_size, self.size
        if out_h < h or out_w < w:
            raise ValueError(f"AlignedCropLoader: size {self.size} is smaller than the aligned crops' {(h, w)}.")
        top, left = (out_h - h) // 2, (out_w - w) // 2
        self.crops = np.zeros((len(index), out_h, out_w, 3), np.uint8)
        for row, i in zip(result.images, result.indices):
            self.crops[i] = cv2.copyMakeBorder(row, top, out_h - h - top, left, out_w - w - left,
                                               cv2.BORDER_REFLECT_101)
        self.bad = set(range(len(index))) - {int(i) for i in result.indices}
        self.skipped = len(self.bad)

    def _load(self, i: int) -> np.ndarray | None:
        return None if i in self.bad else self.crops[i]
