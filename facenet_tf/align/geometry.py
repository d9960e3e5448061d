"""Crop geometry: the fixed centre crop, the face box grown by a margin, and the 5-landmark similarity warp.

Conventions used throughout ``facenet_tf.align``:

* images are uint8 RGB ``H×W×3`` arrays;
* sizes are ``(height, width)``, as in Keras input shapes (NNS2 takes 140×116 = H×W);
* boxes are ``(x1, y1, x2, y2)`` in pixels of the image, ``x`` to the right, ``y`` down, with ``x2``/``y2``
  exclusive for integer crop regions;
* landmarks are a ``5×2`` array of ``(x, y)``: the eye on the image's left, the eye on the image's right, the nose,
  the mouth corner on the image's left, the mouth corner on the image's right (MTCNN's order).
"""

from __future__ import annotations

import math
from typing import Sequence

import cv2
import numpy as np

Size = tuple[int, int]
Box = tuple[float, float, float, float]
IntBox = tuple[int, int, int, int]

ARCFACE_TEMPLATE_112 = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
    dtype=np.float64)
"""Where the five landmarks sit in a 112×112 face crop: the reference of the ArcFace/InsightFace alignment."""


def normalize_size(size: int | Sequence[int]) -> Size:
    """``160`` → ``(160, 160)``; ``(140, 116)`` stays ``(height, width)``. Raises ``ValueError`` on anything else."""
    if isinstance(size, (int, np.integer)) and not isinstance(size, bool):
        height = width = int(size)
    else:
        try:
            height, width = (int(v) for v in size)  # type: ignore[union-attr]
        except (TypeError, ValueError):
            raise ValueError(f"an output size is an int or (height, width); got {size!r}") from None
    if height < 1 or width < 1:
        raise ValueError(f"an output size must be positive; got {size!r}")
    return height, width


def resize(image: np.ndarray, size: Size) -> np.ndarray:
    """Resize to ``(height, width)``: area averaging when shrinking (no aliasing), bilinear when enlarging."""
    height, width = size
    if image.shape[:2] == (height, width):
        return np.ascontiguousarray(image)
    shrinking = height <= image.shape[0] and width <= image.shape[1]
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    return cv2.resize(image, (width, height), interpolation=interpolation)


def crop_region(image: np.ndarray, region: IntBox, size: Size) -> np.ndarray:
    """Cut the integer ``region`` (inside the image) out of ``image`` and resize it to ``size``."""
    x1, y1, x2, y2 = region
    if not (0 <= x1 < x2 <= image.shape[1] and 0 <= y1 < y2 <= image.shape[0]):
        raise ValueError(f"crop region {region} is empty or outside the {image.shape[1]}×{image.shape[0]} image")
    return resize(image[y1:y2, x1:x2], size)


def center_crop_region(image_shape: Sequence[int], output_size: int | Sequence[int], crop_size: int) -> IntBox:
    """The fixed centre crop (the paper's "centre crop of the LFW thumbnail").

    The region has the aspect ratio of ``output_size`` and its longer side is ``crop_size`` pixels (for a square
    output it is a ``crop_size`` square; for NNS2's 140×116 and ``crop_size=160`` it is 160 high and 133 wide), so
    resizing it to the output never distorts. When it does not fit in the image it is scaled down until it does.
    It is centred, rounding toward the top-left when the leftover is odd.
    """
    if crop_size < 1:
        raise ValueError(f"crop_size must be positive; got {crop_size}")
    image_height, image_width = int(image_shape[0]), int(image_shape[1])
    out_height, out_width = normalize_size(output_size)
    if out_height >= out_width:
        height, width = float(crop_size), crop_size * out_width / out_height
    else:
        height, width = crop_size * out_height / out_width, float(crop_size)
    fit = min(1.0, image_height / height, image_width / width)
    height = min(image_height, max(1, round(height * fit)))
    width = min(image_width, max(1, round(width * fit)))
    top = (image_height - height) // 2
    left = (image_width - width) // 2
    return left, top, left + width, top + height


def center_crop(image: np.ndarray, output_size: int | Sequence[int], crop_size: int) -> np.ndarray:
    """Crop :func:`center_crop_region` out of ``image`` and resize it to ``output_size``."""
    size = normalize_size(output_size)
    return crop_region(image, center_crop_region(image.shape, size, crop_size), size)


