"""Harmonic training (paper, appendix "Harmonic embeddings"): a new model (v2) trained so that its embeddings can be
compared with those of a fixed old model (v1), with ``facenet_tf.losses.harmonic_triplet_loss``.

Two ways to get the old model's embeddings of a training batch (``TrainConfig.harmonic_old_embeddings``):

* ``precomputed`` (default, the faster; results/harmonic_lfw.md has the timing table): the old model embeds every
  training image once, un-augmented (the centred ``crop_fraction`` crop resized to the old model's input size),
  cached per image on disk (``<cache>/harmonic/<key>.npz``, shared by runs on other splits), and the input
  pipeline hands each batch its rows.
  The new model still sees augmented crops (random crop, flip), the old embedding is that of the centre crop.
  With ``TrainConfig.harmonic_fit_alignment`` (``detect``, ``landmarks``, ``center``) both models see the training
  images aligned as evaluation aligns them (``facenet_tf.align``, each model at its own input size, crops cached
  on disk and held in memory for training): the old embeddings are of the old model's aligned crops, the new
  model trains on its aligned crops (``AlignedCropLoader``; random crop and flip as usual).
  With ``TrainConfig.harmonic_views`` = K > 1 the old model embeds K fixed augmented views of each aligned crop
  (``view_boxes``: the crop, its mirror, zoomed/shifted/mirrored variants) and every training step shows the new
  model one of them per image together with *that view's* old embedding: exact targets for augmented inputs, at K
  times the one-off cost, instead of the plain crop's embedding for every augmentation.
* ``in_step``: the old model runs inside every training step on the new model's augmented batch, resized to the
  old model's input size (aspect ratio not preserved); slow, since the old model is typically much larger.

Phases (``TrainConfig.harmonic_phase``), as the paper: ``embedding_layer`` starts from an independently trained new
model (``init_from``: a training workdir, a ``.keras`` file or a zoo name with ``init_weights``, e.g. the pretrained
``inception_resnet_v1``), re-initialises its final projection randomly (``embedding_fc``; for
Inception-ResNet-v1 ``Bottleneck`` and its batch norm) and trains only that (every other layer frozen, batch norm
in inference mode); ``all`` trains the whole network (normally ``init_from`` = the phase-1 workdir).
"""

from __future__ import annotations

import hashlib
import json
import logging
import zlib
from pathlib import Path

import keras
import cv2
import numpy as np
import tensorflow as tf

from facenet_tf import paths
from facenet_tf.data.pipeline import ImageBatchLoader, ImageIndex, augment, load_face
from facenet_tf.data.sampling import BatchComposition, IdentityBalancedSampler
from facenet_tf.losses import harmonic_triplet_loss_with_metrics
from facenet_tf.models import create_model, list_models
from facenet_tf.models.source import ModelLoadError, load_model
from facenet_tf.train.config import TrainConfig
from facenet_tf.train.model import METRIC_KEYS, TripletModel

logger = logging.getLogger(__name__)

EMBEDDING_LAYER = "embedding_fc"
# The final projection of each architecture family, re-initialised and trained alone in phase 1.
HEAD_LAYERS = ((EMBEDDING_LAYER,), ("Bottleneck", "Bottleneck_BatchNorm"))


def head_layers(model: keras.Model) -> tuple[str, ...]:
    """Names of ``model``'s final projection to the embedding (phase 1 trains only these)."""
    names = {layer.name for layer in model.layers}
    for head in HEAD_LAYERS:
        if set(head) <= names:
            return head
    raise ValueError(f"--harmonic_phase=embedding_layer: model '{model.name}' has no final projection layer "
                     f"(expected one of {', '.join('+'.join(h) for h in HEAD_LAYERS)}).")
HARMONIC_METRIC_KEYS = {**METRIC_KEYS, "mean_d_new_old": "mean_same_image_distance"}


def load_old_model(source: str, weights: str | None = None, flag: str = "harmonic_with",
                   **zoo_overrides) -> keras.Model:
    """The fixed old model, any spelling of ``facenet_tf.models.load_model``; frozen.
    ``flag`` names the option in errors (the same forms serve ``--init_from``)."""
    try:
        model = load_model(source, weights, **zoo_overrides).model
    except ModelLoadError as error:
        raise ValueError(f"--{flag} {error}") from None
    model.trainable = False
    return model


