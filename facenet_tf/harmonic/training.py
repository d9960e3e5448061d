"""Harmonic training steps: ``HarmonicTripletModel`` (the harmonic triplet loss against a fixed old model),
``build_harmonic_model`` (phases, ``--init_from``), ``harmonic_training_dataset`` (batches with precomputed old
embeddings), and ``HarmonicHook``, through which ``facenet_tf.train.loop.train`` runs them (``train``)."""

from __future__ import annotations

import logging
import os
import time

import keras
import numpy as np
import tensorflow as tf

from facenet_tf.data.pipeline import ImageBatchLoader, ImageIndex, augment
from facenet_tf.data.sampling import BatchComposition, IdentityBalancedSampler
from facenet_tf.harmonic.crops import VIEW_SCHEME, AlignedCropLoader, crop_views, padded_size, view_boxes
from facenet_tf.harmonic.least_squares import solve_head_least_squares
from facenet_tf.harmonic.models import copy_weights, head_layers, load_old_model
from facenet_tf.harmonic.old_embeddings import precompute_old_embeddings, precompute_old_view_embeddings
from facenet_tf.losses import harmonic_triplet_loss_with_metrics
from facenet_tf.models import create_model, list_models
from facenet_tf.train import loop
from facenet_tf.train.config import TrainConfig
from facenet_tf.train.model import METRIC_KEYS, TripletModel
from facenet_tf.train.optimizers import make_optimizer

logger = logging.getLogger(__name__)

HARMONIC_METRIC_KEYS = {**METRIC_KEYS, "mean_d_new_old": "mean_same_image_distance"}


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


def build_harmonic_model(config: TrainConfig) -> HarmonicTripletModel:
    """The new model (initialised from ``config.harmonic.init_from`` if given; phase ``embedding_layer``: with a random
    ``embedding_fc`` and everything else frozen) wrapped for harmonic training, compiled and built."""
    h, w = config.image_size
    embedding = create_model(config.model, embedding_dim=config.embedding_dim, input_shape=(h, w, 3),
                             batch_norm=config.batch_norm)
    head = head_layers(embedding) if config.harmonic.phase == "embedding_layer" else ()
    if config.harmonic.init_from is not None:
        # a zoo model (e.g. pretrained weights) is built at this run's size; anything else is taken as it is
        zoo_size = (dict(embedding_dim=config.embedding_dim, input_shape=(h, w, 3), batch_norm=config.batch_norm)
                    if config.harmonic.init_from in list_models() else {})
        source = load_old_model(config.harmonic.init_from, config.harmonic.init_weights, flag="init_from", **zoo_size)
        if tuple(source.input.shape[1:3]) != (h, w):
            raise ValueError(f"--init_from model takes {tuple(source.input.shape[1:3])} images, this run {(h, w)}.")
        copy_weights(source, embedding, head)
    if config.harmonic.phase == "embedding_layer":
        for layer in embedding.layers:
            layer.trainable = layer.name in head
    old = None
    if config.harmonic.old_embeddings == "in_step":
        old = load_old_model(config.harmonic.old_model, config.harmonic.old_weights)
    model = HarmonicTripletModel(embedding, old, margin=config.margin, strategy=config.strategy,
                                 fallback=config.fallback, reduction=config.reduction, seed=config.seed,
                                 candidates=config.harmonic.candidates, anchors=config.harmonic.anchors,
                                 same_image_weight=config.harmonic.same_image_weight)
    model.compile(optimizer=make_optimizer(config), jit_compile=False)
    model(tf.zeros((1, h, w, 3)))
    model.optimizer.build(model.trainable_variables)
    return model


def harmonic_training_dataset(config: TrainConfig, index: ImageIndex, composition: BatchComposition,
                              start_step: int = 0, old_embeddings: np.ndarray | None = None,
                              prefetch: int = 2) -> tuple[tf.data.Dataset, ImageBatchLoader]:
    """``training_dataset`` plus each image's precomputed old embedding: ``((images, old), labels)`` per step.

    Same batches and augmentation as ``facenet_tf.data.pipeline.training_dataset`` for the same (seed, step).
    With ``config.harmonic.views`` = K > 1, ``old_embeddings`` (if given) is (N, K, D) and the augmentation is
    instead one of the K fixed views of each image (``view_boxes``), drawn per image and step from (seed, step),
    with that view's old embedding."""
    views = config.harmonic.views
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
    if config.harmonic.fit_alignment:
        loader = AlignedCropLoader(index, load_size, config.harmonic.fit_alignment, config.image_size, config.seed)
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


class HarmonicHook:
    """``facenet_tf.train.loop.TrainingHook`` of harmonic runs: builds the ``HarmonicTripletModel``, gives batches
    with their precomputed old embeddings, and solves phase 1 in closed form before the first step
    (``--harmonic_solver=least_squares``)."""

    def build_model(self, config: TrainConfig) -> HarmonicTripletModel:
        return build_harmonic_model(config)

    def training_dataset(self, config: TrainConfig, index: ImageIndex, composition: BatchComposition,
                         start_step: int):
        if config.harmonic.old_embeddings != "precomputed":
            return None  # the old model embeds the plain pipeline's batches inside each step
        return harmonic_training_dataset(config, index, composition, start_step)

    def before_fit(self, model: HarmonicTripletModel, config: TrainConfig, index: ImageIndex | None,
                   start_step: int) -> dict:
        if config.harmonic.solver != "least_squares" or start_step:  # phase 1 in closed form, before any step
            return {}
        t0 = time.perf_counter()
        stats = solve_head_least_squares(model.embedding_model, config, index)
        stats["seconds"] = round(time.perf_counter() - t0, 1)
        return {"least_squares": stats}


def train(config: TrainConfig, strategy: tf.distribute.Strategy | None = None, verbose: int = 1, *,
          lfw_root: str | os.PathLike | None = None) -> dict:
    """``facenet_tf.train.loop.train`` of any ``config``: with ``HarmonicHook`` when ``config.harmonic`` is set;
    ``lfw_root`` as there (the LFW root the command resolved)."""
    return loop.train(config, strategy, verbose, hook=None if config.harmonic is None else HarmonicHook(),
                      lfw_root=lfw_root)
