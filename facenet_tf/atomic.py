"""Writing files and folders so that nothing is half-written and nothing is overwritten by surprise.

The one owner of "write an output" for every layer (it imports nothing of facenet_tf):

- ``check_output(path, overwrite, flag)``: before any work, refuse an output that exists (without ``overwrite``),
  is a folder where a file is wanted (or the reverse), or sits where nothing can be written. The message names the
  flag, so a command fails in its first second rather than after an hour of embedding.
- ``write_file_atomically`` / ``write_json_atomically`` / ``write_text_atomically``: the bytes go to a hidden
  temporary sibling (``.<name>.tmp-<random>``), are fsynced, then renamed over the target: a reader sees the old
  file or the new one, never a part.
- ``atomic_file(path)``: the same as a context manager, for writers that want a path (``numpy.savez``, Keras).
- ``write_directory_atomically``: a folder is built in a hidden sibling and swapped in only once the writer has
  finished: in one step where the system can exchange two paths (Linux ``renameat2``), else by moving the
  previous folder aside first; the previous folder is deleted only after the swap.
- ``remove_stale_temporaries(target)``: removes the hidden siblings a killed run left behind (``kill -9`` cannot
  run clean-up code), so they do not pile up.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

_TMP = ".tmp-"
_OLD = ".old-"


class OutputError(ValueError):
    """An output path that cannot be used; the message names the flag and says what was expected."""


def _temporary_sibling(path: Path, kind: str = _TMP) -> Path:
    return path.parent / f".{path.name}{kind}{uuid.uuid4().hex[:8]}"


def _nearest_existing(path: Path) -> Path:
    path = path.absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_output(path: str | os.PathLike, overwrite: bool = False, flag: str = "--out", kind: str = "file") -> Path:
    """Checks, before any work, that ``path`` can be written as a ``kind`` ('file' or 'folder').

    Raises :class:`OutputError` naming ``flag`` when the path exists and ``overwrite`` is false, when it is a folder
    where a file is wanted (or a file where a folder is wanted), or when its folder cannot be written."""
    path = Path(path)
    if kind not in ("file", "folder"):
        raise ValueError(f"kind must be 'file' or 'folder', not {kind!r}")
    if path.exists() or path.is_symlink():
        if kind == "file" and path.is_dir():
            raise OutputError(f"{flag} '{path}' is a folder; expected a file name")
        if kind == "folder" and not path.is_dir():
            raise OutputError(f"{flag} '{path}' exists and is not a folder")
        if not overwrite:
            raise OutputError(f"{flag} '{path}' exists; choose a new name or pass --overwrite to replace it")
    parent = _nearest_existing(path.parent)
    if not parent.is_dir():
        raise OutputError(f"{flag} '{path}': '{parent}' is not a folder")
    # an existing folder is written in (its files) and beside (a replacement is built next to it): both must be
    for folder in ([path, parent] if kind == "folder" and path.is_dir() else [parent]):
        if not os.access(folder, os.W_OK | os.X_OK):
            raise OutputError(f"{flag} '{path}': cannot write in '{folder}' (read-only or no permission)")
    return path


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike, overwrite: bool = True, suffix: str = "") -> Iterator[Path]:
    """Yields a temporary path beside ``path``; when the block ends without an error, the file written there is
    fsynced and renamed over ``path``. On any error (or ``KeyboardInterrupt``) the temporary file is removed and
    ``path`` is untouched. ``overwrite=False`` refuses an existing ``path`` (checked again at the rename).
    Temporaries that a killed writer of ``path`` left behind are removed first.
    ``suffix``: an extension the writer insists on (``.keras``, ``.npz``)."""
    path = Path(path)
    if not overwrite and path.exists():
        raise FileExistsError(f"'{path}' exists; pass --overwrite to replace it")
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    tmp = _temporary_sibling(path)
    if suffix:
        tmp = tmp.with_name(tmp.name + suffix)
    try:
        yield tmp
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        if not overwrite and path.exists():
            raise FileExistsError(f"'{path}' appeared while it was being written; not replaced")
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    finally:
        tmp.unlink(missing_ok=True)


def write_file_atomically(path: str | os.PathLike, data: bytes, overwrite: bool = True) -> Path:
    """Writes ``data`` to a temporary sibling, fsyncs it, then renames it over ``path``."""
    with atomic_file(path, overwrite=overwrite) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text_atomically(path: str | os.PathLike, text: str, overwrite: bool = True) -> Path:
    return write_file_atomically(path, text.encode(), overwrite=overwrite)


def write_json_atomically(path: str | os.PathLike, data: dict[str, Any], overwrite: bool = True) -> Path:
    return write_file_atomically(path, (json.dumps(data, indent=2, sort_keys=False) + "\n").encode(),
                                 overwrite=overwrite)


def remove_stale_temporaries(target: str | os.PathLike) -> list[Path]:
    """Removes the hidden temporary siblings (``.<name>.tmp-*``, ``.<name>.old-*``) of ``target`` that a killed
    writer left behind; returns what it removed. Only call it where no other writer of ``target`` runs.

    A writer killed between the two renames of a swap (where the system cannot exchange two paths in one step)
    leaves ``target`` missing and the previous output in ``.<name>.old-*``: that one is renamed back to
    ``target``, not removed."""
    target = Path(target).absolute()
    removed = []
    if not target.parent.is_dir():
        return removed
    if not (target.exists() or target.is_symlink()):
        aside = sorted((e for e in target.parent.iterdir() if e.name.startswith(f".{target.name}{_OLD}")),
                       key=lambda e: e.lstat().st_mtime)
        if aside:
            os.rename(aside[-1], target)
    for entry in target.parent.iterdir():
        if entry.name.startswith(f".{target.name}{_TMP}") or entry.name.startswith(f".{target.name}{_OLD}"):
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
            removed.append(entry)
    return removed


def check_replaceable(target: str | os.PathLike, overwrite: bool = False,
                      replaceable: Callable[[Path], bool] | None = None,
                      what: str = "an earlier output of this command") -> Path:
    """The check :func:`write_directory_atomically` makes first, for commands that want it before their work:
    ``target`` is new, an empty folder, or (with ``overwrite``) a folder that ``replaceable`` accepts as ``what``.
    FileExistsError otherwise. Returns ``target`` as an absolute path."""
    target = Path(target).absolute()
    if target.exists() or target.is_symlink():
        if not overwrite:
            raise FileExistsError(f"'{target}' exists; pass --overwrite to replace it")
        empty = target.is_dir() and not target.is_symlink() and not any(target.iterdir())
        if not empty and not (replaceable is not None and target.is_dir() and replaceable(target)):
            raise FileExistsError(f"'{target}' exists and is not {what}; refusing to replace it")
    return target


def _exchange(a: Path, b: Path) -> bool:
    """Swaps two existing paths in one step (Linux ``renameat2(RENAME_EXCHANGE)``); False where the system or the
    file system cannot, so that the caller falls back to two renames."""
    if not hasattr(os, "uname") or os.uname().sysname != "Linux":
        return False
    import ctypes
    import errno

    libc = ctypes.CDLL(None, use_errno=True)
    renameat2 = getattr(libc, "renameat2", None)
    if renameat2 is None:
        return False
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False
    raise OSError(code, os.strerror(code), os.fspath(b))


def write_directory_atomically(target: str | os.PathLike, write: Callable[[Path], None], overwrite: bool = False,
                               replaceable: Callable[[Path], bool] | None = None,
                               what: str = "an earlier output of this command") -> Path:
    """Runs ``write(tmp)`` to create the folder ``tmp`` (a hidden sibling of ``target``), then swaps it into
    place with renames. Any exception (from ``write`` or the swap) removes ``tmp`` and leaves ``target`` as it
    was. With ``overwrite``, an existing ``target`` is replaced, but only when ``replaceable(target)`` says it is
    ``what`` (or is an empty folder); otherwise it is an error. Stale temporaries of killed runs are removed first.
    """
    remove_stale_temporaries(target)
    target = check_replaceable(target, overwrite, replaceable, what)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temporary_sibling(target)
    old = _temporary_sibling(target, _OLD)
    try:
        write(tmp)
        if not tmp.is_dir():
            raise RuntimeError(f"the writer did not create '{tmp}'")
        if not target.exists():
            os.rename(tmp, target)
        elif not _exchange(tmp, target):  # exchanged: ``tmp`` now holds the previous folder, removed below
            os.rename(target, old)
            try:
                os.rename(tmp, target)
            except BaseException:
                os.rename(old, target)
                raise
            shutil.rmtree(old, ignore_errors=True)
        _fsync_dir(target.parent)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target
