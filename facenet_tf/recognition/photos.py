"""Faces in ordinary photos: every face of every photo found (MTCNN), cropped like the LFW "detect" alignment, with
where it came from. The first half of every user command (``facenet-tf embed/verify/cluster/identify``).

Unlike LFW thumbnails, a user's photo can hold any number of faces, at any size, in a picture of many megapixels.
So, per photo:

1. the image is read (unreadable files are skipped and listed, never fatal) and, when its longer side exceeds
   ``max_side``, a downscaled copy is made for the detector only (MTCNN's image pyramid on a 12-megapixel photo is
   slow and finds nothing a 1280-pixel copy misses at useful face sizes);
2. MTCNN finds the faces; those below ``min_confidence`` or smaller than ``min_face_size`` pixels (in the original
   photo) are dropped;
3. each face is cropped from the **original** image with the same margin rule as the LFW ``detect`` alignment
   (``facenet_tf.align.crop_face``), so distances match the verification threshold measured on LFW.

Faces of one photo are numbered left to right (by the left edge of their boxes).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
from tqdm.auto import tqdm

from facenet_tf.align import ImageReadError, crop_face, get_detector, read_image, select_face
from facenet_tf.data.images import is_image_file
from facenet_tf.recognition.outputs import OUTPUT_MANIFEST, is_facenet_output, read_npz, write_npz

#: Which faces of a photo :func:`find_faces` keeps.
FACE_CHOICES = ("all", "largest", "center")

#: Version stored in faces files, checked on load.
FACES_FORMAT = 1


@dataclasses.dataclass(frozen=True)
class PhotoList:
    """What :func:`scan_photos` found: the photo files, and what it passed over with the reason (symbolic-link
    loops, broken links, folders written by an earlier facenet-tf run)."""

    photos: list[Path]
    skipped: list[tuple[str, str]]


def scan_photos(inputs: Sequence[str | os.PathLike]) -> PhotoList:
    """The photo files named by ``inputs``: a file is taken as it is; a folder contributes every file with an image
    suffix (``facenet_tf.data.images.IMAGE_SUFFIXES``: JPEG, PNG, BMP, GIF, TIFF, WebP, PGM/PPM, ..., any case) or,
    whatever its name, the first bytes of one of those formats (``IMG_0001`` without a suffix), below it,
    recursively, sorted, following symbolic links.
    Duplicates are dropped. Passed over, and listed in ``skipped``: symbolic-link loops, broken links, and folders
    that an earlier facenet-tf run wrote (they hold its manifest: their crops and contact sheets are not photos).
    Hidden files and folders (name starting with '.') are passed over silently. FileNotFoundError names an input
    that does not exist."""
    photos: list[Path] = []
    skipped: list[tuple[str, str]] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            photos.extend(_walk(path, skipped))
        elif path.exists():
            photos.append(path)
        else:
            raise FileNotFoundError(f"'{path}' does not exist")
    seen: set[Path] = set()
    unique = []
    for photo in photos:
        if photo not in seen:
            seen.add(photo)
            unique.append(photo)
    return PhotoList(unique, skipped)


def list_photos(inputs: Sequence[str | os.PathLike]) -> list[Path]:
    """The photos of :func:`scan_photos`, without the list of what was passed over."""
    return scan_photos(inputs).photos


def _walk(root: Path, skipped: list[tuple[str, str]]) -> list[Path]:
    """Image files below ``root`` (sorted), following links to folders once: a link back into a folder on the
    current path is a loop, listed in ``skipped``."""
    found: list[Path] = []

    def visit(folder: Path, ancestors: frozenset[tuple[int, int]]) -> None:
        if is_facenet_output(folder):
            skipped.append((str(folder), "written by an earlier facenet-tf run (it holds "
                                         f"{OUTPUT_MANIFEST}), not photos"))
            return
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as error:
            skipped.append((str(folder), f"cannot list the folder: {error.strerror or error}"))
            return
        for entry in entries:
            if entry.name.startswith("."):
                continue
            path = Path(entry.path)
            try:
                if entry.is_dir():  # follows links
                    stat = path.stat()
                    key = (stat.st_dev, stat.st_ino)
                    if key in ancestors:
                        skipped.append((str(path), "symbolic-link loop (a link back to a folder above it)"))
                        continue
                    visit(path, ancestors | {key})
                elif entry.is_file():
                    if is_image_file(path):
                        found.append(path)
                elif entry.is_symlink():
                    skipped.append((str(path), "broken symbolic link"))
            except OSError as error:  # e.g. ELOOP: a link to itself
                skipped.append((str(path), f"symbolic-link loop or unreadable entry ({error.strerror or error})"))

    stat = root.stat()
    visit(root, frozenset({(stat.st_dev, stat.st_ino)}))
    return sorted(found)


@dataclasses.dataclass(frozen=True)
class FaceRecord:
    """One face: the photo it is in, its number in that photo (0 = leftmost), its box (x1, y1, x2, y2) in the
    photo's pixels and MTCNN's confidence."""

    source: str
    face: int
    box: tuple[float, float, float, float]
    confidence: float

    @property
    def label(self) -> str:
        """``photo.jpg#0`` style, for messages and file names."""
        return f"{Path(self.source).name}#{self.face}"