def face_region(
    box: Sequence[float],
    image_shape: Sequence[int],
    margin: float = 0.3,
    output_size: int | Sequence[int] | None = None,
    keep_aspect: bool = False,
    margin_pixels: float | None = None,
    shift: Sequence[float] = (0.0, 0.0),
) -> IntBox:
    """The integer region to crop for a detected face ``box``: the box grown by a margin, clipped to the image.

    ``margin_pixels``: grow the box by this many image pixels in width and height instead (half per side; ``margin``
    is then ignored): davidsandberg/facenet's ``--margin`` (44 in its align_dataset_mtcnn recipe).

    Margin rule: with ``s = sqrt(box width × box height)`` (the face's size), ``margin × s`` pixels are added to
    both the width and the height, half on each side, so the same number of pixels is added on all four sides.
    ``margin=0.3`` on the 250×250 LFW images, whose MTCNN boxes are about 91×125 pixels (s ≈ 107), adds about 32
    pixels: davidsandberg/facenet's ``--margin 32``, with which its pretrained models were evaluated on LFW. A
    relative margin means the same framing for a face of any resolution.

    With ``keep_aspect`` the grown box is first widened or heightened (never shrunk) around its centre to the aspect
    ratio of ``output_size``, so the resize does not distort; without it (the default, as davidsandberg/facenet
    prepared the data its pretrained model was trained on) the region is resized to the output as it is.
    The region is then clipped to the image; near an edge this shortens the region on that side (the face is then
    off-centre or, without ``keep_aspect``, a little more stretched), as davidsandberg/facenet does.

    ``shift`` = (dx, dy): the box is first moved right by ``dx × s`` and down by ``dy × s`` (test-time crops).
    """
    if margin < 0:
        raise ValueError(f"margin must be >= 0; got {margin}")
    x1, y1, x2, y2 = (float(v) for v in box)
    if not (x2 > x1 and y2 > y1):
        raise ValueError(f"a box is (x1, y1, x2, y2) with x2 > x1 and y2 > y1; got {tuple(box)}")
    image_height, image_width = int(image_shape[0]), int(image_shape[1])
    size = math.sqrt((x2 - x1) * (y2 - y1))
    dx, dy = (float(v) * size for v in shift)
    x1, y1, x2, y2 = x1 + dx, y1 + dy, x2 + dx, y2 + dy
    pad = margin * size / 2 if margin_pixels is None else float(margin_pixels) / 2
    x1, y1, x2, y2 = x1 - pad, y1 - pad, x2 + pad, y2 + pad
    if keep_aspect:
        if output_size is None:
            raise ValueError("keep_aspect needs the output_size whose aspect ratio the region should take")
        out_height, out_width = normalize_size(output_size)
        width, height = x2 - x1, y2 - y1
        target = out_width / out_height
        if width / height < target:
            grow = (height * target - width) / 2
            x1, x2 = x1 - grow, x2 + grow
        else:
            grow = (width / target - height) / 2
            y1, y2 = y1 - grow, y2 + grow
    left, top = max(0, math.floor(x1)), max(0, math.floor(y1))
    right, bottom = min(image_width, math.ceil(x2)), min(image_height, math.ceil(y2))
    if right <= left or bottom <= top:
        raise ValueError(f"box {tuple(box)} does not overlap the {image_width}×{image_height} image")
    return left, top, right, bottom


def crop_face(
    image: np.ndarray,
    box: Sequence[float],
    output_size: int | Sequence[int],
    margin: float = 0.3,
    keep_aspect: bool = False,
) -> np.ndarray:
    """Crop the face ``box`` (x1, y1, x2, y2) grown by ``margin`` (see :func:`face_region`) and resize it to
    ``output_size`` (int or (height, width)). Returns a uint8 ``H×W×3`` array."""
    size = normalize_size(output_size)
    region = face_region(box, image.shape, margin=margin, output_size=size, keep_aspect=keep_aspect)
    return crop_region(image, region, size)


def similarity_transform(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """The least-squares similarity (rotation, uniform scale, translation; no reflection) taking ``source``
    points to ``target`` points (Umeyama 1991). Returns the 2×3 matrix ``M`` with ``target ≈ M @ [x, y, 1]``."""
    source = np.asarray(source, dtype=np.float64)
    target = np.asarray(target, dtype=np.float64)
    if source.shape != target.shape or source.ndim != 2 or source.shape[1] != 2 or len(source) < 2:
        raise ValueError(f"need two equal N×2 point sets, N >= 2; got {source.shape} and {target.shape}")
    source_mean, target_mean = source.mean(axis=0), target.mean(axis=0)
    source_centered, target_centered = source - source_mean, target - target_mean
    covariance = target_centered.T @ source_centered / len(source)
    u, singular, vt = np.linalg.svd(covariance)
    reflection = np.diag([1.0, -1.0 if np.linalg.det(u) * np.linalg.det(vt) < 0 else 1.0])
    rotation = u @ reflection @ vt
    source_variance = (source_centered ** 2).sum() / len(source)
    if source_variance == 0:
        raise ValueError("the source points all coincide; no similarity transform is defined")
    scale = np.trace(np.diag(singular) @ reflection) / source_variance
    translation = target_mean - scale * rotation @ source_mean
    return np.hstack([scale * rotation, translation[:, None]])


def landmark_template(output_size: int | Sequence[int], margin: float = 0.0) -> np.ndarray:
    """Where the five landmarks should land in an ``output_size`` crop: the ArcFace 112×112 reference, scaled to
    the shorter side of the output, centred, and shrunk toward the centre by ``1 / (1 + margin)`` (``margin=0`` is
    the ArcFace framing; larger margins show more of the head)."""
    if margin < 0:
        raise ValueError(f"margin must be >= 0; got {margin}")
    height, width = normalize_size(output_size)
    scale = min(height, width) / 112.0 / (1.0 + margin)
    return (ARCFACE_TEMPLATE_112 - 56.0) * scale + np.array([width / 2.0, height / 2.0])


def align_by_landmarks(
    image: np.ndarray, landmarks: np.ndarray, output_size: int | Sequence[int], margin: float = 0.0
) -> np.ndarray:
    """Warp ``image`` with the similarity transform that takes the 5 ``landmarks`` onto :func:`landmark_template`:
    the eyes come out level and at a fixed distance. Pixels from outside the image are black."""
    size = normalize_size(output_size)
    matrix = similarity_transform(np.asarray(landmarks, dtype=np.float64).reshape(5, 2),
                                  landmark_template(size, margin))
    return cv2.warpAffine(image, matrix, (size[1], size[0]), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))
