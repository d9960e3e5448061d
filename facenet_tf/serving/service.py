"""The work behind ``facenet-tf serve``, without HTTP: decode uploads safely, find faces, embed them in batches
shared between concurrent requests, and answer embed / verify / identify / enrol / remove / list against a
:class:`facenet_tf.serving.store.FaceStore`.

Faces are found and cropped exactly as ``facenet_tf.api.FaceNet.find`` does for files (MTCNN through
``facenet_tf.recognition.photos``, the model's crop size and the net's margin and detection settings), and
embedded by the net's own embedder (``facenet_tf.evaluation.embed.embed``), so an uploaded photo gets the same
embedding as the same file given to ``facenet-tf embed``. Two :class:`MicroBatcher` s join concurrent requests:
one for MTCNN (images of one shape are detected in one call), one for the embedding model.

Every method is synchronous (the HTTP layer runs them in worker threads) and raises :class:`ServiceError` (a
message and an HTTP status) for the caller's mistakes.
"""

from __future__ import annotations

import dataclasses
import io
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import cv2
import numpy as np

from facenet_tf.api import UNKNOWN
from facenet_tf.data.images import ImageReadError, decode_image
from facenet_tf.serving.batching import MicroBatcher, Overloaded
from facenet_tf.serving.settings import Batching, Limits
from facenet_tf.serving.store import FaceStore, StoreError, check_name

#: Longer side of the image MTCNN looks at (the default of ``facenet_tf.recognition.find_faces``).
DETECT_MAX_SIDE = 1280
THUMBNAIL_SIDE = 96
#: Face entries per ``list`` answer by default, and at most.
LIST_LIMIT, MAX_LIST_LIMIT = 1000, 10000


