"""One-line face recognition in Python, over the library (the ``facenet-tf`` command uses the same thresholds).

    import facenet_tf as fn
    fn.verify("a.jpg", "b.jpg")         # {"same": True, "distance": 0.41, "threshold": 1.19, "model": ..., ...}
    fn.embed(["a.jpg", "photos/"])      # [{"photo": ..., "face": 0, "box": [...], "confidence": ..., "embedding": [...]}]
    fn.identify("probe.jpg", gallery="known/")   # known/<name>/*.jpg -> [{"name": "Alice" or None, "distance": ...}]
    fn.cluster("photos/")               # [{"photo": ..., "face": 0, "group": 0 (largest first), ...}]
    net = fn.FaceNet(model="msceleb")   # holds the model and the detector for many calls

Photos are files or folders (searched recursively); every face is found with MTCNN, cropped as the LFW
evaluation crops, and embedded with the model that ``facenet_tf.models.load_model`` resolves (default: the
pretrained Inception-ResNet-v1, ``msceleb``, fetched and verified on first use), in its inference form.
Two faces are the same person when the squared distance of their embeddings is at most the threshold.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

DEFAULT_MODEL = "msceleb"
#: Squared-L2 thresholds of the default model, chosen on LFW View 1 training pairs (pairsDevTrain) with MTCNN crops
#: by experiments/eval_recognition.py (results/recognition_lfw.md), rounded to two decimals. ``verify`` compares
#: two faces: the best-accuracy threshold (1.1864).
VERIFY_THRESHOLD = 1.19
#: ``cluster`` and ``identify`` compare each face with many: false matches add up (on LFW, 54% of unknown people
#: were matched to one of 79 enrolled people at the verification threshold), so they use the stricter threshold
#: with a pair false-accept rate <= 1e-3 there (0.9222).
SEARCH_THRESHOLD = 0.92
#: The weights those thresholds were measured for.
THRESHOLDS_MEASURED_FOR = {"msceleb", "inception_resnet_v1@msceleb"}

Photos = str | os.PathLike | Sequence[str | os.PathLike]


def _as_list(photos: Photos) -> list[str | os.PathLike]:
    return [photos] if isinstance(photos, (str, os.PathLike)) else list(photos)


class FaceNet:
    """A model and a face detector, loaded once, for many calls.

    Args:
        model, weights: any spelling of ``facenet_tf.models.load_model`` (default: ``msceleb``).
        threshold: the verification threshold (default: measured for the default model; required for others).
        search_threshold: the threshold of ``identify`` and ``cluster`` (likewise).
        margin, min_confidence, min_face_size: detection and crop settings (``facenet_tf.recognition.find_faces``).
        batch_size: faces per model call.
    """

    def __init__(self, model: str = DEFAULT_MODEL, weights: str | None = None, *, threshold: float | None = None,
                 search_threshold: float | None = None, margin: float = 0.3, min_confidence: float = 0.9,
                 min_face_size: int = 20, batch_size: int = 32) -> None:
        from facenet_tf.evaluation.embed import keras_embedder
        from facenet_tf.models.source import load_model

        loaded = load_model(model, weights, inference=True)
        self.model_name = loaded.name if loaded.weights is None else f"{loaded.name}@{loaded.weights}"
        measured = model in THRESHOLDS_MEASURED_FOR or (model, weights) == ("inception_resnet_v1", "msceleb")
        self.threshold = threshold if threshold is not None else (
            VERIFY_THRESHOLD if measured else loaded.thresholds.get("verify"))
        self.search_threshold = search_threshold if search_threshold is not None else (
            SEARCH_THRESHOLD if measured else None)
        self.embedder = keras_embedder(loaded.model, self.model_name)
        self.margin, self.min_confidence, self.min_face_size = margin, min_confidence, min_face_size
        self.batch_size = batch_size

    # ------------------------------------------------------------------------------------------------ faces

    def find(self, photos: Photos, faces: str = "all", progress: bool = False):
        """``(PhotoFaces, embeddings)`` of the faces in ``photos`` (files or folders)."""
        from facenet_tf.evaluation.embed import embed
        from facenet_tf.recognition import find_faces, list_photos

        found = find_faces(list_photos(_as_list(photos)), output_size=self.embedder.input_size, margin=self.margin,
                           faces=faces, min_confidence=self.min_confidence, min_face_size=self.min_face_size,
                           progress=progress)
        embeddings = (embed(self.embedder, found.crops, batch_size=self.batch_size, progress=progress)
                      if len(found) else np.zeros((0, 0), np.float32))
        return found, embeddings

    def embed(self, photos: Photos, faces: str = "all") -> list[dict[str, Any]]:
        """Every face of ``photos``: its photo, number (0 = leftmost), box, detector confidence and embedding."""
        found, embeddings = self.find(photos, faces)
        return [_face(record, embedding) for record, embedding in zip(found.records, embeddings)]

    # ------------------------------------------------------------------------------------------- questions

    def _required(self, value: float | None, what: str) -> float:
        if value is None:
            raise ValueError(f"no {what} is known for model {self.model_name!r}; pass {what}= (measure one with "
                             "experiments/eval_recognition.py on your data)")
        return float(value)

    def verify(self, photo_a: str | os.PathLike, photo_b: str | os.PathLike,
               select: str = "largest") -> dict[str, Any]:
        """Whether the main faces of two photos are the same person. ValueError names a photo without a face."""
        threshold = self._required(self.threshold, "threshold")
        found, embeddings = self.find([photo_a, photo_b], select)
        rows = []
        for photo in (photo_a, photo_b):
            match = [i for i, record in enumerate(found.records) if record.source == os.fspath(photo)]
            if not match:
                unreadable = dict(found.unreadable).get(os.fspath(photo))
                raise ValueError(f"cannot read photo '{photo}': {unreadable}" if unreadable
                                 else f"no face found in '{photo}'")
            rows.append(match[0])
        distance = float(np.sum((embeddings[rows[0]] - embeddings[rows[1]]) ** 2))
        return {"same": bool(distance <= threshold), "distance": distance, "threshold": threshold,
                "model": self.model_name, "faces": [_face(found.records[r]) for r in rows]}

    def gallery(self, known: str | os.PathLike):
        """A ``facenet_tf.recognition.Gallery`` from ``known/<name>/*.jpg`` (the largest face of each photo)."""
        from facenet_tf.recognition import Gallery, list_photos

        people = sorted(p for p in Path(known).iterdir() if p.is_dir() and not p.name.startswith("."))
        photos = [(photo, person.name) for person in people for photo in list_photos([person])]
        found, embeddings = self.find([photo for photo, _ in photos], "largest")
        name_of = {os.fspath(photo): name for photo, name in photos}
        gallery = Gallery(metadata={"model": self.model_name})
        if len(found):
            gallery.add([name_of[r.source] for r in found.records], embeddings, [r.source for r in found.records])
        return gallery

    def identify(self, photos: Photos, gallery) -> list[dict[str, Any]]:
        """Name every face of ``photos`` after the nearest person of ``gallery`` (a ``known/`` folder or a
        ``Gallery``); ``name`` is None when no one is within the search threshold."""
        from facenet_tf.recognition import Gallery

        threshold = self._required(self.search_threshold, "search_threshold")
        if not isinstance(gallery, Gallery):
            gallery = self.gallery(gallery)
        found, embeddings = self.find(photos)
        if not len(found):
            return []
        matches = gallery.search(embeddings, k=1)
        return [{**_face(record), "name": str(name) if distance <= threshold else None, "nearest": str(name),
                 "distance": float(distance), "threshold": threshold}
                for record, name, distance in zip(found.records, matches.names[:, 0], matches.distances[:, 0])]

    def cluster(self, photos: Photos, algorithm: str = "agglomerative") -> list[dict[str, Any]]:
        """Group the faces of ``photos`` by person: ``group`` numbers the groups, 0 the largest."""
        from facenet_tf.evaluation import clustering

        threshold = self._required(self.search_threshold, "search_threshold")
        found, embeddings = self.find(photos)
        if not len(found):
            return []
        if algorithm == "agglomerative":
            labels = clustering.agglomerative_clustering(embeddings, threshold, "average")
        elif algorithm == "chinese-whispers":
            labels = clustering.chinese_whispers(embeddings, threshold)
        else:
            raise ValueError(f"algorithm must be 'agglomerative' or 'chinese-whispers', not {algorithm!r}")
        return [{**_face(record), "group": int(label)} for record, label in zip(found.records, labels)]


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
