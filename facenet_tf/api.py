"""One-line face recognition in Python, over the library (the ``facenet-tf`` command uses the same thresholds).

    import facenet_tf as fn
    fn.verify("a.jpg", "b.jpg")         # {"same": True, "distance": 0.41, "threshold": 1.28, "model": ..., ...}
    fn.embed(["a.jpg", "photos/"])      # [{"photo": ..., "face": 0, "box": [...], "confidence": ..., "embedding": [...]}]
    fn.identify("probe.jpg", gallery="known/")   # known/<name>/*.jpg -> [{"name": "Alice" or None, "distance": ...}]
    fn.cluster("photos/")               # [{"photo": ..., "face": 0, "group": 0 (largest first), ...}]
    fn.calibrate("known/")              # thresholds measured on your own labelled photos
    net = fn.FaceNet(model="msceleb")   # holds the model and the detector for many calls

Photos are files or folders (searched recursively); every face is found with MTCNN, cropped as the LFW
evaluation crops, and embedded with the model that ``facenet_tf.models.load_model`` resolves (default: the
pretrained Inception-ResNet-v1, ``msceleb``, fetched and verified on first use), in its inference form, with the
model's stored reference mean subtracted (``FaceNet(centre=)``). Two faces are the same person when the squared
distance of their embeddings is at most the threshold.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

DEFAULT_MODEL = "msceleb"
#: The thresholds of the default model for each way of embedding a face, keyed by (flip, centred)
#: (``FaceNet(flip=, centre=)``), measured by experiments/photo_defaults.py (results/photo_defaults.md). Squared L2.
#: ``verify`` compares two faces: the best-accuracy threshold on LFW View 1 training pairs (pairsDevTrain) with
#: each photo's largest face found and embedded as the API does. ``identify`` and ``cluster`` compare each face with
#: many, so false matches add up; theirs were chosen on web-like photo collections built from LFW (rescaled,
#: recompressed, grayscale, relit, off-centre, two faces side by side), on "select" collections, and reported on
#: "check" collections of other people. ``identify``: the largest threshold with at most 1% of strangers' faces
#: accepted as someone (25 people enrolled with 1 or 3 photos each). ``cluster``: the agglomerative linkage and
#: threshold of the best mean pairwise F1. Measure your own trade-off with ``calibrate``.
MEASURED_THRESHOLDS = {
    (False, False): {"verify": 1.19, "identify": 0.70, "cluster": 1.20, "linkage": "complete"},
    (False, True): {"verify": 1.28, "identify": 0.78, "cluster": 1.24, "linkage": "complete"},
    (True, False): {"verify": 1.18, "identify": 0.68, "cluster": 1.06, "linkage": "average"},
    (True, True): {"verify": 1.18, "identify": 0.76, "cluster": 1.22, "linkage": "complete"},
}
#: The default way: the stored reference mean subtracted (the LFW recipe selected on View 1, for single pairs),
#: without the mirror image. On the check collections it names 82.0% of known faces at the 1% stranger bound
#: against 74.7% for the plain embeddings, and clusters at pairwise F1 0.895 against 0.883; the flip adds twice the
#: model calls for a gain within noise (results/photo_defaults.md).
DEFAULT_FLIP, DEFAULT_CENTRE = False, True
VERIFY_THRESHOLD, IDENTIFY_THRESHOLD, CLUSTER_THRESHOLD, CLUSTER_LINKAGE = (
    MEASURED_THRESHOLDS[DEFAULT_FLIP, DEFAULT_CENTRE][k] for k in ("verify", "identify", "cluster", "linkage"))
CLUSTER_ALGORITHM = "agglomerative"
CLUSTER_ALGORITHMS = ("agglomerative", "chinese-whispers")
#: The weights those thresholds were measured for.
THRESHOLDS_MEASURED_FOR = {"msceleb", "inception_resnet_v1@msceleb"}
#: The label of faces that match no one in a gallery (a person folder may not have this name).
UNKNOWN = "unknown"

Photos = str | os.PathLike | Sequence[str | os.PathLike]


def _as_list(photos: Photos) -> list[str | os.PathLike]:
    return [photos] if isinstance(photos, (str, os.PathLike)) else list(photos)


def _key(photo: str | os.PathLike) -> str:
    """How a photo is named in face records (``facenet_tf.recognition.list_photos`` gives Paths)."""
    return str(Path(photo))


class FaceNet:
    """A model and a face detector, loaded once, for many calls.

    Args:
        model, weights: any spelling of ``facenet_tf.models.load_model`` (default: ``msceleb``).
        threshold: the verification threshold (default: measured for the default model; required for others).
        identify_threshold, cluster_threshold: those of ``identify`` and ``cluster`` (likewise).
        calibration: a file written by ``facenet-tf calibrate`` (or its dict): the three thresholds measured on
            your photos, used where the arguments above are not given. It must be of this model.
        margin, min_confidence, min_face_size: detection and crop settings (``facenet_tf.recognition.find_faces``).
        batch_size: faces per model call.
        frozen: run the model frozen to constants (``facenet_tf.models.frozen_function``): faster calls at small
            batches for a few seconds more start-up; for long-lived processes such as a server.
        flip: embed each face and its mirror image and average the two (twice the model calls).
        centre: subtract the model's stored reference mean embedding (``facenet_tf.models.reference``) and
            renormalise: distances are then twice the cosine distances of the mean-subtracted embeddings (the LFW
            recipe selected on View 1). None (default): when the model has a stored mean (registered weights).
            ``model_name`` records both (``inception_resnet_v1@msceleb+centred``); the default thresholds are
            those measured for that way of embedding (``MEASURED_THRESHOLDS``).
    """

    def __init__(self, model: str = DEFAULT_MODEL, weights: str | None = None, *, threshold: float | None = None,
                 identify_threshold: float | None = None, cluster_threshold: float | None = None,
                 calibration: str | os.PathLike | dict | None = None, margin: float = 0.3,
                 min_confidence: float = 0.9, min_face_size: int = 20, batch_size: int = 32,
                 frozen: bool = False, flip: bool = DEFAULT_FLIP, centre: bool | None = None) -> None:
        from facenet_tf.evaluation.embed import keras_embedder
        from facenet_tf.models.reference import reference_mean
        from facenet_tf.models.source import load_model

        loaded = load_model(model, weights, inference=True)
        name = loaded.name if loaded.weights is None else f"{loaded.name}@{loaded.weights}"
        self.weights, self.flip = loaded.weights, bool(flip)
        self.mean = None if centre is False else reference_mean(loaded.weights, self.flip)
        if centre and self.mean is None:
            raise ValueError(f"centre: model {name} has no stored reference mean (registered weights only; "
                             "experiments/reference_mean.py writes one)")
        #: The model and the way faces are embedded: embeddings of two names are never compared (galleries,
        #: calibrations and served stores record it).
        self.model_name = name + ("+flip" if self.flip else "") + ("+centred" if self.mean is not None else "")
        measured = model in THRESHOLDS_MEASURED_FOR or (model, weights) == ("inception_resnet_v1", "msceleb")
        defaults = dict(MEASURED_THRESHOLDS[self.flip, self.mean is not None]) if measured else {
            "verify": loaded.thresholds.get("verify") if not self.flip and self.mean is None else None,
            "identify": None, "cluster": None}
        if calibration is not None:
            defaults.update(self._calibrated(calibration))
        self.threshold = threshold if threshold is not None else defaults["verify"]
        self.identify_threshold = identify_threshold if identify_threshold is not None else defaults["identify"]
        self.cluster_threshold = cluster_threshold if cluster_threshold is not None else defaults["cluster"]
        self.cluster_linkage = defaults.get("linkage", CLUSTER_LINKAGE)
        self.embedder = keras_embedder(loaded.model, name, frozen=frozen)
        self.margin, self.min_confidence, self.min_face_size = margin, min_confidence, min_face_size
        self.batch_size = batch_size

    def _calibrated(self, calibration: str | os.PathLike | dict) -> dict[str, float]:
        from facenet_tf.evaluation.calibration import QUESTIONS, load_calibration

        data = calibration if isinstance(calibration, dict) else load_calibration(calibration)
        if data.get("model") not in (None, self.model_name):
            where = "" if isinstance(calibration, dict) else f" '{calibration}'"
            raise ValueError(f"calibration{where} was measured for model {data['model']}, not {self.model_name}; "
                             "calibrate this model on your photos")
        measured = {question: float(data[question]["threshold"]) for question in QUESTIONS}
        return {**measured, "linkage": data["cluster"].get("linkage", CLUSTER_LINKAGE)}

    # ------------------------------------------------------------------------------------------------ faces

    def find(self, photos: Photos, faces: str = "all", progress: bool = False):
        """``(PhotoFaces, embeddings)`` of the faces in ``photos`` (files or folders)."""
        from facenet_tf.recognition import find_faces, list_photos

        found = find_faces(list_photos(_as_list(photos)), output_size=self.embedder.input_size, margin=self.margin,
                           faces=faces, min_confidence=self.min_confidence, min_face_size=self.min_face_size,
                           progress=progress)
        if not len(found):
            return found, np.zeros((0, 0), np.float32)
        return found, self.embed_crops(found.crops, progress=progress)

    def embed_crops(self, crops: np.ndarray, progress: bool = False) -> np.ndarray:
        """The embeddings of face crops (N, H, W, 3) as every call of this net makes them (``flip``, ``centre``)."""
        from facenet_tf.evaluation.embed import embed
        from facenet_tf.models.reference import centre

        embeddings = embed(self.embedder, crops, batch_size=self.batch_size, flip=self.flip, progress=progress)
        return embeddings if self.mean is None else centre(embeddings, self.mean)

    def embed(self, photos: Photos, faces: str = "all") -> list[dict[str, Any]]:
        """Every face of ``photos``: its photo, number (0 = leftmost), box, detector confidence and embedding."""
        found, embeddings = self.find(photos, faces)
        return [_face(record, embedding) for record, embedding in zip(found.records, embeddings)]

    # ------------------------------------------------------------------------------------------- questions

    def _required(self, value: float | None, what: str) -> float:
        if value is None:
            raise ValueError(f"no {what} is known for model {self.model_name!r}; pass {what}= or calibration= "
                             "(measure them on your photos with 'facenet-tf calibrate')")
        return float(value)

    def verify(self, photo_a: str | os.PathLike, photo_b: str | os.PathLike,
               select: str = "largest") -> dict[str, Any]:
        """Whether the main faces of two photos are the same person. ValueError names a photo without a face."""
        result = self.verify_pairs([(photo_a, photo_b)], select)[0]
        if "error" in result:
            raise ValueError(result["error"])
        return result

    def verify_pairs(self, pairs: Sequence[tuple[str | os.PathLike, str | os.PathLike]], select: str = "largest",
                     threshold: float | None = None, progress: bool = False) -> list[dict[str, Any]]:
        """:meth:`verify` for many pairs, each photo found and embedded once. One dict per pair, in order: the
        answer, or ``{"a", "b", "error"}`` when a photo is missing, unreadable or has no face. ``threshold``
        defaults to the verification threshold."""
        threshold = self._required(self.threshold if threshold is None else threshold, "threshold")
        wanted = list(dict.fromkeys(_key(photo) for pair in pairs for photo in pair))
        present = [photo for photo in wanted if os.path.isfile(photo)]
        found, embeddings = self.find(present, select, progress=progress)
        unreadable = dict(found.unreadable)
        row_of = {}
        for row, record in enumerate(found.records):
            row_of.setdefault(record.source, row)

        def problem(photo: str) -> str | None:
            if photo not in present:
                return f"photo '{photo}' does not exist"
            if photo in unreadable:
                return f"cannot read photo '{photo}': {unreadable[photo]}"
            return None if photo in row_of else f"no face found in '{photo}'"

        results = []
        for photo_a, photo_b in pairs:
            a, b = _key(photo_a), _key(photo_b)
            error = problem(a) or problem(b)
            if error:
                results.append({"a": a, "b": b, "error": error})
                continue
            distance = float(np.sum((embeddings[row_of[a]] - embeddings[row_of[b]]) ** 2))
            results.append({"a": a, "b": b, "same": bool(distance <= threshold), "distance": distance,
                            "threshold": threshold, "model": self.model_name,
                            "faces": [_face(found.records[row_of[a]]), _face(found.records[row_of[b]])]})
        return results

    def gallery_faces(self, known: str | os.PathLike, progress: bool = False):
        """``(gallery, found, people)`` from ``known/<name>/*.jpg`` (the largest face of each photo): the
        ``facenet_tf.recognition.Gallery``, the ``PhotoFaces`` behind it (what was unreadable or without a face)
        and the person folders. ValueError (naming the folder) when there are no person folders, a folder has
        the name of the unknown label, or no photo has a face."""
        from facenet_tf.recognition import Gallery, list_photos

        known = Path(known)
        if not known.is_dir():
            raise FileNotFoundError(f"gallery folder '{known}' does not exist")
        people = sorted(p for p in known.iterdir() if p.is_dir() and not p.name.startswith("."))
        if not people:
            raise ValueError(f"gallery '{known}' has no person folders (expected {known}/<name>/*.jpg)")
        if any(person.name == UNKNOWN for person in people):
            raise ValueError(f"the gallery's person folder '{known / UNKNOWN}' has the name of the label of faces "
                             "that match no one; rename it (e.g. unknown_person)")
        photos = [(photo, person.name) for person in people for photo in list_photos([person])]
        if not photos:
            raise ValueError(f"no photos in the person folders of the gallery '{known}'")
        found, embeddings = self.find([photo for photo, _ in photos], "largest", progress=progress)
        if not len(found):
            raise ValueError(f"no face found in any photo of the gallery '{known}'")
        name_of = {_key(photo): name for photo, name in photos}
        gallery = Gallery(metadata={"model": self.model_name})
        gallery.add([name_of[r.source] for r in found.records], embeddings, [r.source for r in found.records])
        return gallery, found, people

    def gallery(self, known: str | os.PathLike):
        """The ``facenet_tf.recognition.Gallery`` of ``known/<name>/*.jpg`` (see :meth:`gallery_faces`)."""
        return self.gallery_faces(known)[0]

    def identify(self, photos: Photos, gallery) -> list[dict[str, Any]]:
        """Name every face of ``photos`` after the nearest person of ``gallery`` (a ``known/`` folder or a
        ``Gallery``); ``name`` is None when no one is within the identify threshold."""
        from facenet_tf.recognition import Gallery

        threshold = self._required(self.identify_threshold, "identify_threshold")
        if not isinstance(gallery, Gallery):
            gallery = self.gallery(gallery)
        found, embeddings = self.find(photos)
        return self.name_faces(found, embeddings, gallery, threshold)

    def name_faces(self, found, embeddings: np.ndarray, gallery, threshold: float | None = None):
        """One dict per face of ``found``: its nearest person in ``gallery``, accepted (``name``) when within
        ``threshold`` (default: the identify threshold), else ``name`` None."""
        threshold = self._required(self.identify_threshold if threshold is None else threshold,
                                   "identify_threshold")
        if not len(found):
            return []
        matches = gallery.search(embeddings, k=1)
        return [{**_face(record), "name": str(name) if distance <= threshold else None, "nearest": str(name),
                 "distance": float(distance), "threshold": threshold}
                for record, name, distance in zip(found.records, matches.names[:, 0], matches.distances[:, 0])]

    def group(self, embeddings: np.ndarray, algorithm: str = CLUSTER_ALGORITHM, threshold: float | None = None,
              linkage: str | None = None) -> np.ndarray:
        """Group labels of ``embeddings`` (0 = the largest group) at ``threshold`` (default: the cluster one);
        agglomerative clustering uses ``linkage`` (default: the cluster linkage, complete, or the calibrated one)."""
        from facenet_tf.evaluation import clustering

        threshold = self._required(self.cluster_threshold if threshold is None else threshold, "cluster_threshold")
        if algorithm == "agglomerative":
            return clustering.agglomerative_clustering(embeddings, threshold, linkage or self.cluster_linkage)
        if algorithm == "chinese-whispers":
            return clustering.chinese_whispers(embeddings, threshold)
        raise ValueError(f"algorithm must be one of {CLUSTER_ALGORITHMS}, not {algorithm!r}")

    def cluster(self, photos: Photos, algorithm: str = CLUSTER_ALGORITHM) -> list[dict[str, Any]]:
        """Group the faces of ``photos`` by person: ``group`` numbers the groups, 0 the largest."""
        self._required(self.cluster_threshold, "cluster_threshold")
        found, embeddings = self.find(photos)
        if not len(found):
            return []
        labels = self.group(embeddings, algorithm)
        return [{**_face(record), "group": int(label)} for record, label in zip(found.records, labels)]

    def calibrate(self, known: str | os.PathLike, far: float | None = None, identify_far: float | None = None,
                  progress: bool = False, linkage: str = CLUSTER_LINKAGE):
        """Thresholds measured on ``known/<name>/*.jpg`` (``facenet_tf.evaluation.calibration.calibrate``):
        ``(result, same, different)``, the result dict and the same- and different-person pair distances."""
        from facenet_tf.evaluation import calibration

        gallery, _, _ = self.gallery_faces(known, progress=progress)
        labels = np.asarray(gallery.names)
        result = calibration.calibrate(gallery.embeddings, labels,
                                       far=calibration.DEFAULT_FAR if far is None else far,
                                       identify_far=(calibration.DEFAULT_IDENTIFY_FAR if identify_far is None
                                                     else identify_far), model=self.model_name,
                                       linkage=linkage)
        _, same, different = calibration.pair_distances(gallery.embeddings, labels)
        return result, same, different


def _face(record, embedding: np.ndarray | None = None) -> dict[str, Any]:
    face = {"photo": record.source, "face": record.face, "box": [float(v) for v in record.box],
            "confidence": float(record.confidence)}
    if embedding is not None:
        face["embedding"] = np.asarray(embedding, np.float32)
    return face


_CACHE: dict[tuple, FaceNet] = {}


def _net(model: str, weights: str | None, **options: Any) -> FaceNet:
    key = (model, weights, tuple(sorted(options.items())))
    if key not in _CACHE:
        _CACHE[key] = FaceNet(model, weights, **options)
    return _CACHE[key]


def verify(photo_a, photo_b, model: str = DEFAULT_MODEL, weights: str | None = None, **options) -> dict[str, Any]:
    """:meth:`FaceNet.verify` with a model kept for the life of the process."""
    return _net(model, weights, **options).verify(photo_a, photo_b)


def embed(photos: Photos, model: str = DEFAULT_MODEL, weights: str | None = None, **options) -> list[dict[str, Any]]:
    """:meth:`FaceNet.embed` with a model kept for the life of the process."""
    return _net(model, weights, **options).embed(photos)


def identify(photos: Photos, gallery, model: str = DEFAULT_MODEL, weights: str | None = None,
             **options) -> list[dict[str, Any]]:
    """:meth:`FaceNet.identify` with a model kept for the life of the process."""
    return _net(model, weights, **options).identify(photos, gallery)


def cluster(photos: Photos, model: str = DEFAULT_MODEL, weights: str | None = None,
            algorithm: str = "agglomerative", **options) -> list[dict[str, Any]]:
    """:meth:`FaceNet.cluster` with a model kept for the life of the process."""
    return _net(model, weights, **options).cluster(photos, algorithm)


def calibrate(known, model: str = DEFAULT_MODEL, weights: str | None = None, far: float | None = None,
              identify_far: float | None = None, **options) -> dict[str, Any]:
    """The thresholds measured on ``known/<name>/*.jpg`` (:meth:`FaceNet.calibrate`; pass the result as
    ``FaceNet(calibration=...)`` or save it with ``facenet_tf.evaluation.calibration.save_calibration``)."""
    return _net(model, weights, **options).calibrate(known, far, identify_far)[0]