@keras.saving.register_keras_serializable(package="facenet_tf")
class HarmonicTripletModel(TripletModel):
    """``TripletModel`` whose loss is the harmonic triplet loss against a fixed old model.

    Batches are ``((images, old_embeddings), labels)`` with precomputed old embeddings, or ``(images, labels)``
    with ``old_model`` set: the old model then embeds the batch (resized to ``old_input_size``) inside the step.
    Logs the ``TripletModel`` metrics plus ``mean_d_new_old``, the mean D(new_i, old_i) of the same image.
    """

    def __init__(self, embedding_model: keras.Model, old_model: keras.Model | None = None, *args,
                 candidates: str = "both", anchors: str = "new", same_image_weight: float = 0.0, **kwargs):
        super().__init__(embedding_model, *args, **kwargs)
        self.old_model = old_model
        self.candidates = candidates
        self.anchors = anchors
        self.same_image_weight = float(same_image_weight)
        self.trackers = {name: keras.metrics.Mean(name=name) for name in HARMONIC_METRIC_KEYS}

    def call(self, images, training: bool = False):
        if isinstance(images, (tuple, list)):
            images = images[0]
        return self.embedding_model(images, training=training)

    def _mine(self, inputs, labels, training: bool):
        if isinstance(inputs, (tuple, list)):
            images, old = inputs
        else:
            if self.old_model is None:
                raise ValueError("HarmonicTripletModel needs (images, old_embeddings) batches or an old_model.")
            images = inputs
            size = self.old_model.input.shape[1:3]
            old = self.old_model(tf.image.resize(images, size), training=False)
        embeddings = self.embedding_model(images, training=training)
        labels = tf.reshape(labels, [-1])
        context = tf.distribute.get_replica_context()
        if context is not None and context.num_replicas_in_sync > 1:
            embeddings = context.all_gather(embeddings, axis=0)
            old = context.all_gather(old, axis=0)
            labels = context.all_gather(labels, axis=0)
        seed = tf.stack([tf.constant(self.seed, tf.int64), tf.cast(self.optimizer.iterations, tf.int64)])
        return harmonic_triplet_loss_with_metrics(labels, embeddings, tf.stop_gradient(old), margin=self.margin,
                                                  strategy=self.strategy, fallback=self.fallback,
                                                  reduction=None if self.reduction == "auto" else self.reduction,
                                                  seed=seed, candidates=self.candidates, anchors=self.anchors,
                                                  same_image_weight=self.same_image_weight)

    def _update(self, stats):
        for name, key in HARMONIC_METRIC_KEYS.items():
            self.trackers[name].update_state(stats[key])
        return {name: tracker.result() for name, tracker in self.trackers.items()}

    def get_config(self):
        config = super().get_config()
        config["old_model"] = None  # the old model is not part of the trained artefact
        config["candidates"] = self.candidates
        config["anchors"] = self.anchors
        config["same_image_weight"] = self.same_image_weight
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config.pop("old_model", None)
        return super().from_config(config)


def _copy_weights(source: keras.Model, target: keras.Model, skip: tuple[str, ...] = ()) -> int:
    """Copies every layer's weights from ``source`` into the same-named layer of ``target``; returns the count."""
    copied = 0
    for layer in target.layers:
        if layer.name in skip or not layer.weights:
            continue
        try:
            src = source.get_layer(layer.name)
        except ValueError as error:
            raise ValueError(f"--init_from model has no layer '{layer.name}': not the same architecture.") from error
        layer.set_weights(src.get_weights())
        copied += 1
    return copied


