"""The old model's embeddings of every training image, computed once and cached per image on disk
(``<cache>/harmonic/<key>.npz``, shared by runs on other splits): of the centre crop, of the aligned crop
(``--harmonic_fit_alignment``) or of each of its fixed views (``--harmonic_views``)."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import numpy as np
import tensorflow as tf

from facenet_tf import paths
from facenet_tf.data.pipeline import ImageBatchLoader, ImageIndex
from facenet_tf.harmonic.crops import VIEW_SCHEME, AlignedCropLoader, crop_views, padded_size, view_boxes
from facenet_tf.harmonic.models import load_old_model
from facenet_tf.train.config import TrainConfig

logger = logging.getLogger(__name__)


def old_embeddings_cache_key(config: TrainConfig, input_size: tuple[int, int], view: int = 0) -> str:
    """Content key of the precomputed old embeddings: old model source + weights, crop, size (not the image list:
    one cache file holds every image embedded so far with these settings, so runs on other splits share it); for a
    ``view`` > 0 (``view_boxes``) also the view and what draws it (``jitter``, ``flip``, the scheme's version)."""
    source = config.harmonic.old_model
    stamp = ""
    path = Path(source)
    if path.is_dir():
        final = path / "embedding_model.keras"
        stamp = str(final.stat().st_mtime_ns) if final.is_file() else ""
    settings = {"old": source, "weights": config.harmonic.old_weights, "stamp": stamp, "crop": config.crop_fraction,
                "size": list(input_size), "cache_format": 2}
    if config.harmonic.fit_alignment is not None:  # (absent otherwise: keys of centre-crop caches stay as they were)
        settings["alignment"] = config.harmonic.fit_alignment
    if view:  # view 0 is the plain crop: the same embeddings as without views, under the same key
        settings["view"] = {"index": view, "jitter": config.jitter, "flip": config.flip, "scheme": VIEW_SCHEME}
    payload = json.dumps(settings)
    return hashlib.sha256(payload.encode()).hexdigest()[:20]


def precompute_old_embeddings(config: TrainConfig, index: ImageIndex, batch_size: int = 64,
                              cache: bool = True, view: int = 0) -> np.ndarray:
    """(N, D) float32 old-model embeddings of every image of ``index`` (centre crop, no augmentation; with
    ``config.harmonic.fit_alignment`` the crop aligned as evaluation aligns it, at the old model's input size; with
    ``view`` > 0, aligned only, view ``view`` of that crop, ``view_boxes``).

    Cached per image in ``<cache>/harmonic/<key>.npz`` (paths + vectors): only images not embedded before with the
    same old model, crop and size are computed, then the file is rewritten atomically with the union."""
    old = load_old_model(config.harmonic.old_model, config.harmonic.old_weights)
    size = tuple(old.input.shape[1:3])
    file = paths.cache_dir() / "harmonic" / f"{old_embeddings_cache_key(config, size, view)}.npz"
    known: dict[str, np.ndarray] = {}
    if cache and file.is_file():
        with np.load(file, allow_pickle=False) as data:
            known = dict(zip(data["paths"].tolist(), data["vectors"]))
    missing = np.array([i for i, p in enumerate(index.paths) if p not in known], np.int64)
    if missing.size:
        logger.info("old embeddings: %d of %d images to compute (%d cached)", missing.size, len(index),
                    len(index) - missing.size)
        call = tf.function(lambda x: old(x, training=False), reduce_retracing=True)
        aligned = config.harmonic.fit_alignment is not None
        if view and not aligned:
            raise ValueError("precompute_old_embeddings: views (--harmonic_views) need --harmonic_fit_alignment.")
        chunk = batch_size * 16  # aligned crops are held in memory a chunk at a time
        loader = None if aligned else ImageBatchLoader(index, size, config.crop_fraction, seed=config.seed)
        load_size = padded_size(size, config.jitter) if view else size
        for start in range(0, missing.size, chunk):
            ids = missing[start:start + chunk]
            if aligned:
                sub = ImageIndex(tuple(index.paths[i] for i in ids), index.labels[ids], index.names)
                loader = AlignedCropLoader(sub, load_size, config.harmonic.fit_alignment, size, seed=config.seed)
            for b in range(0, len(ids), batch_size):
                rows = np.arange(b, min(b + batch_size, len(ids)))
                # an unreadable image is replaced by another; it is never drawn for training either
                images, _ = loader.load(rows if aligned else ids[rows])
                images = tf.constant(images, tf.float32)
                if view:
                    boxes, mirror = view_boxes([index.paths[i] for i in ids[rows]], view + 1, config.jitter,
                                               config.flip)
                    images = crop_views(images, boxes[:, view], mirror[:, view], size)
                for i, vector in zip(ids[rows], call(images).numpy()):
                    known[index.paths[i]] = vector.astype(np.float32)
            logger.info("old embeddings: %d / %d", start + len(ids), missing.size)
        if cache:
            file.parent.mkdir(parents=True, exist_ok=True)
            tmp = file.with_name(f".{file.stem}.tmp.npz")
            names = sorted(known)
            np.savez(tmp, paths=np.array(names), vectors=np.stack([known[n] for n in names]))
            tmp.replace(file)
    return np.stack([known[p] for p in index.paths]).astype(np.float32)


def precompute_old_view_embeddings(config: TrainConfig, index: ImageIndex) -> np.ndarray:
    """(N, K, D) float32: the old model's embeddings of the ``K = config.harmonic.views`` views of every image
    (``view_boxes``), each view cached like ``precompute_old_embeddings``."""
    return np.stack([precompute_old_embeddings(config, index, view=k) for k in range(config.harmonic.views)], axis=1)
