"""Aligning face images for the model: the paper's two evaluation modes, plus a landmark warp, with a disk cache.

The paper (section "Evaluation", LFW) reports two ways to feed LFW to the network:

* ``"center"``: a fixed centre crop of the LFW thumbnail (98.87%);
* ``"detect"``: a face detector and alignment, falling back to the centre crop where detection fails (it failed
  twice in the paper; 99.63%). Here the detector is MTCNN; the crop is the chosen face's box grown by a margin.

and ``"landmarks"`` adds a similarity warp on MTCNN's five landmarks (eyes level, fixed eye distance), the
alignment most later face recognisers use. Every image yields an :class:`AlignInfo` saying what was done, so the
fallbacks can be counted and reported as the paper does.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from typing import Any, Callable, Iterator, Sequence

import numpy as np
from tqdm.auto import tqdm

from facenet_tf.align.cache import NpzStore, image_key
from facenet_tf.align.detector import SELECTIONS, Face, FaceDetector, get_detector, mtcnn_settings, select_face
from facenet_tf.align.geometry import (IntBox, Size, align_by_landmarks, center_crop_region, crop_region,
                                       face_region, normalize_size)
from facenet_tf.data.images import ImageReadError, read_image

MODES = ("center", "detect", "landmarks")
ON_ERROR = ("raise", "skip")

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class AlignConfig:
    """Every setting of the alignment, validated once. ``None`` is never stored: pass overrides to
    :func:`make_config` and the rest keep these defaults.

    Attributes:
        mode: ``"center"``, ``"detect"`` or ``"landmarks"`` (see the module docstring).
        output_size: (height, width) of the crops; an int means a square.
        crop_size: longer side, in image pixels, of the centre crop (``"center"`` mode and the fallback of the
            others). 160 on the 250×250 LFW thumbnails frames about what ``"detect"`` with the default margin does
            (MTCNN box ≈ 91×125 px + 32 px ≈ 123×157 px around the centre).
        margin: ``"detect"``: fraction of the face size sqrt(w·h) added to the box's width and height (half per
            side; 0.3 ≈ davidsandberg's ``--margin 32`` on LFW). ``"landmarks"``: the ArcFace framing is shrunk by
            1/(1 + margin) (0 = ArcFace's tight crop).
        keep_aspect: ``"detect"``: widen/heighten the region to the output's aspect ratio instead of stretching.
        margin_pixels: ``"detect"``: a margin in image pixels (width and height, half per side) instead of
            ``margin``; davidsandberg/facenet's recipe is 44.
        shift: ``"detect"``: (dx, dy), the detected box moved by these fractions of the face size before the
            margin (test-time crops; ``facenet_tf.evaluation.lfw.TEST_TIME_CROPS``).
        prepared_size: ``"detect"``: resize the region to this square side first, then keep its centre
            ``output_size`` (davidsandberg/facenet aligns to 182 and evaluates the centre 160). None: resize the
            region straight to ``output_size``.
        selection: which face to keep when there are several: ``"center"`` or ``"largest"`` (see
            :func:`facenet_tf.align.select_face`).
        min_relative_size: for ``selection="center"``: faces smaller than this fraction of the largest one are not
            candidates.
        min_face_size: MTCNN's smallest face, in pixels.
        thresholds: MTCNN's P-Net, R-Net, O-Net score thresholds.
    """

    mode: str = "detect"
    output_size: Size = (160, 160)
    crop_size: int = 160
    margin: float = 0.3
    keep_aspect: bool = False
    margin_pixels: float | None = None
    prepared_size: int | None = None
    shift: tuple[float, float] = (0.0, 0.0)
    selection: str = "center"
    min_relative_size: float = 0.5
    min_face_size: int = 20
    thresholds: tuple[float, float, float] = (0.6, 0.7, 0.8)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"unknown alignment mode {self.mode!r}; choose one of {MODES}")
        object.__setattr__(self, "output_size", normalize_size(self.output_size))
        object.__setattr__(self, "thresholds", tuple(float(t) for t in self.thresholds))
        if not isinstance(self.crop_size, (int, np.integer)) or isinstance(self.crop_size, bool) or self.crop_size < 1:
            raise ValueError(f"crop_size must be a positive whole number of pixels; got {self.crop_size!r}")
        object.__setattr__(self, "crop_size", int(self.crop_size))
        if not self.margin >= 0:
            raise ValueError(f"margin must be >= 0 (a fraction of the face size); got {self.margin!r}")
        object.__setattr__(self, "margin", float(self.margin))
        if self.margin_pixels is not None:
            if not self.margin_pixels >= 0:
                raise ValueError(f"margin_pixels must be >= 0; got {self.margin_pixels!r}")
            object.__setattr__(self, "margin_pixels", float(self.margin_pixels))
        if self.prepared_size is not None:
            if int(self.prepared_size) < max(self.output_size):
                raise ValueError(f"prepared_size ({self.prepared_size}) must be at least the output size "
                                 f"{self.output_size}: the output is its centre")
            object.__setattr__(self, "prepared_size", int(self.prepared_size))
        shift = tuple(float(v) for v in self.shift)
        if len(shift) != 2 or not all(abs(v) <= 0.5 for v in shift):
            raise ValueError(f"shift is (dx, dy), each a fraction of the face size in [-0.5, 0.5]; got {self.shift!r}")
        object.__setattr__(self, "shift", shift)
        if self.selection not in SELECTIONS:
            raise ValueError(f"unknown face selection {self.selection!r}; choose one of {SELECTIONS}")
        if not 0.0 <= self.min_relative_size <= 1.0:
            raise ValueError(f"min_relative_size must be in [0, 1]; got {self.min_relative_size!r}")
        if self.min_face_size < 12:
            raise ValueError(f"min_face_size must be >= 12 pixels; got {self.min_face_size!r}")
        if len(self.thresholds) != 3 or not all(0.0 < t < 1.0 for t in self.thresholds):
            raise ValueError(f"thresholds are three probabilities (P-Net, R-Net, O-Net); got {self.thresholds!r}")

    @property
    def uses_detector(self) -> bool:
        return self.mode != "center"

    @property
    def cache_name(self) -> str:
        """A readable prefix for the cache folder, e.g. ``detect-160x160``."""
        return f"{self.mode}-{self.output_size[0]}x{self.output_size[1]}"

    def cache_settings(self, detector_settings: dict[str, Any] | None = None) -> dict[str, Any]:
        """The settings that change the crops (those that do not, e.g. the margin in ``"center"`` mode, are left
        out so changing them does not invalidate the cache). ``detector_settings`` defaults to MTCNN's."""
        settings: dict[str, Any] = {"mode": self.mode, "output_size": list(self.output_size),
                                    "crop_size": self.crop_size}
        if self.uses_detector:
            settings.update(margin=self.margin, selection=self.selection, min_relative_size=self.min_relative_size,
                            detector=detector_settings or mtcnn_settings(self.min_face_size, self.thresholds))
        if self.mode == "detect":
            settings["keep_aspect"] = self.keep_aspect
            for key in ("margin_pixels", "prepared_size"):  # only when set: the keys of earlier crops stay valid
                if getattr(self, key) is not None:
                    settings[key] = getattr(self, key)
            if any(self.shift):
                settings["shift"] = list(self.shift)
        return settings


def make_config(config: AlignConfig | None = None, **overrides: Any) -> AlignConfig:
    """``config`` (or the defaults) with the overrides that are not None applied. An override that is not an
    :class:`AlignConfig` field raises a ``TypeError`` listing the fields."""
    fields = [field.name for field in dataclasses.fields(AlignConfig)]
    unknown = sorted(set(overrides) - set(fields))
    if unknown:
        raise TypeError(f"unknown alignment settings {unknown}; the settings are {fields}")
    overrides = {name: value for name, value in overrides.items() if value is not None}
    if config is None:
        return AlignConfig(**overrides)
    return dataclasses.replace(config, **overrides) if overrides else config


@dataclasses.dataclass(frozen=True)
class AlignInfo:
    """What was done to one image.

    Attributes:
        path: the image file as given (None for an in-memory image).
        mode: the mode asked for.
        method: what produced the crop: ``"center"``, ``"detect"`` or ``"landmarks"``.
        fallback: True when a face was looked for and none found, so the centre crop was used.
        image_size: (height, width) of the source image.
        crop_box: the integer region (x1, y1, x2, y2) cut out and resized; None for the ``"landmarks"`` warp.
        box: the chosen face's box (x1, y1, x2, y2), sub-pixel; None without a face.
        confidence: MTCNN's score for the chosen face.
        landmarks: the chosen face's 5 (x, y) landmarks.
        num_faces: how many faces MTCNN found (None in ``"center"`` mode, where it does not run).
        from_cache: True when the crop came from the disk cache.
    """

    path: str | None
    mode: str
    method: str
    fallback: bool
    image_size: tuple[int, int]
    crop_box: tuple[int, int, int, int] | None = None
    box: tuple[float, float, float, float] | None = None
    confidence: float | None = None
    landmarks: tuple[tuple[float, float], ...] | None = None
    num_faces: int | None = None
    from_cache: bool = False

    def to_json(self) -> str:
        """JSON of every field except ``from_cache``."""
        fields = dataclasses.asdict(self)
        del fields["from_cache"]
        return json.dumps(fields)

    @classmethod
    def from_json(cls, text: str, **changes: Any) -> "AlignInfo":
        """Inverse of :meth:`to_json` (lists back to tuples), with ``changes`` applied."""
        fields = json.loads(text)

        def as_tuple(value: Any) -> Any:
            return tuple(as_tuple(v) for v in value) if isinstance(value, list) else value

        fields = {name: as_tuple(value) for name, value in fields.items()}
        fields.update(changes)
        return cls(**fields)


@dataclasses.dataclass
class AlignResult:
    """The crops and what was done to each image. Unpacks as ``images, infos = align_images(...)``.

    Attributes:
        images: uint8 ``N×H×W×3``, one row per aligned image, in input order (skipped images have no row).
        infos: one :class:`AlignInfo` per row of ``images``.
        indices: for each row, the position of its image in the input list.
        skipped: (path, reason) for each image left out with ``on_error="skip"``.
        cache_hits: how many crops came from the disk cache.
        detected: how many images went through the detector in this call.
    """

    images: np.ndarray
    infos: list[AlignInfo]
    indices: np.ndarray
    skipped: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    cache_hits: int = 0
    detected: int = 0

    def __iter__(self) -> Iterator[Any]:
        yield self.images
        yield self.infos

    @property
    def fallbacks(self) -> list[str | None]:
        """The images where no face was found and the centre crop was used."""
        return [info.path for info in self.infos if info.fallback]

    @property
    def fallback_count(self) -> int:
        return sum(info.fallback for info in self.infos)

    def summary(self) -> str:
        """One line: how many images, by which method, fallbacks, skipped, cached."""
        methods: dict[str, int] = {}
        for info in self.infos:
            methods[info.method] = methods.get(info.method, 0) + 1
        by_method = ", ".join(f"{count} {method}" for method, count in sorted(methods.items())) or "none"
        return (f"aligned {len(self.infos)} images ({by_method}); {self.fallback_count} centre-crop fallbacks; "
                f"{len(self.skipped)} skipped; {self.cache_hits} from cache; {self.detected} run through MTCNN")


def align_with_faces(image: np.ndarray, faces: Sequence[Face] | None, config: AlignConfig,
                     path: str | None = None) -> tuple[np.ndarray, AlignInfo]:
    """Align one image given its detections (ignored, and may be None, in ``"center"`` mode)."""
    size = config.output_size
    image_size = (int(image.shape[0]), int(image.shape[1]))
    common = dict(path=path, mode=config.mode, image_size=image_size)
    index = None
    if config.uses_detector:
        faces = list(faces or [])
        index = select_face(faces, image.shape, config.selection, config.min_relative_size)
    if index is None:
        region = center_crop_region(image.shape, size, config.crop_size)
        info = AlignInfo(method="center", fallback=config.uses_detector, crop_box=region,
                         num_faces=0 if config.uses_detector else None, **common)
        return crop_region(image, region, size), info
    face = faces[index]
    details = dict(box=tuple(face.box), confidence=float(face.confidence), num_faces=len(faces),
                   landmarks=tuple((float(x), float(y)) for x, y in face.landmarks), **common)
    if config.mode == "landmarks":
        crop = align_by_landmarks(image, face.landmarks, size, config.margin)
        return crop, AlignInfo(method="landmarks", fallback=False, crop_box=None, **details)
    region: IntBox = face_region(face.box, image.shape, config.margin, size, config.keep_aspect,
                                 config.margin_pixels, config.shift)
    if config.prepared_size is None:
        crop = crop_region(image, region, size)
    else:  # resized to prepared_size², then its centre output_size (as davidsandberg/facenet's facenet.crop)
        prepared = crop_region(image, region, (config.prepared_size, config.prepared_size))
        top, left = (config.prepared_size - size[0]) // 2, (config.prepared_size - size[1]) // 2
        crop = np.ascontiguousarray(prepared[top:top + size[0], left:left + size[1]])
    return crop, AlignInfo(method="detect", fallback=False, crop_box=region, **details)


def align_image(
    image: np.ndarray | str | os.PathLike,
    mode: str | None = None,
    output_size: int | Sequence[int] | None = None,
    *,
    config: AlignConfig | None = None,
    detector: FaceDetector | None = None,
    **settings: Any,
) -> tuple[np.ndarray, AlignInfo]:
    """Align one image (uint8 RGB array or file path); no cache.

    ``settings`` are other :class:`AlignConfig` fields (``crop_size``, ``margin``, ``keep_aspect``, ``selection``,
    ``min_relative_size``, ``min_face_size``, ``thresholds``); those left out or None keep ``config``'s (or the
    defaults). Returns the ``H×W×3`` uint8 crop and its :class:`AlignInfo`.
    """
    config = make_config(config, mode=mode, output_size=output_size, **settings)
    path = None
    if not isinstance(image, np.ndarray):
        path = os.fspath(image)
        image = read_image(path)
    faces = None
    if config.uses_detector:
        detector = detector or get_detector(config.min_face_size, config.thresholds)
        faces = detector.detect(image)
    return align_with_faces(image, faces, config, path)


def align_images(
    paths: Sequence[str | os.PathLike],
    mode: str | None = None,
    output_size: int | Sequence[int] | None = None,
    *,
    config: AlignConfig | None = None,
    cache: bool = True,
    cache_root: str | os.PathLike | None = None,
    progress: bool = True,
    on_error: str = "raise",
    batch_size: int = 32,
    detector: FaceDetector | None = None,
    **settings: Any,
) -> AlignResult:
    """Align many image files, e.g. all of LFW (a one-time job: the crops are cached on disk).

    Args:
        paths: image files.
        mode, output_size, settings: :class:`AlignConfig` fields (``settings``: ``crop_size``, ``margin``,
            ``keep_aspect``, ``selection``, ``min_relative_size``, ``min_face_size``, ``thresholds``); those left
            out or None keep ``config``'s (or the defaults: ``"detect"``, 160×160).
        cache: read and write the crop cache (and, for the detector modes, the detection cache, so a later run
            with another margin or output size does not detect again) under ``cache_root``
            (``facenet_tf.paths.cache_dir()`` when None).
        progress: show a tqdm progress bar.
        on_error: what to do with an image that cannot be read (:class:`ImageReadError`): ``"raise"`` (right for
            evaluation, where a missing image would silently change the protocol) or ``"skip"`` (the image gets no
            row; it is listed in ``skipped`` and logged).
        batch_size: images per MTCNN call (same-size images are batched; ~4× faster than one at a time).
        detector: a :class:`FaceDetector` (or any object with ``detect_batch`` and ``settings``); the shared
            MTCNN for the configured settings when None, built only if some image is not cached.

    Returns:
        An :class:`AlignResult`; ``images, infos = result`` gives the ``N×H×W×3`` uint8 crops and their infos.
    """
    config = make_config(config, mode=mode, output_size=output_size, **settings)
    if on_error not in ON_ERROR:
        raise ValueError(f"on_error must be one of {ON_ERROR}; got {on_error!r}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1; got {batch_size}")
    paths = [os.fspath(path) for path in paths]
    detector_settings = None
    if config.uses_detector:
        detector_settings = (detector.settings if detector is not None
                             else mtcnn_settings(config.min_face_size, config.thresholds))
    crop_store = detection_store = None
    if cache:
        crop_store = NpzStore("crops", config.cache_name, config.cache_settings(detector_settings), cache_root)
        if config.uses_detector:
            name = str(detector_settings.get("detector", "detector"))
            detection_store = NpzStore("detections", name, detector_settings, cache_root)

    def lazy_detector() -> FaceDetector:
        nonlocal detector
        if detector is None:
            detector = get_detector(config.min_face_size, config.thresholds)
        return detector

    run = _Run(config, paths, crop_store, detection_store, lazy_detector, on_error, batch_size)
    with tqdm(total=len(paths), desc=f"align {config.mode}", unit="img", disable=not progress,
              dynamic_ncols=True) as bar:
        for start in range(0, len(paths), batch_size):
            stop = min(len(paths), start + batch_size)
            run.align_chunk(range(start, stop))
            bar.update(stop - start)
            bar.set_postfix(fallbacks=run.fallbacks, cached=run.cache_hits, skipped=len(run.skipped), refresh=False)
    result = run.result()
    logger.info("%s", result.summary())
    if result.fallback_count:
        logger.info("centre-crop fallbacks (no face found): %s", result.fallbacks[:20])
    return result


class _Run:
    """The state of one :func:`align_images` call."""

    def __init__(self, config: AlignConfig, paths: list[str], crop_store: NpzStore | None,
                 detection_store: NpzStore | None, detector: Callable[[], FaceDetector], on_error: str,
                 batch_size: int) -> None:
        self.config = config
        self.paths = paths
        self.crop_store = crop_store
        self.detection_store = detection_store
        self.detector = detector
        self.on_error = on_error
        self.batch_size = batch_size
        self.images = np.empty((len(paths), *config.output_size, 3), dtype=np.uint8)
        self.infos: list[AlignInfo | None] = [None] * len(paths)
        self.skipped: list[tuple[int, str, str]] = []
        self.cache_hits = 0
        self.fallbacks = 0
        self.detected = 0

    def align_chunk(self, indices: range) -> None:
        pending: list[tuple[int, str | None, np.ndarray]] = []
        for index in indices:
            path = self.paths[index]
            key = None
            if self.crop_store is not None:
                try:
                    key = image_key(path)
                except OSError:
                    key = None  # read_image below says what is wrong with the file
                if key is not None and self._load_crop(index, key):
                    continue
            try:
                image = read_image(path)
            except ImageReadError as error:
                if self.on_error == "raise":
                    raise
                logger.warning("skipping %s", error)
                self.skipped.append((index, path, str(error)))
                continue
            pending.append((index, key, image))
        faces = self._detect(pending) if self.config.uses_detector else {}
        for index, key, image in pending:
            crop, info = align_with_faces(image, faces.get(index), self.config, self.paths[index])
            self._store(index, crop, info)
            if self.crop_store is not None and key is not None:
                self.crop_store.save(key, crop=crop, info=np.array(info.to_json()))

    def _store(self, index: int, crop: np.ndarray, info: AlignInfo) -> None:
        self.images[index] = crop
        self.infos[index] = info
        self.fallbacks += info.fallback

    def _load_crop(self, index: int, key: str) -> bool:
        assert self.crop_store is not None
        entry = self.crop_store.load(key)
        if entry is None:
            return False
        try:
            crop = entry["crop"]
            if crop.dtype != np.uint8 or crop.shape != (*self.config.output_size, 3):
                raise ValueError(f"stored crop is {crop.shape} {crop.dtype}")
            info = AlignInfo.from_json(str(entry["info"]), path=self.paths[index], from_cache=True)
        except (KeyError, ValueError, TypeError) as error:
            self.crop_store.report_bad(key, error)
            return False
        self._store(index, crop, info)
        self.cache_hits += 1
        return True

    def _detect(self, pending: list[tuple[int, str | None, np.ndarray]]) -> dict[int, list[Face]]:
        faces: dict[int, list[Face]] = {}
        to_detect = []
        for index, key, image in pending:
            cached = self._load_detections(key) if key is not None else None
            if cached is None:
                to_detect.append((index, key, image))
            else:
                faces[index] = cached
        if to_detect:
            detections = self.detector().detect_batch([image for _, _, image in to_detect],
                                                      batch_size=self.batch_size)
            self.detected += len(to_detect)
            for (index, key, _), found in zip(to_detect, detections):
                faces[index] = found
                if self.detection_store is not None and key is not None:
                    self.detection_store.save(key, **faces_to_arrays(found))
        return faces

    def _load_detections(self, key: str) -> list[Face] | None:
        if self.detection_store is None:
            return None
        entry = self.detection_store.load(key)
        if entry is None:
            return None
        try:
            return faces_from_arrays(entry)
        except (KeyError, ValueError) as error:
            self.detection_store.report_bad(key, error)
            return None

    def result(self) -> AlignResult:
        kept = np.array([info is not None for info in self.infos], dtype=bool)
        images = self.images if kept.all() else self.images[kept]
        return AlignResult(images=images, infos=[info for info in self.infos if info is not None],
                           indices=np.flatnonzero(kept), skipped=[(path, why) for _, path, why in self.skipped],
                           cache_hits=self.cache_hits, detected=self.detected)


def faces_to_arrays(faces: Sequence[Face]) -> dict[str, np.ndarray]:
    """Detections as arrays for the cache: boxes K×4, confidences K, landmarks K×5×2."""
    return {"boxes": np.array([face.box for face in faces], dtype=np.float64).reshape(-1, 4),
            "confidences": np.array([face.confidence for face in faces], dtype=np.float64).reshape(-1),
            "landmarks": np.array([face.landmarks for face in faces], dtype=np.float32).reshape(-1, 5, 2)}


def faces_from_arrays(arrays: dict[str, np.ndarray]) -> list[Face]:
    """Inverse of :func:`faces_to_arrays`; raises ValueError/KeyError on inconsistent arrays."""
    boxes, confidences, landmarks = arrays["boxes"], arrays["confidences"], arrays["landmarks"]
    count = len(confidences)
    if boxes.shape != (count, 4) or landmarks.shape != (count, 5, 2) or confidences.ndim != 1:
        raise ValueError(f"inconsistent detections: {boxes.shape}, {confidences.shape}, {landmarks.shape}")
    return [Face(tuple(float(v) for v in box), float(confidence), marks.astype(np.float32))
            for box, confidence, marks in zip(boxes, confidences, landmarks)]