def build_harmonic_model(config: TrainConfig) -> HarmonicTripletModel:
    """The new model (initialised from ``config.init_from`` if given; phase ``embedding_layer``: with a random
    ``embedding_fc`` and everything else frozen) wrapped for harmonic training, compiled and built."""
    from facenet_tf.train.optimizers import make_optimizer

    h, w = config.image_size
    embedding = create_model(config.model, embedding_dim=config.embedding_dim, input_shape=(h, w, 3),
                             batch_norm=config.batch_norm)
    head = head_layers(embedding) if config.harmonic_phase == "embedding_layer" else ()
    if config.init_from is not None:
        # a zoo model (e.g. pretrained weights) is built at this run's size; anything else is taken as it is
        zoo_size = (dict(embedding_dim=config.embedding_dim, input_shape=(h, w, 3), batch_norm=config.batch_norm)
                    if config.init_from in list_models() else {})
        source = load_old_model(config.init_from, config.init_weights, flag="init_from", **zoo_size)
        if tuple(source.input.shape[1:3]) != (h, w):
            raise ValueError(f"--init_from model takes {tuple(source.input.shape[1:3])} images, this run {(h, w)}.")
        _copy_weights(source, embedding, head)
    if config.harmonic_phase == "embedding_layer":
        for layer in embedding.layers:
            layer.trainable = layer.name in head
    old = None
    if config.harmonic_old_embeddings == "in_step":
        old = load_old_model(config.harmonic_with, config.harmonic_weights)
    model = HarmonicTripletModel(embedding, old, margin=config.margin, strategy=config.strategy,
                                 fallback=config.fallback, reduction=config.reduction, seed=config.seed,
                                 candidates=config.harmonic_candidates, anchors=config.harmonic_anchors,
                                 same_image_weight=config.harmonic_same_image_weight)
    model.compile(optimizer=make_optimizer(config), jit_compile=False)
    model(tf.zeros((1, h, w, 3)))
    model.optimizer.build(model.trainable_variables)
    return model


def old_embeddings_cache_key(config: TrainConfig, input_size: tuple[int, int], view: int = 0) -> str:
    """Content key of the precomputed old embeddings: old model source + weights, crop, size (not the image list:
    one cache file holds every image embedded so far with these settings, so runs on other splits share it); for a
    ``view`` > 0 (``view_boxes``) also the view and what draws it (``jitter``, ``flip``, the scheme's version)."""
    source = config.harmonic_with
    stamp = ""
    path = Path(source)
    if path.is_dir():
        final = path / "embedding_model.keras"
        stamp = str(final.stat().st_mtime_ns) if final.is_file() else ""
    settings = {"old": source, "weights": config.harmonic_weights, "stamp": stamp, "crop": config.crop_fraction,
                "size": list(input_size), "cache_format": 2}
    if config.harmonic_fit_alignment is not None:  # (absent otherwise: keys of centre-crop caches stay as they were)
        settings["alignment"] = config.harmonic_fit_alignment
    if view:  # view 0 is the plain crop: the same embeddings as without views, under the same key
        settings["view"] = {"index": view, "jitter": config.jitter, "flip": config.flip, "scheme": VIEW_SCHEME}
    payload = json.dumps(settings)
    return hashlib.sha256(payload.encode()).hexdigest()[:20]


def precompute_old_embeddings(config: TrainConfig, index: ImageIndex, batch_size: int = 64,
                              cache: bool = True, view: int = 0) -> np.ndarray:
    """(N, D) float32 old-model embeddings of every image of ``index`` (centre crop, no augmentation; with
    ``config.harmonic_fit_alignment`` the crop aligned as evaluation aligns it, at the old model's input size; with
    ``view`` > 0, aligned only, view ``view`` of that crop, ``view_boxes``).

    Cached per image in ``<cache>/harmonic/<key>.npz`` (paths + vectors): only images not embedded before with the
    same old model, crop and size are computed, then the file is rewritten atomically with the union."""
    old = load_old_model(config.harmonic_with, config.harmonic_weights)
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
        aligned = config.harmonic_fit_alignment is not None
        if view and not aligned:
            raise ValueError("precompute_old_embeddings: views (--harmonic_views) need --harmonic_fit_alignment.")
        chunk = batch_size * 16  # aligned crops are held in memory a chunk at a time
        loader = None if aligned else ImageBatchLoader(index, size, config.crop_fraction, seed=config.seed)
        load_size = padded_size(size, config.jitter) if view else size
        for start in range(0, missing.size, chunk):
            ids = missing[start:start + chunk]
            if aligned:
                sub = ImageIndex(tuple(index.paths[i] for i in ids), index.labels[ids], index.names)
                loader = AlignedCropLoader(sub, load_size, config.harmonic_fit_alignment, size, seed=config.seed)
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

VIEW_SCHEME = 1  # bump when view_boxes changes: cached view embeddings are keyed by it


