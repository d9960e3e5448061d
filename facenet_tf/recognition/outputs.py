"""Folders that a facenet-tf command writes, and how later runs recognise them.

Every output folder carries a manifest (``facenet-tf-manifest.json``): the command that wrote it and every file it
wrote, relative to the folder. The manifest is what makes ``--overwrite`` safe on the user's own disk:

- a folder is replaced only when every file in it is listed in its manifest (anything else is the user's, and
  the command refuses, naming it);
- photo scans pass over folders that hold a manifest, so a second run never reads the crops and contact sheets of
  the first back as photos (``facenet_tf.recognition.photos.scan_photos``).

Files (``.npz`` faces and galleries) are written atomically and read back with one-line errors that name the file.

The folder itself is written with ``facenet_tf.atomic.write_directory_atomically``: built in a hidden sibling,
swapped in only once complete.
"""

from __future__ import annotations

import json
import os
import zipfile
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from facenet_tf.atomic import atomic_file, write_json_atomically

OUTPUT_MANIFEST = "facenet-tf-manifest.json"
MANIFEST_VERSION = 1


def write_manifest(folder: str | os.PathLike, command: str, files: Iterable[str | os.PathLike]) -> Path:
    """Writes the manifest of ``folder``: ``command`` and ``files`` (paths relative to the folder)."""
    folder = Path(folder)
    listed = sorted({Path(f).as_posix() for f in files})
    return write_json_atomically(folder / OUTPUT_MANIFEST, {"manifest_version": MANIFEST_VERSION,
                                                            "written_by": f"facenet-tf {command}",
                                                            "files": listed})


def read_manifest(folder: str | os.PathLike) -> dict | None:
    """The manifest of ``folder``, or None when it has none (or an unreadable one)."""
    path = Path(folder) / OUTPUT_MANIFEST
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("files"), list):
        return None
    return data


def is_facenet_output(folder: str | os.PathLike) -> bool:
    """Whether ``folder`` was written by a facenet-tf command (it holds a manifest)."""
    return (Path(folder) / OUTPUT_MANIFEST).is_file()


def foreign_files(folder: str | os.PathLike) -> list[str]:
    """Files under ``folder`` that its manifest does not list (every file, when there is no manifest): what a
    replacement of the folder would destroy that facenet-tf did not write."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    listed = set(manifest["files"]) | {OUTPUT_MANIFEST} if manifest else set()
    foreign = []
    for dirpath, dirnames, filenames in os.walk(folder):
        for name in filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
            relative = Path(dirpath, name).relative_to(folder).as_posix()
            if relative not in listed:
                foreign.append(relative)
    return sorted(foreign)


def is_replaceable_output(folder: str | os.PathLike) -> bool:
    """A folder that a facenet-tf command wrote and that holds nothing else."""
    return read_manifest(folder) is not None and not foreign_files(folder)


def npz_path(path: str | os.PathLike) -> Path:
    """``path`` with the ``.npz`` suffix numpy adds when it is missing."""
    path = Path(path)
    return path if path.suffix == ".npz" else path.with_name(path.name + ".npz")


def write_npz(path: str | os.PathLike, overwrite: bool = True, **arrays: np.ndarray) -> Path:
    """Writes ``arrays`` to a ``.npz`` atomically (a temporary sibling, then a rename); numpy arrays only."""
    path = npz_path(path)
    with atomic_file(path, overwrite=overwrite, suffix=".npz") as tmp:
        np.savez(tmp, **arrays)
    return path


def read_npz(path: str | os.PathLike, what: str, keys: Iterable[str]) -> dict[str, np.ndarray]:
    """The arrays of a ``.npz`` written by :func:`write_npz` (no pickles). ValueError naming the file, and saying
    what it is not, when it is missing, empty, truncated, not a zip, holds pickled objects or lacks ``keys``."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
    except FileNotFoundError:
        raise ValueError(f"'{path}' does not exist") from None
    except IsADirectoryError:
        raise ValueError(f"'{path}' is a folder, not a {what} file (.npz)") from None
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as error:
        reason = str(error) or type(error).__name__
        if isinstance(error, ValueError) and "pickle" in reason:
            reason = "it holds pickled Python objects, which are never loaded"
        raise ValueError(f"'{path}' is not a readable {what} file (.npz): {reason}") from None
    if not isinstance(arrays, dict) or not arrays:
        raise ValueError(f"'{path}' is not a {what} file: it holds no arrays")
    missing = set(keys) - set(arrays)
    if missing:
        raise ValueError(f"'{path}' is not a {what} file: missing {sorted(missing)}")
    return arrays
