"""The training run: data, model, optimizer, checkpoints that survive ``kill -9``, TensorBoard, final model.

A workdir holds ``config.json`` (the resolved ``TrainConfig``), ``checkpoints/`` (``tf.train.CheckpointManager``:
model + optimizer state, written every ``checkpoint_every`` steps; TensorFlow updates the index file last and
atomically, so a kill mid-write leaves the previous checkpoint current), ``logs/`` (TensorBoard) and, at the end,
``embedding_model.keras`` (the zoo model with its trained weights, written to a temporary file then renamed).
Running again with the same workdir resumes from the latest checkpoint; the data stream resumes at the same step
because every batch is a pure function of (seed, step).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from pathlib import Path

import keras
import tensorflow as tf

from facenet_tf import paths
from facenet_tf.data.lfw import load_pairs, training_identities
from facenet_tf.data.pipeline import ImageIndex, training_dataset
from facenet_tf.data.sampling import BatchComposition
from facenet_tf.data.tfrecord import is_tfrecord_dir, read_metadata, tfrecord_training_dataset
from facenet_tf.models import create_model
from facenet_tf.train.config import TrainConfig
from facenet_tf.train.distribute import is_chief
from facenet_tf.train.model import TripletModel

logger = logging.getLogger(__name__)

EMBEDDING_MODEL_FILE = "embedding_model.keras"


def make_optimizer(config: TrainConfig) -> keras.optimizers.Optimizer:
    """The paper's AdaGrad at 0.05 by default; ``lr_decay_steps`` lowers the rate to finalise (paper)."""
    lr = config.learning_rate
    if config.lr_decay_steps:
        values = [config.learning_rate * config.lr_decay_factor ** k for k in range(len(config.lr_decay_steps) + 1)]
        lr = keras.optimizers.schedules.PiecewiseConstantDecay(list(config.lr_decay_steps), values)
    if config.optimizer == "adagrad":
        return keras.optimizers.Adagrad(lr)
    if config.optimizer == "sgd":
        return keras.optimizers.SGD(lr)
    if config.optimizer == "momentum":
        return keras.optimizers.SGD(lr, momentum=0.9)
    if config.optimizer == "adam":
        return keras.optimizers.Adam(lr)
    return keras.optimizers.RMSprop(lr)


def excluded_identities(config: TrainConfig) -> frozenset[str]:
    """Every identity named in the ``exclude_pairs`` files of a TFRecord-sourced run (names resolve against the LFW
    root: $FACENET_TF_LFW_DIR, then ../shared/data/lfw; paths are read as given)."""
    names: set[str] = set()
    for name in config.exclude_pairs:
        try:
            names |= load_pairs(name, check_exists=False).identities
        except FileNotFoundError as error:
            raise ValueError(f"--exclude_pairs={name}: {error} With a TFRecord --data_dir, give the pairs files' "
                             "paths, point $FACENET_TF_LFW_DIR at LFW, or pass --exclude_pairs= (none).") from None
    return frozenset(names)


def tfrecord_source(config: TrainConfig) -> tuple[frozenset[str], dict]:
    """The identities to leave out of a TFRecord set and the numbers worth logging."""
    metadata = read_metadata(config.data_dir)
    excluded = excluded_identities(config)
    info = {key: metadata[key] for key in ("identities", "images", "records", "identities_with_2_or_more_images")}
    info.update(source="tfrecord", tfrecord_dir=str(config.data_dir), excluded_pairs=list(config.exclude_pairs),
                identities_excluded=len(excluded), validation_identities=0, skipped=len(metadata["skipped"]))
    return excluded, info