def padded_size(size: tuple[int, int], jitter: float) -> tuple[int, int]:
    """The training pipeline's load size for ``size`` and ``jitter``: crops padded to ``(1 + jitter)`` times."""
    return round(size[0] * (1 + jitter)), round(size[1] * (1 + jitter))


def view_boxes(image_paths, views: int, jitter: float, flip: bool) -> tuple[np.ndarray, np.ndarray]:
    """The fixed augmented views of ``--harmonic_views``: ``(boxes (N, views, 4) float32, mirror (N, views) bool)``.

    A box is ``(y1, x1, y2, x2)`` relative to the image's aligned crop (0 and 1 = its edges; beyond them is the
    reflection padding of ``AlignedCropLoader``), the same for every model's crop of the image whatever its size.
    View 0 is the crop itself; view 1 its mirror when ``flip`` (else drawn like the rest); view k >= 2 a zoom-in by a
    factor drawn in [1 - jitter, 1], its centre shifted by up to ``jitter / 2`` of the crop along each axis, and,
    when ``flip``, mirrored with probability 1/2. Drawn from the image's file name and folder (not its full path)
    and the view's index only, so every run, split and machine gets the same views of an image."""
    n = len(image_paths)
    boxes = np.tile(np.array([0.0, 0.0, 1.0, 1.0], np.float32), (n, views, 1))
    mirror = np.zeros((n, views), bool)
    for i, path in enumerate(image_paths):
        name = "/".join(Path(path).parts[-2:]).encode()
        for k in range(1, views):
            if k == 1 and flip:
                mirror[i, k] = True
                continue
            rng = np.random.default_rng([VIEW_SCHEME, k, zlib.crc32(name)])
            scale = rng.uniform(1.0 - jitter, 1.0)
            dy, dx = rng.uniform(-jitter / 2, jitter / 2, size=2)
            lo, hi = -jitter / 2, 1.0 + jitter / 2  # the padded region
            cy = np.clip(0.5 + dy, lo + scale / 2, hi - scale / 2)
            cx = np.clip(0.5 + dx, lo + scale / 2, hi - scale / 2)
            boxes[i, k] = (cy - scale / 2, cx - scale / 2, cy + scale / 2, cx + scale / 2)
            mirror[i, k] = flip and rng.random() < 0.5
    return boxes, mirror


def crop_views(images, boxes, mirror, size: tuple[int, int]) -> tf.Tensor:
    """Views of crops padded by reflection around their centre (``AlignedCropLoader`` at a larger size): ``images``
    (B, Hp, Wp, 3), ``boxes`` (B, 4) relative to the unpadded ``size`` crop (``view_boxes``), ``mirror`` (B,) ->
    (B, *size, 3) float32, bilinear. The box (0, 0, 1, 1) gives back the crop's pixels (to within 1e-3)."""
    images = tf.convert_to_tensor(images)
    hp, wp = int(images.shape[1]), int(images.shape[2])
    h, w = size
    if hp < h or wp < w:
        raise ValueError(f"crop_views: padded images {(hp, wp)} are smaller than the crops {(h, w)}.")
    top, left = (hp - h) // 2, (wp - w) // 2
    boxes = tf.cast(boxes, tf.float32)
    y = (top + boxes[:, 0::2] * (h - 1)) / max(hp - 1, 1)
    x = (left + boxes[:, 1::2] * (w - 1)) / max(wp - 1, 1)
    normalised = tf.stack([y[:, 0], x[:, 0], y[:, 1], x[:, 1]], axis=1)
    count = tf.shape(images)[0]
    crops = tf.image.crop_and_resize(tf.cast(images, tf.float32), normalised, tf.range(count), [h, w])
    mirror = tf.reshape(tf.cast(mirror, tf.bool), [-1, 1, 1, 1])
    return tf.where(mirror, tf.reverse(crops, axis=[2]), crops)


def precompute_old_view_embeddings(config: TrainConfig, index: ImageIndex) -> np.ndarray:
    """(N, K, D) float32: the old model's embeddings of the ``K = config.harmonic_views`` views of every image
    (``view_boxes``), each view cached like ``precompute_old_embeddings``."""
    return np.stack([precompute_old_embeddings(config, index, view=k) for k in range(config.harmonic_views)], axis=1)


