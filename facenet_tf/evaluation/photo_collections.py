"""Test collections that look like users' web photos, built from an LFW-shaped tree, and the scores of the
``facenet-tf cluster`` / ``identify`` defaults on them.

LFW (deep-funneled) images are 250×250 thumbnails with the face centred and of one size: unlike the photos people
point ``facenet-tf`` at. A *collection* here is a folder of degraded photos made from them, one seeded recipe
(:class:`CollectionSpec`) per kind of collection, each photo degraded differently, as web photos vary:

* **rescale** (the face shrinks with the photo, down to ~30 px at 0.3×), **JPEG recompression** (quality ~30-95),
  **grayscale**, **lighting** (gamma, brightness, contrast; "strong" adds a side-light gradient);
* **layout**: the photo as it is, an **off-centre crop** (a window holding the face at a random place), the photo
  **padded onto a larger canvas** at a random offset, or a **two-face composite**: the photos of two different
  people side by side (each face with its box).

Each collection is a flat folder of ``photo_0001.jpg``... (shuffled; names leak no labels) and a ``truth.json``:
for each photo its size, the identity, source image and approximate box of each of its faces, and the
degradations it got; for each person the clean images reserved for enrolment (never used in a photo) and whether
they are an *unknown* (a stranger, never enrolled in identification). The box of an LFW face is taken as
:data:`LFW_FACE_BOX` (the median MTCNN box on deep-funneled LFW) carried through every resize, crop and paste;
other faces that happen to be in an LFW image (people in the background) are not in the truth.

A collection has ``people`` *known* people, with at least ``min_images`` images (3 kept for enrolment, the rest
for photos), and ``strangers``: unknown people, with fewer images (2 to ``min_images`` - 1: they could not be
enrolled anyway), who appear in a few photos. Both are chosen by seeded permutations of the sorted names and split
into **disjoint** groups, one per (set, collection): the ``select`` set (where defaults are chosen) and the
``check`` set (reported with the chosen defaults only) have different people (:func:`assign_people`).

:func:`match_faces` gives every detected face the truth face it lies on (one-to-one per photo, by centre distance
relative to the truth box, sizes within a factor of 2), or None: a false detection or an unlabelled person.

The scores (:func:`clustering_sweep`, :func:`identify_scores`) are pure numpy over embeddings computed elsewhere
(``experiments/photo_defaults.py``). Builders and matching use numpy and OpenCV only.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import shutil
import zlib
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

#: The format of a truth.json (``"format"``).
TRUTH_FORMAT = "facenet-tf photo collection 1"
TRUTH_FILE = "truth.json"
#: Where the face of an LFW deep-funneled image is, as fractions (x1, y1, x2, y2) of the image's width and height:
#: the median MTCNN box over 80 deep-funneled images (one per 60th person), (79, 65, 171, 188) in 250×250.
LFW_FACE_BOX = (79 / 250, 65 / 250, 171 / 250, 188 / 250)
#: The two sets: defaults are chosen on ``select`` and reported on ``check``.
SETS = ("select", "check")
#: The lighting changes (``lighting``): uniform ranges (gamma log-uniform) and the chance of a side-light gradient.
LIGHTING = {
    "mild": {"gamma": (0.7, 1.5), "contrast": (0.75, 1.25), "brightness": (-25, 25), "gradient": (1, 1),
             "p_gradient": 0.0},
    "strong": {"gamma": (0.4, 2.5), "contrast": (0.45, 1.6), "brightness": (-60, 60), "gradient": (0.35, 1.3),
               "p_gradient": 0.5},
}
#: Off-centre crops keep this fraction of each side; padding puts the photo on a canvas this many times larger.
CROP_FRACTION = (0.55, 0.9)
CANVAS_FACTOR = (1.2, 2.2)
#: Clustering candidates: agglomerative linkages (``facenet_tf.evaluation.clustering.LINKAGES``) and Chinese
#: whispers.
CLUSTER_ALGORITHMS = ("average", "complete", "single", "chinese_whispers")


@dataclasses.dataclass(frozen=True)
class CollectionSpec:
    """The recipe of one kind of collection. Ranges are ``(low, high)``, drawn uniformly per photo (the gamma of
    lighting log-uniformly); probabilities are per photo. ``photos_per_person``: how many of a known person's
    images appear (drawn per person, at most what is left after the enrolment images); ``photos_per_stranger``
    likewise for the strangers (at most all their images)."""

    name: str
    description: str
    people: int = 25
    strangers: int = 40
    photos_per_person: tuple[int, int] = (2, 8)
    photos_per_stranger: tuple[int, int] = (1, 4)
    scale: tuple[float, float] = (0.3, 1.0)
    jpeg_quality: tuple[int, int] = (30, 95)
    p_gray: float = 0.2
    p_lighting: float = 0.5
    lighting: str = "mild"
    p_crop: float = 0.25
    p_pad: float = 0.25
    p_pair: float = 0.15

    def __post_init__(self) -> None:
        if self.lighting not in LIGHTING:
            raise ValueError(f"lighting must be 'mild' or 'strong'; got {self.lighting!r}")
        if not 0 < self.scale[0] <= self.scale[1] or not 1 <= self.jpeg_quality[0] <= self.jpeg_quality[1] <= 100:
            raise ValueError(f"bad scale {self.scale} or JPEG quality {self.jpeg_quality}")
        if self.p_crop + self.p_pad > 1:
            raise ValueError("p_crop + p_pad must be at most 1")

    def summary(self) -> str:
        """The per-photo recipe in words, from the fields."""
        percent = lambda p: f"{100 * p:.0f}%"  # noqa: E731
        light = LIGHTING[self.lighting]
        return (f"scale {self.scale[0]:g}-{self.scale[1]:g}×, JPEG quality {self.jpeg_quality[0]}-"
                f"{self.jpeg_quality[1]}; grayscale {percent(self.p_gray)}; lighting {percent(self.p_lighting)} "
                f"(gamma {light['gamma'][0]:g}-{light['gamma'][1]:g}, contrast {light['contrast'][0]:g}-"
                f"{light['contrast'][1]:g}, brightness ±{light['brightness'][1]:g}"
                + (f", side light ×{light['gradient'][0]:g}-{light['gradient'][1]:g} on "
                   f"{percent(light['p_gradient'])}" if light["p_gradient"] else "")
                + f"); off-centre crop {percent(self.p_crop)} ({percent(CROP_FRACTION[0])}-"
                f"{percent(CROP_FRACTION[1])} of each side), padded onto a canvas {percent(self.p_pad)} "
                f"({CANVAS_FACTOR[0]:g}-{CANVAS_FACTOR[1]:g}× each side); two-face composite {percent(self.p_pair)} "
                "of the draws")

    def to_dict(self) -> dict[str, Any]:
        """As JSON keeps it (ranges as lists), so that it compares equal to the spec of a truth.json."""
        return json.loads(json.dumps(dataclasses.asdict(self)))


def collection_specs() -> tuple[CollectionSpec, ...]:
    """The collections of each set (the same recipes, different people in ``select`` and ``check``)."""
    return (
        CollectionSpec("web", "mixed degradations"),
        CollectionSpec("gray_lighting", "grayscale, strong lighting changes", scale=(0.5, 1.0), jpeg_quality=(50, 95),
                       p_gray=1.0, p_lighting=1.0, lighting="strong", p_crop=0.15, p_pad=0.15, p_pair=0.1),
        CollectionSpec("small_jpeg", "small, heavily compressed thumbnails", scale=(0.3, 0.5), jpeg_quality=(20, 50),
                       p_gray=0.1, p_lighting=0.3, p_crop=0.2, p_pad=0.3, p_pair=0.1),
        CollectionSpec("pairs_side_by_side", "mostly two-face photos", scale=(0.4, 1.0), jpeg_quality=(40, 95),
                       p_gray=0.2, p_lighting=0.3, p_crop=0.0, p_pad=0.3, p_pair=0.8),
    )


# ----------------------------------------------------------------------------------------------- people


def list_people(images_root: str | os.PathLike, min_images: int = 1) -> dict[str, list[str]]:
    """``{name: [relative image paths, sorted]}`` of an LFW-shaped tree (``<Name>/<file>.jpg``) for the people
    with at least ``min_images`` JPEG images, names sorted."""
    root = Path(images_root)
    if not root.is_dir():
        raise FileNotFoundError(f"'{root}' is not a folder of <Name>/<Name>_NNNN.jpg images")
    people = {}
    for person in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        files = sorted(f"{person.name}/{f.name}" for f in person.iterdir()
                       if f.suffix.lower() in (".jpg", ".jpeg") and f.is_file())
        if len(files) >= min_images:
            people[person.name] = files
    return people


def _seed(*parts: object) -> int:
    """A seed from ``parts``, stable across processes (unlike ``hash``)."""
    return zlib.crc32(json.dumps([str(p) for p in parts]).encode())


def assign_people(people: Mapping[str, int], specs: Sequence[CollectionSpec], seed: int,
                  sets: Sequence[str] = SETS, min_images: int = 8,
                  stranger_images: int = 2) -> dict[tuple[str, str], dict[str, list[str]]]:
    """``{(set, collection): {"known": [names], "strangers": [names]}}`` from ``people`` (``{name: image count}``):
    known people have >= ``min_images`` images, strangers ``stranger_images`` to ``min_images`` - 1. Each pool is
    a seeded permutation of its sorted names cut into disjoint groups (``spec.people`` / ``spec.strangers``), every
    collection of the first set, then of the next. ValueError when there are too few."""
    pools = {"known": sorted(n for n, c in people.items() if c >= min_images),
             "strangers": sorted(n for n, c in people.items() if stranger_images <= c < min_images)}
    result: dict[tuple[str, str], dict[str, list[str]]] = {(s, spec.name): {} for s in sets for spec in specs}
    for kind, names in pools.items():
        needed = len(sets) * sum(spec.people if kind == "known" else spec.strangers for spec in specs)
        if needed > len(names):
            raise ValueError(f"{needed} {kind} people needed for {len(sets)} sets of {len(specs)} collections, "
                             f"{len(names)} available")
        shuffled = [names[i] for i in np.random.default_rng(_seed(seed, kind)).permutation(len(names))]
        start = 0
        for set_name in sets:
            for spec in specs:
                count = spec.people if kind == "known" else spec.strangers
                result[(set_name, spec.name)][kind] = sorted(shuffled[start:start + count])
                start += count
    return result


# ---------------------------------------------------------------------------------------- degradations


def read_bgr(path: str | os.PathLike) -> np.ndarray:
    """A colour image (uint8 BGR) from a file; ValueError naming it when it cannot be decoded."""
    image = cv2.imdecode(np.fromfile(os.fspath(path), np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError(f"cannot decode image '{path}'")
    return image


def face_box(shape: Sequence[int]) -> np.ndarray:
    """The approximate face box (x1, y1, x2, y2) of an LFW image of ``shape`` (:data:`LFW_FACE_BOX`)."""
    height, width = shape[:2]
    return np.array(LFW_FACE_BOX, np.float64) * [width, height, width, height]


def rescale(image: np.ndarray, boxes: np.ndarray, factor: float) -> tuple[np.ndarray, np.ndarray]:
    """Resize by ``factor`` (area averaging when shrinking); boxes follow."""
    height, width = image.shape[:2]
    size = (max(1, round(width * factor)), max(1, round(height * factor)))
    resized = cv2.resize(image, size, interpolation=cv2.INTER_AREA if factor < 1 else cv2.INTER_LINEAR)
    scale = np.array([size[0] / width, size[1] / height] * 2)
    return resized, boxes * scale


def crop_around(image: np.ndarray, boxes: np.ndarray, rng: np.random.Generator,
                fraction: tuple[float, float] = CROP_FRACTION) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """An off-centre crop: a window of ``fraction`` of each side (at least the union of the boxes plus 4 px) at a
    random place that keeps every box whole. Returns the crop, the boxes in it and the window (x, y, w, h)."""
    height, width = image.shape[:2]
    left, top = np.floor(boxes[:, :2].min(0)).astype(int)
    right, bottom = np.ceil(boxes[:, 2:].max(0)).astype(int)
    window = []
    for size, low, high in ((width, left, right), (height, top, bottom)):
        extent = min(size, max(high - low + 8, round(size * rng.uniform(*fraction))))
        first = max(0, high + 4 - extent)
        last = min(low - 4, size - extent)
        start = int(rng.integers(min(first, last), max(first, last) + 1)) if last >= first else max(0, min(
            low, size - extent))
        window += [int(start), int(extent)]
    x, w, y, h = window
    shifted = boxes - [x, y, x, y]
    return image[y:y + h, x:x + w].copy(), _clip(shifted, w, h), [x, y, w, h]


def background(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """A canvas: a random colour with a vertical gradient and mild noise (no faces in it)."""
    top, bottom = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
    ramp = np.linspace(0, 1, height)[:, None, None]
    canvas = top * (1 - ramp) + bottom * ramp + rng.normal(0, 6, (height, width, 3))
    return np.clip(np.broadcast_to(canvas, (height, width, 3)), 0, 255).astype(np.uint8)


def pad_onto_canvas(image: np.ndarray, boxes: np.ndarray, rng: np.random.Generator,
                    factor: tuple[float, float] = CANVAS_FACTOR) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """Paste the photo onto a larger canvas (each side ``factor`` × the photo's) at a random offset. Returns the
    canvas, the boxes on it and the placement (x, y, canvas width, canvas height)."""
    height, width = image.shape[:2]
    canvas_w, canvas_h = (max(s + 1, round(s * rng.uniform(*factor))) for s in (width, height))
    x, y = int(rng.integers(0, canvas_w - width + 1)), int(rng.integers(0, canvas_h - height + 1))
    canvas = background(canvas_h, canvas_w, rng)
    canvas[y:y + height, x:x + width] = image
    return canvas, boxes + [x, y, x, y], [x, y, canvas_w, canvas_h]


def side_by_side(parts: Sequence[tuple[np.ndarray, np.ndarray]], rng: np.random.Generator,
                 gap: tuple[int, int] = (0, 30)) -> tuple[np.ndarray, np.ndarray]:
    """Several photos pasted left to right on one canvas, each at a random height and horizontally cut to a
    random 65-100% of its width around its face; returns the canvas and all boxes (in ``parts`` order)."""
    cut = []
    for image, boxes in parts:
        height, width = image.shape[:2]
        keep = max(int(np.ceil(boxes[:, 2].max() - boxes[:, 0].min())) + 8, round(width * rng.uniform(0.65, 1.0)))
        keep = min(width, keep)
        low = int(np.clip(np.ceil(boxes[:, 2].max()) + 4 - keep, 0, width - keep))
        high = int(np.clip(np.floor(boxes[:, 0].min()) - 4, low, width - keep))
        x = int(rng.integers(low, high + 1))
        cut.append((image[:, x:x + keep], boxes - [x, 0, x, 0]))
    gaps = [int(rng.integers(gap[0], gap[1] + 1)) for _ in cut[1:]]
    canvas_h = max(image.shape[0] for image, _ in cut) + int(rng.integers(0, 40))
    canvas_w = sum(image.shape[1] for image, _ in cut) + sum(gaps)
    canvas = background(canvas_h, canvas_w, rng)
    all_boxes, x = [], 0
    for i, (image, boxes) in enumerate(cut):
        y = int(rng.integers(0, canvas_h - image.shape[0] + 1))
        canvas[y:y + image.shape[0], x:x + image.shape[1]] = image
        all_boxes.append(_clip(boxes, image.shape[1], image.shape[0]) + [x, y, x, y])
        x += image.shape[1] + (gaps[i] if i < len(gaps) else 0)
    return canvas, np.concatenate(all_boxes)


def lighting(image: np.ndarray, rng: np.random.Generator, strength: str = "mild") -> tuple[np.ndarray, dict]:
    """Gamma, contrast and brightness (``strong``: wider ranges and, half the time, a left-right gradient of
    light); returns the image and the parameters drawn."""
    ranges = LIGHTING[strength]
    gamma = float(math.exp(rng.uniform(*np.log(ranges["gamma"]))))
    contrast = float(rng.uniform(*ranges["contrast"]))
    brightness = float(rng.uniform(*ranges["brightness"]))
    gradient = ([float(v) for v in rng.uniform(*ranges["gradient"], 2)]
                if ranges["p_gradient"] and rng.random() < ranges["p_gradient"] else None)
    x = (image.astype(np.float64) / 255.0) ** gamma
    x = (x - 0.5) * contrast + 0.5 + brightness / 255.0
    if gradient is not None:
        x = x * np.linspace(gradient[0], gradient[1], image.shape[1])[None, :, None]
    params = {"gamma": round(gamma, 4), "contrast": round(contrast, 4), "brightness": round(brightness, 2),
              "gradient": None if gradient is None else [round(g, 4) for g in gradient]}
    return np.clip(np.rint(x * 255), 0, 255).astype(np.uint8), params


def jpeg_bytes(image: np.ndarray, quality: int) -> bytes:
    """The image (BGR, or 2-D gray) encoded as a baseline JPEG of ``quality``."""
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return data.tobytes()


def _clip(boxes: np.ndarray, width: int, height: int) -> np.ndarray:
    return np.clip(boxes, 0, [width, height, width, height]).astype(np.float64)


# ------------------------------------------------------------------------------------------- collections


def _plan_photos(spec: CollectionSpec, people: Mapping[str, list[str]], strangers: Mapping[str, list[str]],
                 rng: np.random.Generator, enrol: int) -> tuple[dict[str, dict[str, Any]], list[list[tuple[str, str]]]]:
    """The roster (enrolment images of the known people; strangers are unknown) and the source images of each
    photo (one, or two of different people)."""
    roster, items = {}, []
    for name in sorted(set(people) | set(strangers)):
        unknown = name not in people
        images = strangers[name] if unknown else people[name]
        files = [images[i] for i in rng.permutation(len(images))]
        reserve = 0 if unknown else enrol
        available = len(files) - reserve
        if available < 1:
            raise ValueError(f"{name} has {len(files)} images: {enrol} for enrolment leaves none for photos")
        low, high = spec.photos_per_stranger if unknown else spec.photos_per_person
        count = int(rng.integers(min(low, available), min(high, available) + 1))
        roster[name] = {"unknown": unknown, "enrol": sorted(files[:reserve]), "photos": count}
        items += [(name, f) for f in sorted(files[reserve:reserve + count])]
    items = [items[i] for i in rng.permutation(len(items))]
    photos, used = [], [False] * len(items)
    for i, item in enumerate(items):
        if used[i]:
            continue
        used[i] = True
        group = [item]
        if rng.random() < spec.p_pair:
            partner = next((j for j in range(i + 1, len(items)) if not used[j] and items[j][0] != item[0]), None)
            if partner is not None:
                used[partner] = True
                group.append(items[partner])
        photos.append(group)
    return roster, photos


def _make_photo(spec: CollectionSpec, sources: list[tuple[str, str]], images_root: Path,
                rng: np.random.Generator) -> tuple[bytes, list[dict[str, Any]], dict[str, Any], tuple[int, int]]:
    """One degraded photo: JPEG bytes, its faces (identity, source, box), the degradations, (width, height)."""
    scale = float(rng.uniform(*spec.scale))
    parts = []
    for name, source in sources:
        image = read_bgr(images_root / source)
        factor = scale * (float(rng.uniform(0.85, 1.0)) if len(sources) > 1 else 1.0)
        parts.append(rescale(image, face_box(image.shape)[None], factor))
    info: dict[str, Any] = {"scale": round(scale, 4)}
    if len(parts) > 1:
        image, boxes = side_by_side(parts, rng)
        info["layout"] = "side_by_side"
    else:
        image, boxes = parts[0]
        info["layout"] = "as_is"
    draw = rng.random()
    if draw < spec.p_crop:
        image, boxes, info["crop"] = crop_around(image, boxes, rng)
        info["layout"] += "+crop"
    elif draw < spec.p_crop + spec.p_pad:
        image, boxes, info["pad"] = pad_onto_canvas(image, boxes, rng)
        info["layout"] += "+pad"
    info["lighting"] = None
    if rng.random() < spec.p_lighting:
        image, info["lighting"] = lighting(image, rng, spec.lighting)
    info["gray"] = bool(rng.random() < spec.p_gray)
    if info["gray"]:
        image = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    info["jpeg_quality"] = int(rng.integers(spec.jpeg_quality[0], spec.jpeg_quality[1] + 1))
    height, width = image.shape[:2]
    boxes = _clip(boxes, width, height)
    faces = [{"identity": name, "source": source, "box": [round(float(v), 2) for v in box]}
             for (name, source), box in zip(sources, boxes)]
    return jpeg_bytes(image, info["jpeg_quality"]), faces, info, (width, height)


def build_collection(spec: CollectionSpec, people: Mapping[str, list[str]], images_root: str | os.PathLike,
                     output_dir: str | os.PathLike, seed: int, set_name: str = "select", enrol: int = 3,
                     strangers: Mapping[str, list[str]] | None = None) -> dict[str, Any]:
    """Write the collection of ``spec`` made of the known ``people`` and the unknown ``strangers`` (both
    ``{name: [image paths relative to images_root]}``) to ``output_dir`` (replaced; built beside it and renamed
    into place) and return its truth (as written to ``truth.json``). Deterministic: the same arguments give the
    same bytes."""
    images_root, output_dir, strangers = Path(images_root), Path(output_dir), strangers or {}
    if set(people) & set(strangers):
        raise ValueError(f"people and strangers overlap: {sorted(set(people) & set(strangers))[:3]}")
    rng = np.random.default_rng(_seed(seed, set_name, spec.name))
    roster, plan = _plan_photos(spec, people, strangers, rng, enrol)
    building = output_dir.with_name(f".{output_dir.name}.building-{os.getpid()}")
    shutil.rmtree(building, ignore_errors=True)
    building.mkdir(parents=True)
    photos = []
    try:
        for number, sources in enumerate(plan, start=1):
            data, faces, info, (width, height) = _make_photo(spec, sources, images_root, rng)
            file = f"photo_{number:04d}.jpg"
            (building / file).write_bytes(data)
            photos.append({"file": file, "width": width, "height": height, "faces": faces, "degradations": info})
        truth = {**recipe(spec, roster, seed, set_name, enrol), "people": roster, "photos": photos}
        (building / TRUTH_FILE).write_text(json.dumps(truth, indent=1) + "\n")
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        raise
    if output_dir.exists():
        shutil.rmtree(output_dir)
    building.rename(output_dir)
    return truth


def recipe(spec: CollectionSpec, people: Iterable[str], seed: int, set_name: str, enrol: int) -> dict[str, Any]:
    """What determines a collection besides the images (compared with a truth.json to decide whether to
    rebuild); ``people`` are the names."""
    return {"format": TRUTH_FORMAT, "set": set_name, "collection": spec.name, "seed": seed, "enrol": enrol,
            "spec": spec.to_dict(), "people": sorted(people)}


def load_truth(folder: str | os.PathLike) -> dict[str, Any]:
    """The truth.json of a collection folder; ValueError naming it when it is not one."""
    path = Path(folder) / TRUTH_FILE
    try:
        truth = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise ValueError(f"'{path}' is not a readable truth file: {error}") from None
    if not isinstance(truth, dict) or truth.get("format") != TRUTH_FORMAT:
        raise ValueError(f"'{path}' is not a {TRUTH_FORMAT!r} file")
    return truth


def build_collections(images_root: str | os.PathLike, output_root: str | os.PathLike, seed: int = 0,
                      specs: Sequence[CollectionSpec] | None = None, sets: Sequence[str] = SETS,
                      min_images: int = 8, enrol: int = 3, rebuild: bool = False) -> dict[tuple[str, str], Path]:
    """Every (set, collection) under ``output_root/<set>_<collection>/`` (people by :func:`assign_people`),
    built unless a folder with the same recipe is there (``rebuild`` forces it). Returns
    ``{(set, collection): folder}``."""
    specs = collection_specs() if specs is None else specs
    people = list_people(images_root)
    folders = {}
    groups = assign_people({n: len(f) for n, f in people.items()}, specs, seed, sets, min_images)
    for (set_name, name), members in groups.items():
        spec = next(s for s in specs if s.name == name)
        folder = Path(output_root) / f"{set_name}_{name}"
        known, strangers = ({m: people[m] for m in members[kind]} for kind in ("known", "strangers"))
        wanted = recipe(spec, [*known, *strangers], seed, set_name, enrol)
        try:
            truth = load_truth(folder)
            current = {key: truth[key] for key in wanted}
            current["people"] = sorted(current["people"])
        except (ValueError, KeyError, TypeError):
            current = None
        if rebuild or current != wanted:
            build_collection(spec, known, images_root, folder, seed, set_name, enrol, strangers)
        folders[(set_name, name)] = folder
    return folders


def collection_digest(folder: str | os.PathLike) -> str:
    """SHA-1 of a collection's truth.json and photo bytes (keys the embedding cache)."""
    folder = Path(folder)
    digest = hashlib.sha1((folder / TRUTH_FILE).read_bytes())
    for photo in load_truth(folder)["photos"]:
        digest.update((folder / photo["file"]).read_bytes())
    return digest.hexdigest()


# --------------------------------------------------------------------------------------------- matching


def match_faces(detected: Sequence[Sequence[float]], truth: Sequence[Sequence[float]], max_offset: float = 0.5,
                size_ratio: float = 2.0) -> list[int | None]:
    """For each detected box (x1, y1, x2, y2) of one photo, the index of the truth box it lies on, or None.

    A pair qualifies when the centres are at most ``max_offset`` × the truth box's size (sqrt of its area) apart
    and the sizes are within a factor ``size_ratio``; qualifying pairs are taken closest first, one-to-one."""
    detected = np.asarray(detected, np.float64).reshape(-1, 4)
    truth = np.asarray(truth, np.float64).reshape(-1, 4)
    result: list[int | None] = [None] * len(detected)
    if not len(detected) or not len(truth):
        return result

    def centre_size(boxes):
        return (boxes[:, :2] + boxes[:, 2:]) / 2, np.sqrt(np.clip(boxes[:, 2] - boxes[:, 0], 0, None)
                                                          * np.clip(boxes[:, 3] - boxes[:, 1], 0, None))

    (dc, ds), (tc, ts) = centre_size(detected), centre_size(truth)
    offset = np.linalg.norm(dc[:, None] - tc[None], axis=2) / np.maximum(ts[None], 1e-9)
    ratio = np.maximum(ds[:, None], 1e-9) / np.maximum(ts[None], 1e-9)
    ok = (offset <= max_offset) & (ratio <= size_ratio) & (ratio >= 1 / size_ratio)
    taken_d, taken_t = set(), set()
    for d, t in sorted(zip(*np.nonzero(ok)), key=lambda pair: (offset[pair], pair)):
        if d not in taken_d and t not in taken_t:
            result[int(d)] = int(t)
            taken_d.add(d)
            taken_t.add(t)
    return result


def label_detections(truth: Mapping[str, Any], detections: Iterable[tuple[str, Sequence[float]]],
                     **options: Any) -> tuple[list[str | None], dict[str, int]]:
    """The true identity (or None) of each detection ``(photo, box)`` of a collection (``photo``: a path or file
    name of one of its photos), and counts: ``truth_faces``, ``found`` (truth faces matched), ``other`` (None)."""
    detections = [(Path(os.fspath(photo)).name, box) for photo, box in detections]
    by_photo: dict[str, list[int]] = {}
    for row, (photo, _) in enumerate(detections):
        by_photo.setdefault(photo, []).append(row)
    labels: list[str | None] = [None] * len(detections)
    known = {p["file"]: p for p in truth["photos"]}
    stray = sorted(set(by_photo) - set(known))
    if stray:
        raise ValueError(f"detections in photos that are not in the collection, e.g. {stray[:3]}")
    found = 0
    for photo, rows in by_photo.items():
        faces = known[photo]["faces"]
        matched = match_faces([detections[r][1] for r in rows], [f["box"] for f in faces], **options)
        for row, index in zip(rows, matched):
            if index is not None:
                labels[row] = faces[index]["identity"]
                found += 1
    total = sum(len(p["faces"]) for p in truth["photos"])
    return labels, {"truth_faces": total, "found": found, "other": labels.count(None)}


# ----------------------------------------------------------------------------------------------- scores


def cluster_labels(identities: Sequence[str | None]) -> np.ndarray:
    """True labels for clustering: the identity, or a label of its own for each unmatched face (so putting it
    with anyone counts as a wrong pair)."""
    return np.array([name if name is not None else f"<other {i}>" for i, name in enumerate(identities)])


def cluster(embeddings: np.ndarray, algorithm: str, threshold: float) -> np.ndarray:
    """Cluster labels of one candidate (``CLUSTER_ALGORITHMS``): agglomerative with that linkage, or Chinese
    whispers."""
    from facenet_tf.evaluation import clustering

    if algorithm == "chinese_whispers":
        return clustering.chinese_whispers(embeddings, threshold)
    return clustering.agglomerative_clustering(embeddings, threshold, algorithm)


def clustering_sweep(embeddings: np.ndarray, true_labels: Sequence[str], thresholds: Sequence[float],
                     algorithms: Sequence[str] = CLUSTER_ALGORITHMS) -> dict[tuple[str, float], Any]:
    """``{(algorithm, threshold): ClusteringScores}``. Agglomerative thresholds are cuts of one dendrogram per
    linkage (the same labels as ``agglomerative_clustering`` at each threshold)."""
    from facenet_tf.evaluation import clustering

    scores = {}
    for algorithm in algorithms:
        tree = None if algorithm == "chinese_whispers" else clustering.linkage_tree(embeddings, algorithm)
        for t in thresholds:
            labels = (clustering.chinese_whispers(embeddings, float(t)) if tree is None
                      else clustering.cut_tree(tree, float(t)))
            scores[(algorithm, round(float(t), 4))] = clustering.pairwise_scores(true_labels, labels)
    return scores


@dataclasses.dataclass(frozen=True, eq=False)  # holds arrays
class IdentifyScores:
    """Identification of every face against a gallery. ``known``: faces of enrolled people, ``unknown``: of people
    not enrolled, ``other``: unmatched detections. ``rank1``: closed-set rank-1 of the known faces (ties count
    against them); per threshold t: ``accuracy`` = known faces named right and accepted (distance <= t), ``far`` =
    unknown faces accepted, ``other_accepted`` = unmatched detections accepted."""

    thresholds: np.ndarray
    n_known: int
    n_unknown: int
    n_other: int
    rank1: float
    accuracy: np.ndarray
    far: np.ndarray
    other_accepted: np.ndarray
    correct: np.ndarray
    known_distances: np.ndarray
    unknown_distances: np.ndarray

    def at(self, threshold: float) -> dict[str, float]:
        """Accuracy, FAR and other-accepted at any threshold."""
        return {"accuracy": float(np.mean(self.correct & (self.known_distances <= threshold))) if self.n_known
                else float("nan"),
                "far": float(np.mean(self.unknown_distances <= threshold)) if self.n_unknown else float("nan")}


def identify_scores(identities: Sequence[str], distances: np.ndarray, labels: Sequence[str | None],
                    thresholds: Sequence[float]) -> IdentifyScores:
    """Scores of probes against a gallery from its identity distances (``(P, I)``, columns ``identities``, e.g.
    ``Gallery.identity_distances``): ``labels`` the probes' true identities (None: an unmatched detection).
    Probes whose identity is not among ``identities`` are unknowns."""
    distances = np.asarray(distances, np.float64).reshape(len(labels), len(identities))
    column = {name: i for i, name in enumerate(identities)}
    best = distances.min(axis=1) if len(identities) else np.full(len(labels), np.inf)
    nearest = distances.argmin(axis=1) if len(identities) else np.zeros(len(labels), int)
    known = np.array([label is not None and label in column for label in labels], bool)
    other = np.array([label is None for label in labels], bool)
    unknown = ~known & ~other
    rows = np.flatnonzero(known)
    true = distances[rows, [column[labels[r]] for r in rows]] if len(rows) else np.zeros(0)
    ranks = np.count_nonzero(distances[rows] <= true[:, None], axis=1) if len(rows) else np.zeros(0, int)
    correct = np.array([identities[nearest[r]] == labels[r] for r in rows], bool)
    thresholds = np.asarray(thresholds, np.float64)
    accuracy = np.array([np.mean(correct & (best[rows] <= t)) if len(rows) else np.nan for t in thresholds])
    far = np.array([np.mean(best[unknown] <= t) if unknown.any() else np.nan for t in thresholds])
    other_accepted = np.array([np.mean(best[other] <= t) if other.any() else np.nan for t in thresholds])
    return IdentifyScores(thresholds, int(known.sum()), int(unknown.sum()), int(other.sum()),
                          float(np.mean(ranks == 1)) if len(rows) else float("nan"), accuracy, far, other_accepted,
                          correct, best[rows], best[unknown])


def choose_cluster_default(scores: Mapping[str, Mapping[tuple[str, float], Any]]) -> tuple[tuple[str, float], float]:
    """The candidate with the highest mean F1 over the collections (``{collection: clustering_sweep(...)}``);
    ties go to the first algorithm of :data:`CLUSTER_ALGORITHMS`, then the middle of its tied thresholds."""
    candidates = sorted(next(iter(scores.values())))
    mean = {c: float(np.mean([s[c].f1 for s in scores.values()])) for c in candidates}
    top = max(mean.values())
    tied = [c for c in candidates if mean[c] >= top - 1e-12]
    algorithm = min((c[0] for c in tied), key=CLUSTER_ALGORITHMS.index)
    thresholds = sorted(c[1] for c in tied if c[0] == algorithm)
    return (algorithm, thresholds[(len(thresholds) - 1) // 2]), top


def choose_identify_default(results: Sequence[IdentifyScores], max_far: float = 0.01) -> tuple[float, float, float]:
    """The threshold of the (shared) grid with the highest mean accuracy over ``results`` among those whose
    unknown FAR is <= ``max_far`` in every one of them (e.g. one pooled :class:`IdentifyScores` per enrolment
    size); returns (threshold, mean accuracy, worst FAR). Accuracy never falls as the threshold grows, so this is
    the largest threshold meeting the FAR bound."""
    thresholds = results[0].thresholds
    feasible = np.all([r.far <= max_far + 1e-12 for r in results], axis=0)
    if not feasible.any():
        raise ValueError(f"no threshold of the grid keeps the unknown false-accept rate <= {max_far}")
    accuracy = np.mean([r.accuracy for r in results], axis=0)
    index = int(np.flatnonzero(feasible)[np.argmax(accuracy[feasible])])
    return float(thresholds[index]), float(accuracy[index]), float(max(r.far[index] for r in results))


def pool(results: Sequence[IdentifyScores]) -> IdentifyScores:
    """Several :class:`IdentifyScores` on one threshold grid as one (faces pooled)."""
    correct = np.concatenate([r.correct for r in results])
    known = np.concatenate([r.known_distances for r in results])
    unknown = np.concatenate([r.unknown_distances for r in results])
    n_other = sum(r.n_other for r in results)
    other = sum(np.nan_to_num(r.other_accepted) * r.n_other for r in results) / max(n_other, 1)
    thresholds = results[0].thresholds
    rank1 = float(np.average([r.rank1 for r in results], weights=[r.n_known for r in results]))
    return IdentifyScores(thresholds, len(known), len(unknown), n_other, rank1,
                          np.array([np.mean(correct & (known <= t)) for t in thresholds]),
                          np.array([np.mean(unknown <= t) for t in thresholds]), other, correct, known, unknown)


# ----------------------------------------------------------------------------------------------- report


@dataclasses.dataclass(eq=False)
class CollectionResult:
    """What one collection gave: its truth, the true identity of each detected face (None: other), the detection
    counts (:func:`label_detections`), the clustering sweep and ``identify[enrolled]`` (:class:`IdentifyScores`)."""

    set: str
    name: str
    truth: dict[str, Any]
    labels: list[str | None]
    counts: dict[str, int]
    sweep: dict[tuple[str, float], Any]
    identify: dict[int, IdentifyScores]

    @property
    def people(self) -> int:
        """Real people among the detected faces (known and strangers)."""
        return len({label for label in self.labels if label is not None})

    @property
    def known(self) -> int:
        return sum(not p["unknown"] for p in self.truth["people"].values())


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A markdown table (first column left, the others right); floats with 4 decimals."""
    cell = lambda v: f"{v:.4f}" if isinstance(v, float) else str(v)  # noqa: E731
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" + " ---: |" * (len(header) - 1)]
    return "\n".join(lines + ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows])


def candidate_name(candidate: tuple[str, float]) -> str:
    """``("average", 0.92)`` → ``agglomerative, average linkage, 0.92``; Chinese whispers likewise."""
    algorithm, threshold = candidate
    name = "Chinese whispers" if algorithm == "chinese_whispers" else f"agglomerative, {algorithm} linkage"
    return f"{name}, {threshold:.2f}"


def data_description(images_name: str, seed: int, min_images: int = 8, enrol: int = 3) -> str:
    """A paragraph on how the collections of :func:`collection_specs` are made (for a report)."""
    spec = collection_specs()[0]
    return (
        f"LFW deep-funneled images (`{images_name}/`, 250×250, face centred, with background). Raw (non-funneled) "
        "LFW is not available here, so every photo starts from a funneled (already aligned) image: the degradations "
        f"below undo only part of that. Each collection has {spec.people} *known* people (LFW people with >= "
        f"{min_images} images; {enrol} clean images each kept for enrolment, never in a photo; "
        f"{spec.photos_per_person[0]}-{spec.photos_per_person[1]} photos each) and {spec.strangers} *strangers* "
        f"(people with 2-{min_images - 1} images, {spec.photos_per_stranger[0]}-{spec.photos_per_stranger[1]} photos "
        f"each, never enrolled: the unknowns of identify). People are drawn by seeded permutations (seed {seed}), "
        "disjoint between all collections: the `select` collections choose the defaults, the `check` collections "
        "(other people) only report them. Photos are shuffled and named `photo_NNNN.jpg`. Truth boxes are the "
        "median MTCNN box on deep-funneled LFW carried through every degradation; a detected face takes the identity "
        "of the truth face it lies on (centres within half the face size, sizes within 2×, one-to-one), else it is "
        "*other* (background people of the LFW images, or false detections).")


def data_table(results: Sequence[CollectionResult]) -> str:
    return markdown_table(
        ["set", "collection", "known people (strangers)", "photos", "two-face photos", "truth faces", "detected",
         "truth faces found (detection rate)", "other detections"],
        [(r.set, r.name, f"{r.known} ({len(r.truth['people']) - r.known})", len(r.truth["photos"]),
          sum(len(p["faces"]) == 2 for p in r.truth["photos"]), r.counts["truth_faces"], len(r.labels),
          f"{r.counts['found']} ({r.counts['found'] / r.counts['truth_faces']:.4f})", r.counts["other"])
         for r in results]
        + [(set_name, "all", "", "", "", truth, sum(len(r.labels) for r in group), f"{found} ({found / truth:.4f})",
            sum(r.counts["other"] for r in group))
           for set_name in dict.fromkeys(r.set for r in results)
           for group in [[r for r in results if r.set == set_name]]
           for truth, found in [(sum(r.counts["truth_faces"] for r in group), sum(r.counts["found"] for r in group))]])


def mean_score(results: Sequence[CollectionResult], candidate: tuple[str, float], field: str = "f1") -> float:
    return float(np.mean([getattr(r.sweep[candidate], field) for r in results]))


def candidates_table(results: Sequence[CollectionResult], shown: Sequence[tuple[str, float]]) -> str:
    """One row per candidate: mean F1, F1 per collection, groups / people and singles summed."""
    return markdown_table(
        ["candidate", "mean F1"] + [f"F1 {r.name}" for r in results] + ["groups / people (sum)", "singles (sum)"],
        [(candidate_name(c), mean_score(results, c)) + tuple(r.sweep[c].f1 for r in results)
         + (f"{sum(r.sweep[c].n_clusters for r in results)} / {sum(r.people for r in results)}",
            sum(r.sweep[c].n_singletons for r in results)) for c in dict.fromkeys(shown)])


def identify_sweep_table(pooled: Mapping[int, IdentifyScores], marks: Mapping[float, str], every: int = 2) -> str:
    """Accuracy / FAR / other accepted per threshold (every ``every``-th of the grid, and the marked ones)."""
    thresholds = next(iter(pooled.values())).thresholds
    return markdown_table(
        ["threshold"] + [f"{h} ({n} enrolled)" for n in pooled for h in ("accuracy", "FAR", "other accepted")],
        [(f"{t:.2f}" + "".join(f" ({m})" for v, m in marks.items() if abs(v - t) < 1e-9),)
         + tuple(float(getattr(s, a)[i]) for s in pooled.values() for a in ("accuracy", "far", "other_accepted"))
         for i, t in enumerate(thresholds) if i % every == 0 or any(abs(v - t) < 1e-9 for v in marks)])


def clustering_table(results: Sequence[CollectionResult], rows: Mapping[str, tuple[str, float]]) -> str:
    """Per collection and per named candidate: precision, recall, F1, groups / people, singles, and the best F1
    of any candidate there (for reference: chosen on that collection itself)."""
    return markdown_table(
        ["set", "collection", "clustering", "precision", "recall", "F1", "groups / people", "singles",
         "best F1 of any candidate (reference)"],
        [(r.set, r.name, f"{label}: {candidate_name(c)}", s.precision, s.recall, s.f1,
          f"{s.n_clusters} / {r.people}", s.n_singletons, max(v.f1 for v in r.sweep.values()))
         for r in results for label, c in rows.items() for s in [r.sweep[c]]])


def identify_table(results: Sequence[CollectionResult], thresholds: Sequence[float]) -> str:
    """Per collection (then pooled per set) and enrolment size: faces, rank-1, accuracy and FAR at each threshold."""
    groups = [(r.set, r.name, r.identify) for r in results] + [
        (set_name, "pooled", {n: pool([r.identify[n] for r in results if r.set == set_name])
                              for n in results[0].identify}) for set_name in dict.fromkeys(r.set for r in results)]
    return markdown_table(
        ["set", "collection", "enrolled", "known faces", "unknown faces", "rank-1"]
        + [f"{h} {t:.2f}" for t in thresholds for h in ("accuracy", "FAR")],
        [(set_name, name, n, s.n_known, s.n_unknown, s.rank1)
         + tuple(s.at(t)[key] for t in thresholds for key in ("accuracy", "far"))
         for set_name, name, scores in groups for n, s in scores.items()])


def trade_offs(results: Sequence[CollectionResult], chosen: tuple[str, float], current: tuple[str, float],
               identify: float, current_identify: float, f1_target: float = 0.95,
               rank1_target: float = 0.99) -> list[str]:
    """Bullet lines comparing the chosen and former defaults per set, with the targets."""
    lines = []
    for set_name in dict.fromkeys(r.set for r in results):
        group = [r for r in results if r.set == set_name]
        m = {key: {f: mean_score(group, c, f) for f in ("f1", "precision", "recall")}
             for key, c in (("chosen", chosen), ("former", current))}
        wrong = {key: sum(r.sweep[c].predicted_pairs - r.sweep[c].correct_pairs for r in group)
                 for key, c in (("chosen", chosen), ("former", current))}
        groups = {key: sum(r.sweep[c].n_clusters for r in group)
                  for key, c in (("chosen", chosen), ("former", current))}
        lines.append(
            f"- {set_name}, cluster: mean F1 {m['chosen']['f1']:.4f} with {candidate_name(chosen)} vs "
            f"{m['former']['f1']:.4f} with {candidate_name(current)} (target {f1_target}: "
            f"{'met' if m['chosen']['f1'] >= f1_target else 'not met'}); mean precision {m['chosen']['precision']:.4f} "
            f"vs {m['former']['precision']:.4f}, mean recall {m['chosen']['recall']:.4f} vs "
            f"{m['former']['recall']:.4f}; different-person pairs put together {wrong['chosen']} vs "
            f"{wrong['former']}; {groups['chosen']} vs {groups['former']} groups for {sum(r.people for r in group)} "
            f"people. The best candidate of each collection, picked on its own truth (no default can do better), "
            f"would reach mean F1 {float(np.mean([max(v.f1 for v in r.sweep.values()) for r in group])):.4f}.")
        for n in group[0].identify:
            s = pool([r.identify[n] for r in group])
            a, b = s.at(identify), s.at(current_identify)
            lines.append(
                f"- {set_name}, identify with {n} enrolled: closed-set rank-1 {s.rank1:.4f} (target {rank1_target}: "
                f"{'met' if s.rank1 >= rank1_target else 'not met'}; no threshold changes it); at {identify:.2f} "
                f"accuracy {a['accuracy']:.4f} and unknown FAR {a['far']:.4f}, at {current_identify:.2f} "
                f"{b['accuracy']:.4f} and {b['far']:.4f} ({s.n_known} known, {s.n_unknown} unknown faces).")
    return lines