@dataclasses.dataclass(eq=False)
class PhotoFaces:
    """What :func:`find_faces` found.

    Attributes:
        crops: uint8 ``(N, H, W, 3)``, one per face, in photo order then left to right.
        records: one :class:`FaceRecord` per crop.
        photos: every photo that could be read, in input order.
        unreadable: ``(path, reason)`` for each photo that could not be read.
        without_faces: readable photos in which no face was kept.
    """

    crops: np.ndarray
    records: list[FaceRecord]
    photos: list[str]
    unreadable: list[tuple[str, str]]
    without_faces: list[str]

    def __len__(self) -> int:
        return len(self.records)

    def faces_of(self, photo: str | os.PathLike) -> list[int]:
        """Rows of the faces found in ``photo``."""
        key = os.fspath(photo)
        return [row for row, record in enumerate(self.records) if record.source == key]


#: Photos read and run through MTCNN together (MTCNN batches those of one shape).
DETECT_BATCH = 16


def find_faces(
    photos: Sequence[str | os.PathLike],
    output_size: int | Sequence[int] = 160,
    margin: float = 0.3,
    faces: str = "all",
    min_confidence: float = 0.9,
    min_face_size: int = 20,
    max_side: int = 1280,
    detector=None,
    progress: bool = True,
) -> PhotoFaces:
    """Detect, select and crop the faces of ``photos`` (see the module docstring).

    Args:
        output_size: crop size (the model's input size), int or (height, width).
        margin: the box is grown by ``margin`` × the face size (``facenet_tf.align.face_region``); 0.3 is the LFW
            ``detect`` alignment the thresholds were measured with.
        faces: ``"all"`` faces of each photo, or one: the ``"largest"``, or the ``"center"`` one (the most central
            of the faces at least half as large as the largest).
        min_confidence: MTCNN O-Net probability below which a detection is dropped (MTCNN itself keeps >= 0.8).
        min_face_size: smallest face kept, in pixels of the original photo (sqrt of the box area).
        max_side: photos whose longer side exceeds this are downscaled to it for detection only.
        detector: a ``facenet_tf.align.FaceDetector`` (the shared default MTCNN when None).
        progress: show a progress bar.
    """
    if faces not in FACE_CHOICES:
        raise ValueError(f"faces must be one of {FACE_CHOICES}; got {faces!r}")
    if max_side < 20:
        raise ValueError(f"max_side must be at least 20 pixels; got {max_side}")
    detector = detector or get_detector()
    crops: list[np.ndarray] = []
    records: list[FaceRecord] = []
    readable: list[str] = []
    unreadable: list[tuple[str, str]] = []
    without_faces: list[str] = []
    paths = [os.fspath(p) for p in photos]
    with tqdm(total=len(paths), desc="finding faces", unit="photo", disable=not progress, dynamic_ncols=True) as bar:
        for start in range(0, len(paths), DETECT_BATCH):  # MTCNN runs on the photos of a chunk together
            chunk = []
            for photo in paths[start:start + DETECT_BATCH]:
                try:
                    image = read_image(photo)
                except ImageReadError as error:
                    unreadable.append((photo, error.reason))
                    continue
                readable.append(photo)
                chunk.append((photo, image, *_shrink(image, max_side)))
            found = detector.detect_batch([small for _, _, small, _ in chunk], batch_size=len(chunk)) if chunk else []
            for (photo, image, small, scale), detections in zip(chunk, found):
                kept = _kept(detections, image, small, scale, faces, min_confidence, min_face_size)
                if not kept:
                    without_faces.append(photo)
                for number, (box, confidence) in enumerate(kept):
                    crops.append(crop_face(image, box, output_size, margin=margin))
                    records.append(FaceRecord(photo, number, box, confidence))
            bar.update(min(DETECT_BATCH, len(paths) - start))
    height, width = _size(output_size)
    array = np.stack(crops) if crops else np.zeros((0, height, width, 3), np.uint8)
    return PhotoFaces(array, records, readable, unreadable, without_faces)