def set_head_linear(embedding: keras.Model, kernel: np.ndarray, bias: np.ndarray) -> None:
    """Sets the final projection (``head_layers``) of ``embedding`` so that, in inference mode, the model computes
    ``normalise(x @ kernel + bias)`` of the projection's input ``x``: a Dense with bias takes ``(kernel, bias)``; a
    Dense without bias followed by a batch norm (Inception-ResNet-v1's ``Bottleneck``) takes ``kernel``, and the
    batch norm becomes ``+ bias`` (moving mean 0, moving variance 1 - epsilon, offset ``bias``, scale 1 if any)."""
    head = head_layers(embedding)
    dense = embedding.get_layer(head[0])
    kernel = np.asarray(kernel, np.float32)
    bias = np.asarray(bias, np.float32)
    if len(head) == 1:
        dense.set_weights([kernel, bias])
        return
    norm = embedding.get_layer(head[1])
    if not isinstance(norm, keras.layers.BatchNormalization) or dense.use_bias:
        raise ValueError(f"unsupported final projection {head} (expected Dense without bias + BatchNormalization).")
    dense.set_weights([kernel])
    values = {"gamma": np.ones_like(bias), "beta": bias, "moving_mean": np.zeros_like(bias),
              "moving_variance": np.full_like(bias, 1.0 - norm.epsilon)}
    norm.set_weights([values[v.name] for v in norm.weights])


def _centre_crop_batches(config: TrainConfig, index: ImageIndex, old_embeddings: np.ndarray | None,
                         batch_size: int):
    """(uint8 centre crops at the new model's size, their precomputed old embeddings) for every training image."""
    old = precompute_old_embeddings(config, index) if old_embeddings is None else np.asarray(old_embeddings)
    if old.shape[0] != len(index):
        raise ValueError(f"{old.shape[0]} old embeddings for {len(index)} training images.")
    loader = ImageBatchLoader(index, config.image_size, config.crop_fraction, seed=config.seed)
    for start in range(0, len(index), batch_size):
        images, _, used = loader.load_indexed(np.arange(start, min(start + batch_size, len(index))))
        yield images, old[used]


def _aligned_batches(config: TrainConfig, index: ImageIndex, old_embeddings: np.ndarray | None, batch_size: int):
    """(uint8 crops aligned as evaluation aligns them, at the new model's size; the old model's embeddings of the
    same images aligned at its own size) for every readable training image (``facenet_tf.align``, crops cached on
    disk, read a batch at a time)."""
    from facenet_tf.align import AlignConfig, align_images

    old = precompute_old_embeddings(config, index) if old_embeddings is None else np.asarray(old_embeddings)
    align = AlignConfig(mode=config.harmonic_fit_alignment, output_size=tuple(config.image_size))
    for start in range(0, len(index), batch_size):
        result = align_images(index.paths[start:start + batch_size], config=align, progress=False, on_error="skip")
        if len(result.images):
            yield result.images, old[start + result.indices]


class AlignedCropLoader(ImageBatchLoader):
    """An ``ImageBatchLoader`` over the images of ``index`` aligned as evaluation aligns them (``facenet_tf.align``
    mode ``mode`` at ``align_size``, default ``size``; read from or written to the crop cache once, then held in
    memory). A larger ``size`` (the training pipeline's ``(1 + jitter)`` load size) pads each crop by reflection
    around its centre instead of resizing it, so the random ``align_size`` crop taken from it later is a shift of
    up to ``jitter / 2`` of the evaluation's framing at the evaluation's scale.
    Unreadable images are skipped (logged by ``align_images``) and replaced like the parent class replaces them."""

    def __init__(self, index: ImageIndex, size: tuple[int, int], mode: str,
                 align_size: tuple[int, int] | None = None, seed: int = 0):
        from facenet_tf.align import AlignConfig, align_images

        super().__init__(index, size, 1.0, num_threads=1, seed=seed)
        align = AlignConfig(mode=mode, output_size=tuple(align_size or size))
        result = align_images(index.paths, config=align, progress=False, on_error="skip")
        (h, w), (out_h, out_w) = align.output_size, self.size
        if out_h < h or out_w < w:
            raise ValueError(f"AlignedCropLoader: size {self.size} is smaller than the aligned crops' {(h, w)}.")
        top, left = (out_h - h) // 2, (out_w - w) // 2
        self.crops = np.zeros((len(index), out_h, out_w, 3), np.uint8)
        for row, i in zip(result.images, result.indices):
            self.crops[i] = cv2.copyMakeBorder(row, top, out_h - h - top, left, out_w - w - left,
                                               cv2.BORDER_REFLECT_101)
        self.bad = set(range(len(index))) - {int(i) for i in result.indices}
        self.skipped = len(self.bad)

    def _load(self, i: int) -> np.ndarray | None:
        return None if i in self.bad else self.crops[i]