class ServiceError(ValueError):
    """A request the service refuses: ``status`` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclasses.dataclass
class Face:
    """One face of an uploaded image."""

    number: int
    box: tuple[float, float, float, float]
    confidence: float
    crop: np.ndarray
    embedding: np.ndarray | None = None

    def as_json(self, embedding: bool = False) -> dict[str, Any]:
        out = {"face": self.number, "box": [round(v, 1) for v in self.box],
               "confidence": round(self.confidence, 4)}
        if embedding and self.embedding is not None:
            out["embedding"] = [round(float(v), 6) for v in self.embedding]
        return out


def image_size_from_header(data: bytes) -> tuple[int, int] | None:
    """``(width, height)`` read from the image's header without decoding it (Pillow reads headers lazily), or None
    when Pillow does not know the format (OpenCV may still decode it; its size is checked after decoding)."""
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - matplotlib depends on Pillow
        return None
    try:
        with Image.open(io.BytesIO(data)) as image:
            return int(image.width), int(image.height)
    except Exception:  # noqa: BLE001 - any format Pillow cannot parse: left to the safe reader
        return None


class _BatchedDetector:
    """A stand-in for ``facenet_tf.align.FaceDetector`` whose ``detect`` goes through the detection batcher."""

    def __init__(self, batcher: MicroBatcher) -> None:
        self.batcher = batcher

    def detect(self, image: np.ndarray):
        return self.batcher([image])[0]


class FaceService:
    """A ``facenet_tf.api.FaceNet`` (model, detector settings, thresholds) serving a gallery store.

    Args:
        net: the loaded ``FaceNet``.
        store: the gallery; a store that holds another model's embeddings is refused (ServiceError).
        verify_threshold, identify_threshold: default to the net's (required: a model without measured
            thresholds needs them given).
    """

    def __init__(self, net, store: FaceStore, verify_threshold: float | None = None,
                 identify_threshold: float | None = None, limits: Limits = Limits(),
                 batching: Batching = Batching()) -> None:
        from facenet_tf.align import get_detector

        self.net, self.store, self.limits, self.batching = net, store, limits.check(), batching
        self.verify_threshold = verify_threshold if verify_threshold is not None else net.threshold
        self.identify_threshold = identify_threshold if identify_threshold is not None else net.identify_threshold
        for name, value in (("verify", self.verify_threshold), ("identify", self.identify_threshold)):
            if value is None or not 0 < value < 4:
                raise ServiceError(f"no {name} threshold for model {net.model_name}: give one in (0, 4) "
                                   "(or a calibration)")
        bound = store.info()["model"]
        if bound is not None and bound != net.model_name:
            raise ServiceError(f"gallery {store.display_uri} holds embeddings of model {bound}, not "
                               f"{net.model_name}; serve that model (--model/--weights, --centre/--no-centre, --flip) "
                               "or use another gallery")
        detector = get_detector()  # what find_faces uses; the net's min_face_size filters after detection
        self.detect_batcher = MicroBatcher(lambda images: detector.detect_batch(images, batch_size=len(images)),
                                           max_batch=batching.detect_batch, max_wait=batching.max_wait,
                                           max_queue=batching.max_queue, name="detection")
        self.embed_batcher = MicroBatcher(
            lambda crops: list(net.embed_crops(np.stack(crops))),
            max_batch=batching.max_batch, max_wait=batching.max_wait, max_queue=batching.max_queue,
            name="embedding")
        self._detector = _BatchedDetector(self.detect_batcher)
        self._pool = ThreadPoolExecutor(limits.max_images, thread_name_prefix="images")
        self._pending = 0
        self.refused = 0
        self._pending_lock = threading.Lock()

    def close(self) -> None:
        self._pool.shutdown()
        self.detect_batcher.close()
        self.embed_batcher.close()

    @property
    def model_name(self) -> str:
        return self.net.model_name

    @contextmanager
    def admitted(self):
        """Counts a request in; Overloaded when ``max_queue`` requests are already in the service."""
        with self._pending_lock:
            if self._pending >= self.batching.max_queue:
                self.refused += 1
                raise Overloaded(f"the server is busy: {self._pending} requests are in progress; try again shortly")
            self._pending += 1
        try:
            yield
        finally:
            with self._pending_lock:
                self._pending -= 1

    # --------------------------------------------------------------------------------------------- images

    def decode(self, data: bytes, label: str) -> np.ndarray:
        """The uint8 RGB image of uploaded bytes, through the same safe reader as the command line; ServiceError
        413 when its dimensions exceed the limits (read from the header before decoding where possible), 400
        when it is not a usable image."""
        size = image_size_from_header(data)
        if size is not None:
            self._check_size(*size, label)
        try:
            image = decode_image(data, source=label)
        except ImageReadError as error:
            raise ServiceError(str(error), 400) from None
        self._check_size(image.shape[1], image.shape[0], label)
        return image

    def _check_size(self, width: int, height: int, label: str) -> None:
        limits = self.limits
        if max(width, height) > limits.max_side or width * height > limits.max_pixels:
            raise ServiceError(f"image '{label}' is {width}×{height} pixels; this server takes at most "
                               f"{limits.max_side} pixels a side and {limits.max_pixels} in all", 413)

    def find(self, image: np.ndarray, which: str = "all") -> list[Face]:
        """The faces of one image (left to right), cropped for the model, not yet embedded."""
        from facenet_tf.align.geometry import crop_face
        from facenet_tf.recognition.photos import _detect

        kept = _detect(image, self._detector, which, self.net.min_confidence, self.net.min_face_size,
                       DETECT_MAX_SIDE)
        return [Face(number, box, confidence, crop_face(image, box, self.net.embedder.input_size,
                                                        margin=self.net.margin))
                for number, (box, confidence) in enumerate(kept)]

    def embed_faces(self, faces: Sequence[Face]) -> None:
        """Fill in the embeddings of ``faces`` through the embedding batcher (one model call shared with other
        requests)."""
        for face, embedding in zip(faces, self.embed_batcher([face.crop for face in faces])):
            face.embedding = np.asarray(embedding, np.float32)

    def faces_of(self, images: Sequence[tuple[str, bytes]], which: str = "all") -> list[tuple[str, list[Face]]]:
        """``(label, faces)`` of each ``(label, bytes)`` upload, embedded."""
        from facenet_tf.recognition import FACE_CHOICES

        if which not in FACE_CHOICES:
            raise ServiceError(f"faces: one of {', '.join(FACE_CHOICES)}; got {which!r}")
        if not images:
            raise ServiceError("no image in the request")
        if len(images) > self.limits.max_images:
            raise ServiceError(f"{len(images)} images in one request; this server takes at most "
                               f"{self.limits.max_images}")
        # the images of one request are decoded and detected side by side, so their MTCNN calls batch together
        found = list(self._pool.map(lambda upload: (upload[0], self.find(self.decode(upload[1], upload[0]), which)),
                                    images))
        self.embed_faces([face for _, faces in found for face in faces])
        return found

    def _main_faces(self, images: Sequence[tuple[str, bytes]]) -> list[Face]:
        """The largest face of each image (found together); 422 naming the first image without one."""
        found = self.faces_of(images, "largest")
        for label, faces in found:
            if not faces:
                raise ServiceError(f"no face found in '{label}'", 422)
        return [faces[0] for _, faces in found]

    # ------------------------------------------------------------------------------------------ questions

    def embed(self, images: Sequence[tuple[str, bytes]], which: str = "all",
              embeddings: bool = True) -> dict[str, Any]:
        found = self.faces_of(images, which)
        return {"model": self.model_name,
                "images": [{"image": label, "faces": [face.as_json(embeddings) for face in faces]}
                           for label, faces in found]}

    def verify(self, a: tuple[str, bytes], b: tuple[str, bytes], threshold: float | None = None,
               embeddings: bool = False) -> dict[str, Any]:
        threshold = self._threshold(threshold, self.verify_threshold)
        face_a, face_b = self._main_faces([a, b])
        distance = float(np.sum((face_a.embedding - face_b.embedding) ** 2))
        return {"same": distance <= threshold, "distance": round(distance, 6), "threshold": threshold,
                "model": self.model_name,
                "faces": [{"image": a[0], **face_a.as_json(embeddings)}, {"image": b[0], **face_b.as_json(embeddings)}]}

    def identify(self, images: Sequence[tuple[str, bytes]], k: int = 1, threshold: float | None = None,
                 embeddings: bool = False) -> dict[str, Any]:
        threshold = self._threshold(threshold, self.identify_threshold)
        if not 1 <= k <= 100:
            raise ServiceError(f"k: between 1 and 100; got {k}")
        found = self.faces_of(images, "all")
        faces = [face for _, image_faces in found for face in image_faces]
        matches = None
        if faces:
            gallery, _ = self.store.gallery()  # one query when the gallery has not changed
            if len(gallery):
                try:
                    matches = gallery.search(np.stack([face.embedding for face in faces]), k=k)
                except ValueError as error:  # a gallery of another dimension
                    raise ServiceError(f"gallery {self.store.display_uri}: {error}", 409) from None
        answers, row = [], 0
        for label, image_faces in found:
            named = []
            for face in image_faces:
                entry = {**face.as_json(embeddings), "name": None, "nearest": None, "distance": None,
                         "threshold": threshold, "candidates": []}
                if matches is not None:
                    candidates = [{"name": str(name), "distance": round(float(distance), 6)}
                                  for name, distance in zip(matches.names[row], matches.distances[row])
                                  if name is not None]
                    best = candidates[0]
                    entry.update(name=best["name"] if best["distance"] <= threshold else None,
                                 nearest=best["name"], distance=best["distance"], candidates=candidates)
                named.append(entry)
                row += 1
            answers.append({"image": label, "faces": named})
        return {"model": self.model_name, "threshold": threshold, "unknown_label": UNKNOWN, "images": answers}

    @staticmethod
    def _threshold(given: float | None, default: float) -> float:
        if given is None:
            return float(default)
        if not 0 < given < 4:
            raise ServiceError(f"threshold: a squared distance of unit vectors, in (0, 4); got {given}")
        return float(given)

    # ---------------------------------------------------------------------------------------------- gallery

    def enrol(self, name: str, images: Sequence[tuple[str, bytes]], embeddings: bool = False) -> dict[str, Any]:
        """Enrol the largest face of each image under ``name``, all in one transaction (an image without a face:
        422, nothing enrolled)."""
        if name == UNKNOWN:
            raise ServiceError(f"name: '{UNKNOWN}' is the label of faces that match no one; choose another name")
        try:
            check_name(name)
        except StoreError as error:
            raise ServiceError(str(error)) from None
        found = self.faces_of(images, "largest")
        missing = [label for label, faces in found if not faces]
        if missing:
            raise ServiceError(f"no face found in {', '.join(repr(label) for label in missing)}; nothing enrolled",
                               422)
        faces = [faces[0] for _, faces in found]
        ids = self.store.enrol(name, np.stack([face.embedding for face in faces]), [label for label, _ in found],
                               [thumbnail(face.crop) for face in faces], model=self.model_name)
        return {"name": name, "enrolled": [{"id": face_id, "image": label, **face.as_json(embeddings)}
                                           for face_id, (label, _), face in zip(ids, found, faces)],
                "faces_of_name": self.store.people().get(name, 0)}

    def remove(self, name: str | None = None, face_id: int | None = None) -> dict[str, Any]:
        try:
            removed = self.store.remove(name=name, face_id=face_id)
        except StoreError as error:
            raise ServiceError(str(error), 404 if "is not in the gallery" in str(error) else 400) from None
        return {"removed": removed, **({"name": name} if name is not None else {"id": face_id})}

    def list(self, name: str | None = None, limit: int = LIST_LIMIT, offset: int = 0) -> dict[str, Any]:
        """The people (face counts) and ``limit`` face entries after the first ``offset`` (of ``name`` only)."""
        if not 1 <= limit <= MAX_LIST_LIMIT or offset < 0:
            raise ServiceError(f"limit: between 1 and {MAX_LIST_LIMIT}, offset >= 0; got {limit}, {offset}")
        info = self.store.info()
        return {"gallery": info["uri"], "model": info["model"], "faces": info["faces"], "people": self.store.people(),
                "limit": limit, "offset": offset,
                "entries": [dataclasses.asdict(entry) for entry in self.store.faces(name, limit, offset)]}

    def thumbnail(self, face_id: int) -> bytes:
        try:
            data = self.store.thumbnail(face_id)
        except StoreError as error:
            raise ServiceError(str(error), 404) from None
        if data is None:
            raise ServiceError(f"face {face_id} has no thumbnail", 404)
        return data

    def stats(self) -> dict[str, Any]:
        return {"embedding": self.embed_batcher.stats(), "detection": self.detect_batcher.stats(),
                "in_progress": self._pending, "refused": self.refused}


def thumbnail(crop: np.ndarray, side: int = THUMBNAIL_SIDE) -> bytes:
    """A small JPEG of a face crop (for the gallery page)."""
    small = cv2.resize(crop, (side, side), interpolation=cv2.INTER_AREA)
    ok, data = cv2.imencode(".jpg", cv2.cvtColor(small, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 85])
    if not ok:  # pragma: no cover - encoding a uint8 RGB array cannot fail
        raise RuntimeError("JPEG encoding of a thumbnail failed")
    return data.tobytes()
