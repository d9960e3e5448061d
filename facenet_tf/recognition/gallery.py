"""A gallery of enrolled faces and identification against it (paper: "recognition is k-NN" in the embedding space).

A :class:`Gallery` holds embeddings labelled with identity names, any number per identity (several photos of one
person make the identity more robust to pose and lighting). Identifying a probe ranks the identities by their
**identity distance**: the smallest squared L2 distance between the probe and any of that identity's embeddings
(nearest-neighbour rule; for one embedding per identity it is simply the distance to it). The minimum rather than
the mean, because an identity's photos differ in pose and age and a probe should match the one it resembles, and
the minimum keeps the meaning of the verification threshold: "is this face within threshold of some enrolled photo
of X". Open-set identification (unknown people present) accepts the best identity only when its identity distance
is at most a threshold, e.g. the LFW verification threshold of the model.

Exact search ranks every identity; with an approximate index (``index="hnsw"``, faiss) only the identities among
the ``candidates`` nearest embeddings are ranked, so a rank may be missing (name None, distance inf) when fewer
than k identities appear among them.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from facenet_tf.recognition.outputs import read_npz, write_npz
from facenet_tf.recognition.search import (INDEX_KINDS, as_embeddings, create_index, pairwise_squared_l2,
                                           top_k_smallest)

#: Version stored in gallery files, checked on load.
GALLERY_FORMAT = 1


@dataclasses.dataclass(frozen=True, eq=False)  # holds arrays
class Matches:
    """Ranked identities for each probe: ``names[i, r]`` is the identity at rank ``r + 1`` for probe ``i`` (None
    where there is none) and ``distances[i, r]`` its identity distance (inf where there is none)."""

    names: np.ndarray
    distances: np.ndarray

    def __len__(self) -> int:
        return len(self.names)

    def best(self, threshold: float | None = None) -> list[tuple[str | None, float]]:
        """``(name, distance)`` of the rank-1 identity of each probe; the name is None ("unknown") when the gallery
        is empty or, given a ``threshold``, when the distance exceeds it (open set: "same" means ``<=``)."""
        result = []
        for names, distances in zip(self.names, self.distances):
            name = names[0] if len(names) else None
            distance = float(distances[0]) if len(distances) else float("inf")
            if threshold is not None and not distance <= threshold:
                name = None
            result.append((name, distance))
        return result


class Gallery:
    """Enrolled embeddings with identity names (several per identity allowed).

    Args:
        dim: embedding dimension; taken from the first embeddings added when None.
        metadata: free-form strings saved with the gallery, e.g. ``{"model": "inception_resnet_v1/msceleb"}``, so
            a gallery is not used with embeddings of another model by mistake.

    Embeddings are expected L2-normalised (as every model of the zoo outputs), so that distances are comparable
    with the verification threshold. ``sources`` (e.g. the photo file of each embedding) are kept for reports.
    """

    def __init__(self, dim: int | None = None, metadata: dict[str, str] | None = None) -> None:
        self._dim = dim
        self.metadata: dict[str, str] = {str(k): str(v) for k, v in (metadata or {}).items()}
        self._embeddings = np.zeros((0, dim or 0), np.float32)
        self._names = np.zeros(0, dtype=str)
        self._sources = np.zeros(0, dtype=str)
        self._indexes: dict[tuple, object] = {}

    # ------------------------------------------------------------------------------------------ contents

    @property
    def dim(self) -> int | None:
        return self._dim

    @property
    def embeddings(self) -> np.ndarray:
        """``(N, d)`` float32, read-only view."""
        view = self._embeddings.view()
        view.flags.writeable = False
        return view

    @property
    def names(self) -> np.ndarray:
        """Identity name of each embedding (``(N,)`` str array)."""
        return self._names.copy()

    @property
    def sources(self) -> np.ndarray:
        """Source (e.g. photo path) of each embedding, ``""`` where none was given."""
        return self._sources.copy()

    @property
    def identities(self) -> list[str]:
        """The enrolled identities, sorted."""
        return sorted(set(self._names.tolist()))

    def counts(self) -> dict[str, int]:
        """Embeddings per identity."""
        names, counts = np.unique(self._names, return_counts=True)
        return {str(name): int(count) for name, count in zip(names, counts)}

    def __len__(self) -> int:
        return len(self._names)

    def __contains__(self, name: object) -> bool:
        return bool(np.any(self._names == name))

    def __repr__(self) -> str:
        return f"Gallery({len(self.identities)} identities, {len(self)} embeddings, dim={self._dim})"

    def add(self, names: str | Sequence[str], embeddings: np.ndarray,
            sources: str | Sequence[str] | None = None) -> None:
        """Enrol ``embeddings`` (``(n, d)`` or one ``(d,)`` vector) under ``names``: one name for all rows or one
        per row. ``sources`` likewise (one per row, or one for all)."""
        embeddings = as_embeddings(embeddings, "gallery embeddings", dim=self._dim)
        count = len(embeddings)
        labels = self._per_row(names, count, "names")
        if any(not label for label in labels):
            raise ValueError("identity names must be non-empty strings")
        origin = self._per_row("" if sources is None else sources, count, "sources")
        if self._dim is None:
            self._dim = embeddings.shape[1]
            self._embeddings = self._embeddings.reshape(0, self._dim)
        self._embeddings = np.concatenate([self._embeddings, embeddings])
        self._names = np.concatenate([self._names, np.asarray(labels, dtype=str)])
        self._sources = np.concatenate([self._sources, np.asarray(origin, dtype=str)])
        self._indexes.clear()

    @staticmethod
    def _per_row(values: str | Sequence[str], count: int, what: str) -> list[str]:
        if isinstance(values, (str, os.PathLike)):
            return [os.fspath(values)] * count
        values = [os.fspath(v) for v in values]
        if len(values) != count:
            raise ValueError(f"{what}: got {len(values)} for {count} embeddings (give one, or one per embedding)")
        return values

    def remove(self, name: str) -> int:
        """Remove every embedding of identity ``name``; returns how many. KeyError if it is not enrolled."""
        keep = self._names != name
        removed = int(np.count_nonzero(~keep))
        if removed == 0:
            raise KeyError(f"identity {name!r} is not in the gallery (enrolled: {len(self.identities)} identities)")
        self._embeddings = self._embeddings[keep]
        self._names = self._names[keep]
        self._sources = self._sources[keep]
        self._indexes.clear()
        return removed

    # ------------------------------------------------------------------------------------------------ files

    def save(self, path: str | os.PathLike, overwrite: bool = True) -> Path:
        """Write the gallery to a ``.npz`` file (numpy arrays only, no pickle) atomically; ``overwrite=False``
        refuses an existing file. Returns the path written."""
        return write_npz(path, overwrite=overwrite, embeddings=self._embeddings, names=self._names,
                         sources=self._sources, metadata=np.array(json.dumps(self.metadata, sort_keys=True)),
                         format=np.int64(GALLERY_FORMAT))

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Gallery":
        """Read a gallery written by :meth:`save`; ValueError naming the file if it is not one (missing, empty,
        truncated, pickled, wrong shapes, non-finite embeddings)."""
        arrays = read_npz(path, "gallery", ("embeddings", "names", "sources", "metadata", "format"))
        if int(arrays["format"]) != GALLERY_FORMAT:
            raise ValueError(f"'{path}': gallery format {int(arrays['format'])}, this version reads {GALLERY_FORMAT}")
        embeddings = arrays["embeddings"]
        if embeddings.ndim != 2 or not len(arrays["names"]) == len(embeddings) == len(arrays["sources"]):
            raise ValueError(f"'{path}' is not a valid gallery: embeddings of shape {embeddings.shape} for "
                             f"{len(arrays['names'])} names (expected (faces, dimension))")
        try:
            metadata = json.loads(str(arrays["metadata"]))
        except ValueError:
            raise ValueError(f"'{path}' is not a valid gallery: its metadata is not JSON") from None
        gallery = cls(dim=int(embeddings.shape[1]) if embeddings.shape[1] else None, metadata=metadata)
        if len(embeddings):
            try:
                gallery.add(arrays["names"].tolist(), embeddings, arrays["sources"].tolist())
            except ValueError as error:
                raise ValueError(f"'{path}' is not a valid gallery: {error}") from None
        return gallery

    # ---------------------------------------------------------------------------------------- identification

    def _label_codes(self) -> tuple[list[str], np.ndarray]:
        identities, codes = np.unique(self._names, return_inverse=True)
        return [str(name) for name in identities], codes.astype(np.int64)

    def identity_distances(self, probes: np.ndarray, block_size: int = 512) -> tuple[list[str], np.ndarray]:
        """``(identities, D)``: the sorted identities and the ``(P, I)`` identity distances (exact), i.e.
        ``D[p, i]`` = min over identity i's embeddings of the squared L2 distance to probe p."""
        if len(self) == 0:
            raise ValueError("the gallery is empty: enrol some faces first")
        probes = as_embeddings(probes, "probes", dim=self._dim)
        identities, codes = self._label_codes()
        order = np.argsort(codes, kind="stable")
        starts = np.flatnonzero(np.r_[True, np.diff(codes[order]) != 0])
        sorted_embeddings = self._embeddings[order]
        result = np.empty((len(probes), len(identities)), np.float32)
        for start in range(0, len(probes), block_size):
            block = pairwise_squared_l2(probes[start:start + block_size], sorted_embeddings)
            result[start:start + block_size] = np.minimum.reduceat(block, starts, axis=1)
        return identities, result

    def index(self, kind: str = "exact", **options) -> object:
        """The search index of ``kind`` over the gallery's embeddings, built on first use and kept until the
        gallery changes (``options`` are the index constructor's, see :func:`create_index`)."""
        key = (kind, tuple(sorted(options.items())))
        if key not in self._indexes:
            self._indexes[key] = create_index(self._embeddings, kind, **options)
        return self._indexes[key]

    def search(self, probes: np.ndarray, k: int = 5, index: str = "exact", candidates: int | None = None,
               **index_options) -> Matches:
        """The ``k`` nearest identities of each probe, by identity distance (ascending; ties by name).

        ``index="exact"`` ranks every identity exactly. ``index="hnsw"`` (faiss) retrieves the ``candidates``
        nearest embeddings (default ``max(10 k, 50)``) approximately and ranks the identities among them.
        """
        if k < 1:
            raise ValueError(f"k must be >= 1; got {k}")
        if index not in INDEX_KINDS:
            raise ValueError(f"unknown index {index!r}; choose one of {INDEX_KINDS}")
        if index == "exact":
            identities, distances = self.identity_distances(probes)
            values, columns = top_k_smallest(distances, k)
            return Matches(names=np.asarray(identities, dtype=object)[columns], distances=values)
        if len(self) == 0:
            raise ValueError("the gallery is empty: enrol some faces first")
        probes = as_embeddings(probes, "probes", dim=self._dim)
        candidates = candidates or max(10 * k, 50)
        neighbour_distances, neighbours = self.index(index, **index_options).search(probes, candidates)
        return _rank_candidates(neighbour_distances, neighbours, self._names, k)

    def identify(self, probes: np.ndarray, threshold: float | None = None, index: str = "exact",
                 **options) -> list[tuple[str | None, float]]:
        """``(name, distance)`` of the nearest identity of each probe; name None ("unknown") when its distance
        exceeds ``threshold`` (open set). Without a threshold every probe gets a name (closed set)."""
        return self.search(probes, k=1, index=index, **options).best(threshold)


def _rank_candidates(distances: np.ndarray, indices: np.ndarray, labels: np.ndarray,
                     k: int) -> Matches:
    """Identity ranking from ascending neighbour lists: the first time an identity appears is its smallest distance
    among the candidates."""
    names = np.full((len(indices), k), None, dtype=object)
    values = np.full((len(indices), k), np.inf, np.float32)
    for row, (row_distances, row_indices) in enumerate(zip(distances, indices)):
        found = row_indices >= 0
        row_labels = labels[row_indices[found]]
        row_distances = row_distances[found]
        _, first = np.unique(row_labels, return_index=True)
        first = np.sort(first)
        # equal distances: the name order, as in the exact path
        first = first[np.lexsort((row_labels[first], row_distances[first]))][:k]
        names[row, :len(first)] = row_labels[first]
        values[row, :len(first)] = row_distances[first]
    return Matches(names=names, distances=values)