def solve_head_least_squares(embedding: keras.Model, config: TrainConfig, index: ImageIndex,
                             old_embeddings: np.ndarray | None = None, batch_size: int = 64) -> dict:
    """Phase 1 in closed form (ours, ``--harmonic_solver=least_squares``): sets the final projection (``head_layers``)
    of ``embedding`` to the ridge regression of the old embeddings on the projection's input features.

    Every training image of ``index`` is seen once as the un-augmented centre crop at the new model's input size
    (the crop its precomputed old embedding comes from) or, with ``config.harmonic_fit_alignment`` (``detect``,
    ``landmarks``, ``center``), aligned as evaluation aligns it, each model at its own input size (the old model then
    embeds the aligned crops, cached like ``precompute_old_embeddings``); and once more mirrored when ``config.flip`` (target: the same old embedding). Features are standardised, the ridge strength is ``config.harmonic_ridge`` times the
    number of rows (relative to the standardised Gram matrix's diagonal), and everything is accumulated in float64
    batch by batch (memory O(F^2) for F features, not O(N F)). The solution is written into the layers so that the
    model *in inference mode* computes ``normalise(x K + c)`` exactly (``set_head_linear``). Inception-ResNet-v1's
    head ends in a batch norm without scale, so in *training* mode it would re-standardise each dimension; runs that
    train further from this head should expect a first-step jump there.

    ``experiments/harmonic_probe.py`` measured why: on LFW View 1 a least-squares projection of
    Inception-ResNet-v1 onto an nns2 old model leaves a per-identity residual of 0.11-0.19 where 300 steps of the
    harmonic triplet loss left 0.70 (results/harmonic_view2.md, session 6).

    Returns statistics: rows, features, ridge, and the mean cosine of the model's embedding and the old one on a
    sample of (up to ~512) training images.
    """
    head = head_layers(embedding)
    features = keras.Model(embedding.input, embedding.get_layer(head[0]).input)
    call = tf.function(lambda x: features(x, training=False), reduce_retracing=True)
    if config.harmonic_fit_alignment is None:
        batches = _centre_crop_batches(config, index, old_embeddings, batch_size)
    else:
        batches = _aligned_batches(config, index, old_embeddings, batch_size)
    n, sx, sxx, sxy, sy, seen = 0, 0.0, 0.0, 0.0, 0.0, 0
    sample_images, sample_old = [], []
    for images, y in batches:
        y = np.asarray(y, np.float64)
        if seen % max(1, len(index) // 8) < len(images) and sum(map(len, sample_images)) < 512:
            sample_images.append(images[:64])
            sample_old.append(y[:64])
        for view in [images] + ([images[:, :, ::-1]] if config.flip else []):
            x = call(tf.constant(view, tf.float32)).numpy().astype(np.float64)
            n += len(x)
            sx, sxx = sx + x.sum(0), sxx + x.T @ x
            sxy, sy = sxy + x.T @ y, sy + y.sum(0)
        seen += len(images)
        if seen // len(images) % 20 == 1:
            logger.info("least-squares phase 1: features of %d / %d images", seen, len(index))
    mean_x, mean_y = sx / n, sy / n
    cov = sxx / n - np.outer(mean_x, mean_x)
    std = np.sqrt(np.clip(np.diag(cov), 0, None)) + 1e-6
    gram = n * cov / np.outer(std, std)                     # Z^T Z of the standardised features
    cross = (sxy - n * np.outer(mean_x, mean_y)) / std[:, None]  # Z^T (Y - mean Y)
    w = np.linalg.solve(gram + config.harmonic_ridge * n * np.eye(len(std)), cross)
    kernel = w / std[:, None]
    bias = mean_y - mean_x @ kernel
    set_head_linear(embedding, kernel, bias)
    # How well the model now copies the old embeddings of (a sample of) its training images, through the layers.
    images, target = np.concatenate(sample_images), np.concatenate(sample_old)
    fitted = np.concatenate([embedding(tf.constant(images[k:k + batch_size], tf.float32), training=False).numpy()
                             for k in range(0, len(images), batch_size)])
    target = target / np.linalg.norm(target, axis=1, keepdims=True)
    stats = {"solver": "least_squares", "rows": int(n), "features": int(len(std)), "ridge": config.harmonic_ridge,
             "alignment": config.harmonic_fit_alignment or f"centre crop {config.crop_fraction}",
             "sample_same_image_cos": float(np.mean(np.sum(fitted * target, axis=1))), "sample_images": len(images)}
    logger.info("least-squares phase 1: %s", stats)
    return stats


def harmonic_training_dataset(config: TrainConfig, index: ImageIndex, composition: BatchComposition,
                              start_step: int = 0, old_embeddings: np.ndarray | None = None,
                              prefetch: int = 2) -> tuple[tf.data.Dataset, ImageBatchLoader]:
    """``training_dataset`` plus each image's precomputed old embedding: ``((images, old), labels)`` per step.

    Same batches and augmentation as ``facenet_tf.data.pipeline.training_dataset`` for the same (seed, step).
    With ``config.harmonic_views`` = K > 1, ``old_embeddings`` (if given) is (N, K, D) and the augmentation is
    instead one of the K fixed views of each image (``view_boxes``), drawn per image and step from (seed, step),
    with that view's old embedding."""
    views = config.harmonic_views
    if old_embeddings is None:
        old_embeddings = (precompute_old_view_embeddings(config, index) if views > 1
                          else precompute_old_embeddings(config, index))
    old_embeddings = np.asarray(old_embeddings, np.float32)
    expected = (len(index), views) if views > 1 else (len(index),)
    if old_embeddings.shape[:-1] != expected:
        raise ValueError(f"harmonic_training_dataset: old embeddings of shape {old_embeddings.shape}, expected "
                         f"{expected} + (D,) for {len(index)} images and --harmonic_views={views}.")
    sampler = IdentityBalancedSampler(index.labels, composition, config.seed)
    out_h, out_w = config.image_size
    load_size = padded_size(config.image_size, config.jitter)
    if config.harmonic_fit_alignment:
        loader = AlignedCropLoader(index, load_size, config.harmonic_fit_alignment, config.image_size, config.seed)
    else:
        loader = ImageBatchLoader(index, load_size, config.crop_fraction, seed=config.seed)
    b = composition.batch_size
    if views > 1:
        boxes, mirror = view_boxes(index.paths, views, config.jitter, config.flip)

    def batches():
        step = start_step
        while True:
            images, labels, used = loader.load_indexed(sampler.batch(step))
            if views > 1:
                pick = np.random.default_rng([config.seed, step, VIEW_SCHEME]).integers(views, size=len(used))
                yield images, old_embeddings[used, pick], labels, np.int64(step), boxes[used, pick], mirror[used, pick]
            else:
                yield (images, old_embeddings[used], labels, np.int64(step), np.zeros((b, 4), np.float32),
                       np.zeros((b,), bool))
            step += 1

    ds = tf.data.Dataset.from_generator(batches, output_signature=(
        tf.TensorSpec((b, *load_size, 3), tf.uint8), tf.TensorSpec((b, old_embeddings.shape[-1]), tf.float32),
        tf.TensorSpec((b,), tf.int32), tf.TensorSpec((), tf.int64), tf.TensorSpec((b, 4), tf.float32),
        tf.TensorSpec((b,), tf.bool)))

    def finish(images, old, labels, step, view_box, view_mirror):
        seed_pair = tf.stack([tf.constant(config.seed, tf.int64), step])
        if views > 1:
            images = crop_views(images, view_box, view_mirror, (out_h, out_w))
        elif config.jitter or config.flip:
            images = augment(images, seed_pair, (out_h, out_w), config.flip)
        else:
            images = tf.cast(images, tf.float32)
        return (images, old), labels

    return ds.map(finish, num_parallel_calls=tf.data.AUTOTUNE).prefetch(prefetch), loader
