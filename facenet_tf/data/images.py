"""Reading images from disk as uint8 RGB arrays, with one clear error per kind of bad file.

OpenCV decodes the bytes (``cv2.imdecode`` on bytes read with ``open()``, so paths with non-ASCII characters work on
every platform). ``IMREAD_COLOR_RGB`` gives 8-bit, 3-channel RGB whatever the file holds: grayscale is repeated
into three channels, an alpha channel is dropped (not composited), 16-bit samples are scaled to 8 bits, and the
EXIF orientation tag of JPEGs is applied, so a photo taken in portrait comes out upright.
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

#: Suffixes of the image formats that :func:`read_image` decodes (OpenCV's readers; compared case-insensitively).
#: A file without one of these is still an image when :func:`image_format` recognises its first bytes.
IMAGE_SUFFIXES: tuple[str, ...] = (".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".bmp", ".dib", ".webp", ".gif",
                                   ".tif", ".tiff", ".pgm", ".ppm", ".pbm", ".pnm", ".pfm", ".jp2", ".hdr", ".pic",
                                   ".sr", ".ras", ".avif")

#: The first bytes ("magic numbers") of each format that OpenCV decodes: (offset, bytes, format).
_MAGIC: tuple[tuple[int, bytes, str], ...] = (
    (0, b"\xff\xd8\xff", "jpeg"), (0, b"\x89PNG\r\n\x1a\n", "png"), (0, b"GIF87a", "gif"), (0, b"GIF89a", "gif"),
    (0, b"BM", "bmp"), (0, b"II*\x00", "tiff"), (0, b"MM\x00*", "tiff"), (8, b"WEBP", "webp"),
    (0, b"\x00\x00\x00\x0cjP  ", "jpeg2000"), (0, b"\xffO\xffQ", "jpeg2000"), (0, b"#?RADIANCE", "hdr"),
    (0, b"#?RGBE", "hdr"), (0, b"\x59\xa6\x6a\x95", "sun raster"), (4, b"ftypavif", "avif"),
)
_PNM = {b"P1", b"P2", b"P3", b"P4", b"P5", b"P6", b"PF", b"Pf"}
#: How many bytes :func:`image_format` looks at.
MAGIC_LENGTH = 16


def image_format(head: bytes) -> str | None:
    """The image format whose signature ``head`` (the first :data:`MAGIC_LENGTH` bytes of a file) starts with, or
    None: how a folder scan tells an image without a known suffix (``IMG_0001``, ``photo.dat``) from other files."""
    for offset, magic, name in _MAGIC:
        if head[offset:offset + len(magic)] == magic and (name != "webp" or head[:4] == b"RIFF"):
            return name
    if head[:2] in _PNM and head[2:3] in (b"\n", b"\r", b" ", b"\t", b"#"):
        rest = head[2:].lstrip()
        if rest[:1] == b"#" or rest[:1].isdigit():  # a comment or the width comes next
            return "pnm"
    return None


def is_image_file(path: str | os.PathLike) -> bool:
    """Whether ``path`` is taken as an image in a folder: an image suffix, or (any other name) the first bytes of an
    image format. A file that cannot be opened counts as an image when its suffix says so (its reader then says
    why it cannot be used) and as not an image otherwise."""
    if os.path.splitext(os.fspath(path))[1].lower() in IMAGE_SUFFIXES:
        return True
    try:
        with open(path, "rb") as handle:
            return image_format(handle.read(MAGIC_LENGTH)) is not None
    except OSError:
        return False


MIN_IMAGE_SIDE = 20
"""Images whose height or width is below this are refused: MTCNN cannot find a face smaller than its 20-pixel
minimum, and a centre crop of a thumbnail that small carries no identity."""


class ImageReadError(ValueError):
    """An image file that is missing, unreadable, not an image, or too small. The message names the file."""

    def __init__(self, path: str | os.PathLike, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"cannot use image '{self.path}': {reason}")


def decode_image(data: bytes, source: str | os.PathLike = "<bytes>", min_side: int = MIN_IMAGE_SIDE) -> np.ndarray:
    """Decode encoded image bytes (JPEG, PNG, BMP, GIF, TIFF, WebP, PGM/PPM, …) to a uint8 RGB ``H×W×3`` array.

    ``source`` only names the data in error messages. Raises :class:`ImageReadError` when the bytes are empty, are
    not an image OpenCV can decode (random bytes, text, a truncated file), or decode to an image whose shorter side
    is below ``min_side`` pixels.
    """
    if len(data) == 0:
        raise ImageReadError(source, "the file is empty")
    image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR_RGB)
    if image is None:
        raise ImageReadError(source, f"not a decodable image ({len(data)} bytes; corrupt, truncated or not an image)")
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:  # pragma: no cover - OpenCV guarantees it
        raise ImageReadError(source, f"decoded to an unexpected array {image.shape} {image.dtype}")
    height, width = image.shape[:2]
    if min(height, width) < min_side:
        raise ImageReadError(
            source, f"the image is {width}×{height} pixels (width×height); at least {min_side}×{min_side} is needed")
    return np.ascontiguousarray(image)


def read_image(path: str | os.PathLike, min_side: int = MIN_IMAGE_SIDE) -> np.ndarray:
    """Read an image file as a uint8 RGB ``H×W×3`` array (see the module docstring for the conversions).

    Raises :class:`ImageReadError` (a ``ValueError``) naming the file when it does not exist, cannot be opened,
    cannot be decoded, or is smaller than ``min_side`` pixels on its shorter side.
    """
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except FileNotFoundError:
        raise ImageReadError(path, "no such file") from None
    except IsADirectoryError:
        raise ImageReadError(path, "it is a directory, not a file") from None
    except OSError as error:
        raise ImageReadError(path, f"the file cannot be read ({error.strerror or error})") from error
    return decode_image(data, source=path, min_side=min_side)