def split_identities(config: TrainConfig) -> tuple[ImageIndex, ImageIndex | None, dict]:
    """Training (and validation) identities: the image tree minus every identity in ``exclude_pairs``."""
    root = paths.lfw_dir(config.data_dir)
    images_dir = paths.lfw_images_dir(root)
    excluded = [load_pairs(name, root=root, check_exists=False) for name in config.exclude_pairs]
    split = training_identities(images_dir, excluded)
    identities = split.identities
    validation = None
    if config.validation_identities:
        multi = sorted(name for name, images in identities.items() if len(images) >= 2)
        held = set(multi[:: max(1, len(multi) // config.validation_identities)][: config.validation_identities])
        validation = ImageIndex.from_identities({n: identities[n] for n in sorted(held)})
        identities = {n: v for n, v in identities.items() if n not in held}
    info = {**split.counts(), "excluded_pairs": list(config.exclude_pairs), "images_dir": str(images_dir),
            "validation_identities": 0 if validation is None else len(validation.names)}
    return ImageIndex.from_identities(identities), validation, info


def build_model(config: TrainConfig) -> TripletModel:
    if config.harmonic_with is not None:  # harmonic embeddings: the new model trained against a fixed old one
        from facenet_tf.train.harmonic import build_harmonic_model

        return build_harmonic_model(config)
    h, w = config.image_size
    embedding = create_model(config.model, embedding_dim=config.embedding_dim, input_shape=(h, w, 3),
                             batch_norm=config.batch_norm)
    model = TripletModel(embedding, margin=config.margin, strategy=config.strategy, fallback=config.fallback,
                         reduction=config.reduction, seed=config.seed)
    model.compile(optimizer=make_optimizer(config), jit_compile=False)
    model(tf.zeros((1, h, w, 3)))  # creates the variables
    model.optimizer.build(model.trainable_variables)
    return model


class ThroughputAndCheckpoint(keras.callbacks.Callback):
    """Adds images/s to the progress bar and saves a checkpoint at the end of every ``checkpoint_every`` steps."""

    def __init__(self, manager: tf.train.CheckpointManager, batch_size: int, loader=None):
        super().__init__()
        self.manager = manager
        self.batch_size = batch_size
        self.loader = loader
        self._t0, self._seen = None, 0

    def on_train_batch_end(self, batch, logs=None):
        now = time.perf_counter()
        if self._t0 is None:  # the clock starts after the first batch of an epoch (tracing, pipeline warm-up)
            self._t0, self._seen = now, 0
            return
        self._seen += self.batch_size
        if logs is not None:
            logs["images_per_s"] = self._seen / max(now - self._t0, 1e-9)

    def on_epoch_end(self, epoch, logs=None):
        step = int(self.model.optimizer.iterations.numpy())
        self.manager.save(checkpoint_number=step)
        if logs is not None:
            if self._seen:
                logs["images_per_s"] = self._seen / max(time.perf_counter() - self._t0, 1e-9)
            if self.loader is not None:
                logs["skipped_images"] = self.loader.skipped
        self._t0 = None


def _check_resume_config(workdir: Path, config: TrainConfig) -> None:
    path = workdir / "config.json"
    if path.is_file():
        previous = TrainConfig.from_json(path.read_text())
        changed = {k: (getattr(previous, k), v) for k, v in dataclasses.asdict(config).items()
                   if k not in ("steps", "workdir") and getattr(previous, k) != getattr(config, k)
                   and not (isinstance(v, list) and tuple(v) == getattr(previous, k))}
        if changed:
            details = ", ".join(f"--{k}: was {a!r}, now {b!r}" for k, (a, b) in changed.items())
            raise ValueError(f"'{workdir}' holds a run with other settings ({details}). Use a new --workdir, or the "
                             "same flags to resume (only --steps may change).")


def train(config: TrainConfig, strategy: tf.distribute.Strategy | None = None, verbose: int = 1) -> dict:
    """Trains (or resumes) the run described by ``config``; returns a summary dict (also ``summary.json``)."""
    strategy = strategy or tf.distribute.get_strategy()
    chief = is_chief(strategy)
    workdir = Path(config.workdir)
    if not chief:  # non-chief workers write their share of each checkpoint to scratch space
        workdir = workdir / f".worker-{strategy.cluster_resolver.task_id}"
    workdir.mkdir(parents=True, exist_ok=True)
    _check_resume_config(workdir, config)
    (workdir / "config.json").write_text(config.to_json())

    tfrecords = is_tfrecord_dir(config.data_dir)
    if tfrecords:
        excluded, data_info = tfrecord_source(config)
        train_index = validation_index = None
    else:
        train_index, validation_index, data_info = split_identities(config)
    composition = BatchComposition(config.identities_per_batch, config.faces_per_identity, config.extra_negatives)
    replicas = strategy.num_replicas_in_sync
    if composition.batch_size % replicas:
        raise ValueError(f"The batch size {composition.batch_size} (P*K+R) must divide evenly over {replicas} "
                         "replicas.")
    with strategy.scope():
        model = build_model(config)

    checkpoint = tf.train.Checkpoint(model=model, optimizer=model.optimizer)
    manager = tf.train.CheckpointManager(checkpoint, str(workdir / "checkpoints"), config.keep_checkpoints)
    if manager.latest_checkpoint:
        checkpoint.restore(manager.latest_checkpoint).assert_existing_objects_matched()
        logger.info("Resumed from %s", manager.latest_checkpoint)
    start = int(model.optimizer.iterations.numpy())
    if start % config.checkpoint_every:
        raise ValueError(f"The latest checkpoint is at step {start}, not a multiple of --checkpoint_every="
                         f"{config.checkpoint_every}; resume with the --checkpoint_every it was written with.")

    summary = {"data": data_info, "start_step": start, "workdir": str(workdir)}
    if config.harmonic_solver == "least_squares" and start == 0:  # phase 1 in closed form, before any step
        from facenet_tf.train.harmonic import solve_head_least_squares

        t0 = time.perf_counter()
        summary["least_squares"] = solve_head_least_squares(model.embedding_model, config, train_index)
        summary["least_squares"]["seconds"] = round(time.perf_counter() - t0, 1)
    if start < config.steps:
        if tfrecords:
            dataset = tfrecord_training_dataset(config.data_dir, config.image_size, composition, config.seed, start,
                                                config.crop_fraction, config.jitter, config.flip, excluded)
            loader = None
        elif config.harmonic_with is not None and config.harmonic_old_embeddings == "precomputed":
            from facenet_tf.train.harmonic import harmonic_training_dataset

            dataset, loader = harmonic_training_dataset(config, train_index, composition, start)
        else:
            dataset, loader = training_dataset(train_index, config.image_size, composition, config.seed, start,
                                               config.crop_fraction, config.jitter, config.flip)
        validation = None
        if validation_index is not None:
            val_comp = BatchComposition(min(config.identities_per_batch, len(validation_index.names) // 2),
                                        config.faces_per_identity, config.extra_negatives)
            validation, _ = training_dataset(validation_index, config.image_size, val_comp, config.seed + 1,
                                             jitter=0.0, flip=False, crop_fraction=config.crop_fraction)
            validation = validation.take(config.validation_steps)
        callbacks = [ThroughputAndCheckpoint(manager, composition.batch_size, loader)]
        if chief:
            callbacks.append(keras.callbacks.TensorBoard(str(workdir / "logs"),
                                                         update_freq=max(1, config.checkpoint_every // 10)))
        t0 = time.perf_counter()
        history = model.fit(
            dataset,  # global batches; under a strategy, Keras splits each across the replicas
            steps_per_epoch=config.checkpoint_every, epochs=config.steps // config.checkpoint_every,
            initial_epoch=start // config.checkpoint_every, validation_data=validation, callbacks=callbacks,
            verbose=verbose)
        summary.update(seconds=round(time.perf_counter() - t0, 1),
                       skipped_images=data_info.get("skipped", 0) if loader is None else loader.skipped,
                       history={k: [float(x) for x in v] for k, v in history.history.items()})
    summary["end_step"] = int(model.optimizer.iterations.numpy())
    summary["replicas"] = replicas
    save_embedding_model(model.embedding_model, workdir / EMBEDDING_MODEL_FILE)
    (workdir / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def save_embedding_model(model: keras.Model, path: Path) -> None:
    """Writes ``model`` as ``.keras`` atomically: a temporary file in the same directory, then a rename."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}.keras")
    try:
        model.save(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def load_embedding_model(workdir: str | Path, initial: bool = False) -> keras.Model:
    """The trained embedding model of a workdir: ``embedding_model.keras`` if the run finished, else the latest
    checkpoint's weights in a model rebuilt from ``config.json``.

    ``initial=True``: the run's network as it was before its first step (rebuilt from ``config.json`` with the
    run's seed, as ``experiments/train.py`` builds it) — the untrained baseline of the same run.
    """
    workdir = Path(workdir)
    config = TrainConfig.load(workdir)
    if initial:
        keras.utils.set_random_seed(config.seed)
        return build_model(config).embedding_model
    final = workdir / EMBEDDING_MODEL_FILE
    if final.is_file():
        return keras.saving.load_model(final)
    model = build_model(config)
    manager = tf.train.CheckpointManager(tf.train.Checkpoint(model=model, optimizer=model.optimizer),
                                         str(workdir / "checkpoints"), 1)
    if not manager.latest_checkpoint:
        raise FileNotFoundError(f"'{workdir}' has neither {EMBEDDING_MODEL_FILE} nor a checkpoint.")
    manager.checkpoint.restore(manager.latest_checkpoint).expect_partial()
    return model.embedding_model
