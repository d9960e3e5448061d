"""On-disk cache of per-image results (aligned crops, detections), safe to interrupt and to share.

Layout under the cache root (``facenet_tf.paths.cache_dir()`` by default)::

    align/<kind>/<name>-<settings hash>/settings.json         the settings, for people
    align/<kind>/<name>-<settings hash>/<k[:2]>/<k>.npz       one file per image, k = image_key(path)

One ``.npz`` per (settings, image) means a run over a subset of LFW, or a run that was killed half-way, reuses
everything already done, and two processes can fill the same cache. Each file is written to a temporary file in the
same directory and renamed over the final name (atomic on POSIX and Windows), so a reader never sees half a file;
a file that is unreadable anyway (disk trouble, a copy cut short) is treated as missing and rewritten.

The image key hashes the file's bytes, so an edited or replaced image misses the cache while a copied, moved or
re-extracted dataset (new paths, new modification times, same files) still hits it. The settings hash covers every setting that changes the stored result plus
:data:`CACHE_VERSION`, which is bumped whenever the code computing the results changes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from facenet_tf import paths

CACHE_VERSION = 1

logger = logging.getLogger(__name__)


def image_key(path: str | os.PathLike) -> str:
    """A hex key for the file at ``path``: the SHA-1 of its bytes (LFW's 13,233 files: 0.7 s from the page cache,
    17 s cold on the project's 2-core machine), not its path or modification time, so copies of a dataset share cache entries. Raises ``OSError``
    if it is missing or unreadable."""
    with open(os.fspath(path), "rb") as file:
        return hashlib.sha1(b"image\0" + file.read()).hexdigest()


def settings_hash(settings: Mapping[str, Any]) -> str:
    """A short hex hash of JSON-serialisable ``settings`` (key order does not matter) and the cache version."""
    text = json.dumps({"cache_version": CACHE_VERSION, **settings}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:16]


class NpzStore:
    """A directory of ``<key>.npz`` files for one kind of result under one set of settings.

    Args:
        kind: what is stored (``"crops"``, ``"detections"``): a folder under ``<root>/align``.
        name: a readable prefix for the settings folder (e.g. ``"detect-160x160"``).
        settings: everything that changes the stored arrays; hashed into the folder name.
        root: the cache root; ``facenet_tf.paths.cache_dir()`` when None.
    """

    def __init__(self, kind: str, name: str, settings: Mapping[str, Any],
                 root: str | os.PathLike | None = None) -> None:
        self.settings = dict(settings)
        self.directory = paths.cache_dir(root) / "align" / kind / f"{name}-{settings_hash(self.settings)}"
        self._settings_written = False

    def file(self, key: str) -> Path:
        """Where the entry for ``key`` lives."""
        return self.directory / key[:2] / f"{key}.npz"

    def load(self, key: str) -> dict[str, np.ndarray] | None:
        """The arrays stored under ``key``, or None when there is no entry or it cannot be read."""
        path = self.file(key)
        try:
            with np.load(path, allow_pickle=False) as archive:
                arrays = {name: archive[name] for name in archive.files}
        except FileNotFoundError:
            return None
        except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as error:
            self.report_bad(key, error)
            return None
        return arrays

    def report_bad(self, key: str, reason: object) -> None:
        """Log that the entry for ``key`` is unusable (it is then rebuilt and overwritten by the caller)."""
        logger.warning("ignoring unusable cache file %s (%s); it will be rebuilt", self.file(key), reason)

    def save(self, key: str, **arrays: np.ndarray) -> Path:
        """Store ``arrays`` under ``key`` atomically (temporary file in the same folder, then rename)."""
        path = self.file(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        if not self._settings_written:
            _write_atomically(self.directory / "settings.json",
                              json.dumps(self.settings, indent=2, sort_keys=True).encode("utf-8"))
            self._settings_written = True
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{key}.", suffix=".tmp")
        try:
            with os.fdopen(handle, "wb") as stream:
                np.savez(stream, **arrays)
            os.replace(temporary, path)
        except BaseException:
            _remove_quietly(temporary)
            raise
        return path


def _write_atomically(path: Path, data: bytes) -> None:
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
        os.replace(temporary, path)
    except BaseException:
        _remove_quietly(temporary)
        raise


def _remove_quietly(path: str) -> None:
    try:
        os.remove(path)
    except OSError:
        pass