def _size(output_size: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(output_size, (int, np.integer)):
        return int(output_size), int(output_size)
    height, width = output_size
    return int(height), int(width)


def _shrink(image: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    """The image detection runs on (downscaled so its longer side is at most ``max_side``) and the scale."""
    scale = min(1.0, max_side / max(image.shape[:2]))
    if scale >= 1.0:
        return image, 1.0
    size = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA), scale


def _kept(found, image: np.ndarray, small: np.ndarray, scale: float, which: str, min_confidence: float,
          min_face_size: int) -> list[tuple[tuple[float, float, float, float], float]]:
    """The faces MTCNN ``found`` in ``small`` that are kept, as ``(box in original pixels, confidence)``, left to
    right."""
    found = [face for face in found if face.confidence >= min_confidence and face.size / scale >= min_face_size]
    if not found:
        return []
    if which != "all":
        found = [found[select_face(found, small.shape, which)]]
    height, width = image.shape[:2]
    result = []
    for face in found:
        x1, y1, x2, y2 = (value / scale for value in face.box)
        box = (max(0.0, x1), max(0.0, y1), min(float(width), x2), min(float(height), y2))
        result.append((box, float(face.confidence)))
    return sorted(result, key=lambda item: (item[0][0], item[0][1]))


def _detect(image: np.ndarray, detector, which: str, min_confidence: float, min_face_size: int,
            max_side: int) -> list[tuple[tuple[float, float, float, float], float]]:
    """The kept faces of one image as ``(box in original pixels, confidence)``, left to right."""
    small, scale = _shrink(image, max_side)
    return _kept(detector.detect(small), image, small, scale, which, min_confidence, min_face_size)


def save_faces(path: str | os.PathLike, found: PhotoFaces, embeddings: np.ndarray, model: str,
               overwrite: bool = True) -> Path:
    """Write the embeddings of ``found``'s faces with their source photo, face number, box and confidence to a
    ``.npz`` (numpy arrays only), atomically; ``overwrite=False`` refuses an existing file. Returns the path."""
    embeddings = np.asarray(embeddings, np.float32)
    if len(embeddings) != len(found):
        raise ValueError(f"{len(embeddings)} embeddings for {len(found)} faces")
    records = found.records
    return write_npz(
        path, overwrite=overwrite,
        embeddings=embeddings.reshape(len(records), -1),
        sources=np.array([r.source for r in records], dtype=str),
        faces=np.array([r.face for r in records], dtype=np.int64),
        boxes=np.array([r.box for r in records], dtype=np.float64).reshape(-1, 4),
        confidences=np.array([r.confidence for r in records], dtype=np.float64),
        model=np.array(model),
        format=np.int64(FACES_FORMAT),
    )


def load_faces(path: str | os.PathLike) -> tuple[np.ndarray, list[FaceRecord], str]:
    """``(embeddings, records, model)`` from a file written by :func:`save_faces`; ValueError naming the file if
    it is not one."""
    arrays = read_npz(path, "faces", ("embeddings", "sources", "faces", "boxes", "confidences", "model", "format"))
    if int(arrays["format"]) != FACES_FORMAT:
        raise ValueError(f"'{path}': faces format {int(arrays['format'])}, this version reads {FACES_FORMAT}")
    embeddings = arrays["embeddings"]
    counts = {len(arrays[key]) for key in ("sources", "faces", "boxes", "confidences")}
    if embeddings.ndim != 2 or counts != {len(embeddings)} or arrays["boxes"].shape[1:] != (4,):
        raise ValueError(f"'{path}' is not a valid faces file: embeddings {embeddings.shape} do not match "
                         f"{sorted(counts)} records")
    records = [FaceRecord(str(source), int(face), tuple(float(v) for v in box), float(confidence))
               for source, face, box, confidence in zip(arrays["sources"], arrays["faces"], arrays["boxes"],
                                                        arrays["confidences"])]
    return embeddings, records, str(arrays["model"])
