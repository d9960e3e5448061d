"""The training run: data, model, optimizer, checkpoints that survive ``kill -9``, TensorBoard, final model.

A workdir holds ``config.json`` (the resolved ``TrainConfig``), ``checkpoints/`` (``tf.train.CheckpointManager``:
model + optimizer state, written every ``checkpoint_every`` steps; TensorFlow updates the index file last and
atomically, so a kill mid-write leaves the previous checkpoint current), ``logs/`` (TensorBoard) and, at the end,
``embedding_model.keras`` (the zoo model with its trained weights, written to a temporary file then renamed).
Running again with the same workdir resumes from the latest checkpoint; the data stream resumes at the same step
because every batch is a pure function of (seed, step) (with ``offline_every``: and of the offline selection in force,
which the checkpoint holds, ``facenet_tf.train.offline``).

Nothing is lost and no failure is silent: ``config.json`` is written only once every check has passed (data,
identities, model, checkpoint), so a failed start leaves nothing that blocks the corrected command; a non-finite
value in a step stops the run with ``TrainingDiverged`` naming the step, and no checkpoint or model with
non-finite weights is ever written (the last checkpoint stays the last finite one); a checkpoint that cannot be
written (full disk) raises ``CheckpointWriteError`` and leaves no ``ckpt-N_temp`` folder behind.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import logging
import os
import re
import shutil
import time
from pathlib import Path
from typing import Any, Protocol

import keras
import numpy as np
import tensorflow as tf

from facenet_tf import paths
from facenet_tf.atomic import atomic_file, check_output, write_json_atomically, write_text_atomically
from facenet_tf.data.lfw import identity_subset, load_pairs, training_identities
from facenet_tf.data.pipeline import ImageIndex, training_dataset
from facenet_tf.data.sampling import BatchComposition, IdentityBalancedSampler
from facenet_tf.data.tfds_source import (TfdsIndex, TfdsSourceError, index_split, is_tfds_source, open_split,
                                         tfds_training_dataset)
from facenet_tf.data.tfrecord import is_tfrecord_dir, read_metadata, tfrecord_training_dataset
from facenet_tf.models import create_model
from facenet_tf.models.source import (CHECKPOINTS_DIR, FINAL_MODEL, WORKDIR_CONFIG, build_workdir_network,
                                     load_workdir)
from facenet_tf.train.config import TrainConfig
from facenet_tf.train.optimizers import make_optimizer
from facenet_tf.train.distribute import is_chief
from facenet_tf.train.model import NON_FINITE, TripletModel
from facenet_tf.train.offline import OfflineSelector

logger = logging.getLogger(__name__)

EMBEDDING_MODEL_FILE = FINAL_MODEL  # the workdir layout is owned by facenet_tf.models.source
CHECKPOINT_DIR = CHECKPOINTS_DIR


class TrainingHook(Protocol):
    """What a variant of training adds to ``train``, which itself knows only plain triplet training (and never
    imports a variant): ``facenet_tf.harmonic.training.HarmonicHook`` is the one there is."""

    def build_model(self, config: TrainConfig) -> TripletModel:
        """The compiled, built model of ``config`` (in place of ``build_model``)."""

    def training_dataset(self, config: TrainConfig, index: ImageIndex, composition: BatchComposition,
                         start_step: int) -> tuple[tf.data.Dataset, Any] | None:
        """``(dataset, loader)`` from an image tree, starting at ``start_step``; None: the plain
        ``facenet_tf.data.pipeline.training_dataset``."""

    def before_fit(self, model: TripletModel, config: TrainConfig, index: ImageIndex | None,
                   start_step: int) -> dict:
        """Work on the built (or restored) model before the first step of this call, e.g. a closed-form solve;
        returns entries for the summary."""


class TrainingDiverged(RuntimeError):
    """A training step met a non-finite value (``what``: weights, embeddings, loss or gradients). Nothing
    non-finite was written: ``last_checkpoint`` (None: none yet) is the last finite state of the run."""

    def __init__(self, step: int, what: str, last_checkpoint: str | None):
        self.step, self.what, self.last_checkpoint = step, what, last_checkpoint
        last = f"last finite checkpoint: {last_checkpoint}" if last_checkpoint else "no checkpoint was written"
        super().__init__(f"training diverged at step {step}: non-finite {what}; {last}. Nothing non-finite was "
                         "saved; lower --learning_rate (or check the data) and run again.")


class CheckpointWriteError(OSError):
    """A checkpoint could not be written (full disk, quota, I/O error); the earlier checkpoints are intact."""


def excluded_identities(config: TrainConfig, lfw_root: str | os.PathLike | None = None) -> frozenset[str]:
    """Every identity named in the ``exclude_pairs`` files of a TFRecord- or tfds-sourced run (names resolve against the
    resolved LFW root ``lfw_root``; paths are read as given)."""
    names: set[str] = set()
    for name in config.exclude_pairs:
        try:
            names |= load_pairs(name, lfw_root, check_exists=False).identities
        except FileNotFoundError as error:
            raise ValueError(f"--exclude_pairs={name}: {error} With a TFRecord or tfds --data_dir, give the pairs "
                             "files' paths, point $FACENET_TF_LFW_DIR at LFW, or pass --exclude_pairs= (none)."
                             ) from None
    return frozenset(names)


def tfrecord_source(config: TrainConfig, lfw_root: str | os.PathLike | None = None) -> tuple[frozenset[str], dict]:
    """The identities to leave out of a TFRecord set and the numbers worth logging."""
    metadata = read_metadata(config.data_dir)
    excluded = excluded_identities(config, lfw_root)
    info = {key: metadata[key] for key in ("identities", "images", "records", "identities_with_2_or_more_images")}
    info.update(source="tfrecord", tfrecord_dir=str(config.data_dir), excluded_pairs=list(config.exclude_pairs),
                identities_excluded=len(excluded), validation_identities=0, skipped=len(metadata["skipped"]))
    return excluded, info


def tfds_source(config: TrainConfig, composition: BatchComposition, lfw_root: str | os.PathLike | None = None
                ) -> tuple[TfdsIndex, dict]:
    """The indexed tfds split of ``config.data_dir`` (``tfds:NAME/SPLIT``) without the identities of
    ``exclude_pairs`` (then the ``identity_fraction`` share of those left), checked to give the run's batches; and
    the numbers worth logging."""
    split = open_split(config.data_dir, config.tfds_data_dir, config.tfds_image_feature, config.tfds_label_feature)
    index = index_split(split)
    before = index.counts()
    logger.info("%s: %d images of %d identities, indexed in %.1f s", config.data_dir, before["images"],
                before["identities"], index.seconds)
    index, n_excluded = index.without(excluded_identities(config, lfw_root))
    index = index.subset(config.identity_fraction, config.seed)
    try:
        IdentityBalancedSampler(index.labels, composition, config.seed)
    except ValueError as error:
        raise TfdsSourceError(f"--data_dir={config.data_dir}: cannot train on it: {error}") from None
    info = {**index.counts(), "source": "tfds", "tfds": f"{split.name}/{split.split}", "tfds_version": split.version,
            "tfds_data_dir": split.data_dir, "image_feature": split.image_feature,
            "label_feature": f"{split.label_feature} ({split.label_kind})", "images_before_exclusion": before["images"],
            "index_seconds": index.seconds, "excluded_pairs": list(config.exclude_pairs),
            "identities_excluded": n_excluded, "identity_fraction": config.identity_fraction,
            "validation_identities": 0, "skipped": 0}
    return index, info


def split_identities(config: TrainConfig, lfw_root: str | os.PathLike | None = None
                     ) -> tuple[ImageIndex, ImageIndex | None, dict]:
    """Training (and validation) identities: the image tree minus every identity in ``exclude_pairs``. The tree is
    ``config.data_dir``, or the resolved LFW root ``lfw_root`` when that is None (``config.json`` stores None for
    "the LFW root"); pairs names resolve against the same root. ``identity_fraction`` < 1 keeps a share of the
    training identities (``identity_subset`` of ``seed``: seeded and nested); the counts logged are then of it."""
    try:
        root = Path(config.data_dir).expanduser() if config.data_dir else lfw_root
        images_dir = paths.lfw_images_dir(root)
    except FileNotFoundError as error:
        raise FileNotFoundError(f"--data_dir: {error}") from None
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
    if config.identity_fraction < 1:
        identities = {n: identities[n] for n in identity_subset(identities, config.identity_fraction, config.seed)}
        info.update(identity_fraction=config.identity_fraction, identities=len(identities),
                    images=sum(len(v) for v in identities.values()),
                    **{f"identities_with_{k}_or_more_images": sum(len(v) >= k for v in identities.values())
                       for k in (2, 10)})
    return ImageIndex.from_identities(identities), validation, info


def validation_composition(config: TrainConfig, validation_index: ImageIndex) -> BatchComposition:
    return BatchComposition(min(config.identities_per_batch, len(validation_index.names) // 2),
                            config.faces_per_identity, config.extra_negatives)


def check_training_data(config: TrainConfig, train_index: ImageIndex, validation_index: ImageIndex | None,
                        composition: BatchComposition, images_dir: str) -> None:
    """Refuses, naming the data folder, an image tree that cannot give the run's batches (fewer than 2 identities
    with 2 or more images, fewer images than a batch), before anything is written."""
    held = f" (after holding out --validation_identities={config.validation_identities})" if validation_index else ""
    try:
        IdentityBalancedSampler(train_index.labels, composition, config.seed)
    except ValueError as error:
        raise ValueError(f"--data_dir '{images_dir}'{held}: cannot train on it: {error}") from None
    if validation_index is not None:
        try:
            IdentityBalancedSampler(validation_index.labels, validation_composition(config, validation_index),
                                    config.seed + 1)
        except ValueError as error:
            raise ValueError(f"--validation_identities={config.validation_identities}: the identities held out of "
                             f"'{images_dir}' cannot form a validation batch: {error}") from None


@contextlib.contextmanager
def dtype_policy(name: str):
    """Keras' global dtype policy set to ``name`` for the layers built inside, restored on exit."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def build_model(config: TrainConfig) -> TripletModel:
    """The compiled, built triplet model of ``config``. ``mixed_precision``: its layers compute in float16 (the
    embeddings stay float32: ``L2Normalize`` computes in float32) and ``compile`` wraps the optimizer in a
    ``LossScaleOptimizer`` (``auto_scale_loss``: the model's policy is mixed_float16)."""
    h, w = config.image_size
    with dtype_policy("mixed_float16" if config.mixed_precision else "float32"):
        embedding = create_model(config.model, embedding_dim=config.embedding_dim, input_shape=(h, w, 3),
                                 batch_norm=config.batch_norm)
        model = TripletModel(embedding, margin=config.margin, strategy=config.strategy, fallback=config.fallback,
                             reduction=config.reduction, seed=config.seed)
    model.compile(optimizer=make_optimizer(config), jit_compile=False)
    model(tf.zeros((1, h, w, 3)))  # creates the variables
    model.optimizer.build(model.trainable_variables)
    return model


def float32_embedding_model(model: keras.Model, config: TrainConfig) -> keras.Model:
    """``model`` (the run's embedding network) as saved: with ``mixed_precision``, its weights in the float32
    network, so the saved model computes like one rebuilt from a checkpoint (``load_workdir``)."""
    if not config.mixed_precision:
        return model
    with dtype_policy("float32"):
        network = build_workdir_network(dataclasses.asdict(config))
    network.set_weights(model.get_weights())
    return network


def non_finite_variables(variables) -> list[str]:
    """The names (paths) of the variables holding a NaN or an infinity (read on the host)."""
    return [getattr(v, "path", v.name) for v in variables if not np.isfinite(np.asarray(v.numpy())).all()]


def check_finite(model: TripletModel, step: int, manager: tf.train.CheckpointManager) -> None:
    """Raises ``TrainingDiverged`` when a weight of ``model`` or a slot of its optimizer is not finite (batch norm
    statistics and optimizer accumulators included, which the train step's own check does not see)."""
    bad = non_finite_variables([*model.weights, *model.optimizer.variables])
    if bad:
        more = f" and {len(bad) - 3} more" if len(bad) > 3 else ""
        raise TrainingDiverged(step, f"weights ({', '.join(bad[:3])}{more})", manager.latest_checkpoint)


def remove_temporary_checkpoints(directory: str | os.PathLike) -> list[Path]:
    """Removes the ``<prefix>_temp`` folders TensorFlow writes a checkpoint's shards into before merging them, left
    behind by a save that failed (full disk) or was killed; returns what it removed."""
    directory = Path(directory)
    removed = sorted(p for p in directory.glob("*_temp") if p.is_dir()) if directory.is_dir() else []
    for path in removed:
        shutil.rmtree(path, ignore_errors=True)
    return removed


def save_checkpoint(model: TripletModel, manager: tf.train.CheckpointManager, step: int) -> None:
    """Saves the checkpoint of ``step`` after checking that every value in it is finite. A failed write removes
    its temporary folder and raises ``CheckpointWriteError`` naming the step and the intact last checkpoint."""
    check_finite(model, step, manager)
    try:
        manager.save(checkpoint_number=step)
    except (tf.errors.OpError, OSError) as error:
        remove_temporary_checkpoints(manager.directory)
        for partial in Path(manager.directory).glob(f"ckpt-{step}.*"):  # not in the index: a merge cut short
            partial.unlink(missing_ok=True)
        text = re.sub(r"\{\{function_node [^}]*\}\}\s*", "", getattr(error, "message", None) or str(error))
        full = isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT) or any(
            s in text for s in ("No space left", "File too large", "quota exceeded"))
        last = (f"the last checkpoint {Path(manager.latest_checkpoint).name} is intact" if manager.latest_checkpoint
                else "no earlier checkpoint exists")
        raise CheckpointWriteError(f"{'disk full' if full else 'write failed'} while writing the checkpoint at step "
                                   f"{step} into '{manager.directory}': {text.strip().splitlines()[0]}; {last}."
                                   ) from None


class DivergenceCheck(keras.callbacks.Callback):
    """Stops training at the first step whose ``non_finite`` log (``TripletModel.train_step``) is set, raising
    ``TrainingDiverged``; removes that key from the logs (the progress bar and history show the metrics only)."""

    def __init__(self, manager: tf.train.CheckpointManager):
        super().__init__()
        self.manager = manager

    def on_train_batch_end(self, batch, logs=None):
        code = int(round(float(np.ravel(logs.pop("non_finite", 0))[0]))) if logs else 0
        if code:
            step = int(self.model.optimizer.iterations.numpy())
            raise TrainingDiverged(step, NON_FINITE[code - 1], self.manager.latest_checkpoint)

    def on_epoch_end(self, epoch, logs=None):
        if logs:
            logs.pop("non_finite", None)


class ThroughputAndCheckpoint(keras.callbacks.Callback):
    """Adds images/s to the progress bar and saves a checkpoint (``save_checkpoint``) at the end of every
    ``checkpoint_every`` steps."""

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
        save_checkpoint(self.model, self.manager, int(self.model.optimizer.iterations.numpy()))
        if logs is not None:
            if self._seen:
                logs["images_per_s"] = self._seen / max(time.perf_counter() - self._t0, 1e-9)
            if self.loader is not None:
                logs["skipped_images"] = self.loader.skipped
        self._t0 = None


def summary_every(checkpoint_every: int) -> int:
    """Steps between the batch-level TensorBoard summaries: about a tenth of a checkpoint interval (one Keras epoch),
    and a divisor of it. Keras' TensorBoard callback records the epoch's means only on a step its ``update_freq``
    divides, so any other value loses the intervals that end elsewhere (75 steps at 7: all but the 7th)."""
    return max(d for d in range(1, max(1, checkpoint_every // 10) + 1) if checkpoint_every % d == 0)


def _check_resume_config(workdir: Path, config: TrainConfig) -> None:
    path = workdir / WORKDIR_CONFIG
    if path.is_file():
        before, now = TrainConfig.from_json(path.read_text()).flags(), config.flags()
        changed = {k: (before[k], v) for k, v in now.items() if k not in ("steps", "workdir") and before[k] != v
                   and not (isinstance(v, list) and tuple(v) == before[k])}
        if changed:
            details = ", ".join(f"--{k}: was {a!r}, now {b!r}" for k, (a, b) in changed.items())
            raise ValueError(f"'{workdir}' holds a run with other settings ({details}). Use a new --workdir, or the "
                             "same flags to resume (only --steps may change).")


def train(config: TrainConfig, strategy: tf.distribute.Strategy | None = None, verbose: int = 1,
          hook: TrainingHook | None = None, *, lfw_root: str | os.PathLike | None = None) -> dict:
    """Trains (or resumes) the run described by ``config``; returns a summary dict (also ``summary.json``).
    ``hook`` builds the model, the image-tree dataset and any work before the first step of a variant of training
    (``TrainingHook``); a harmonic ``config`` needs it (``facenet_tf.harmonic.training.train`` passes it).
    ``lfw_root``: the LFW root the command resolved (``facenet_tf.paths``): the image tree when ``config.data_dir``
    is None, and what pairs names in ``exclude_pairs`` resolve against for a TFRecord or tfds ``data_dir``
    (``tfds:NAME/SPLIT``: ``tfds_source``)."""
    if config.harmonic is not None and hook is None:
        raise ValueError("--harmonic_with: harmonic training runs through facenet_tf.harmonic.training.train "
                         "(loop.train alone trains plain triplet runs).")
    strategy = strategy or tf.distribute.get_strategy()
    chief = is_chief(strategy)
    workdir = Path(config.workdir)
    if not chief:  # non-chief workers write their share of each checkpoint to scratch space
        workdir = workdir / f".worker-{strategy.cluster_resolver.task_id}"
    # Every check first; the workdir is written only once they have all passed.
    check_output(workdir / WORKDIR_CONFIG, overwrite=True, flag="--workdir")
    _check_resume_config(workdir, config)
    tfrecords = is_tfrecord_dir(config.data_dir)
    tfds_index = None  # the indexed split of a tfds --data_dir
    composition = BatchComposition(config.identities_per_batch, config.faces_per_identity, config.extra_negatives,
                                   config.complete_groups)
    offline = None  # the offline triplet selection (--offline_every), also the sampler of the batches
    if tfrecords:
        excluded, data_info = tfrecord_source(config, lfw_root)
        train_index = validation_index = None
    elif is_tfds_source(config.data_dir):
        tfds_index, data_info = tfds_source(config, composition, lfw_root)
        train_index = validation_index = None
    else:
        train_index, validation_index, data_info = split_identities(config, lfw_root)
        check_training_data(config, train_index, validation_index, composition, data_info["images_dir"])
        if config.offline_every:
            offline = OfflineSelector(config, train_index)
    batch_size = composition.batch_size if offline is None else offline.batch_size
    replicas = strategy.num_replicas_in_sync
    if batch_size % replicas:
        raise ValueError(f"The batch size {batch_size} ({'P*K+R' if offline is None else '3 * ((P*K+R) // 3)'}) "
                         f"must divide evenly over {replicas} replicas.")
    with strategy.scope():
        model = build_model(config) if hook is None else hook.build_model(config)

    # The offline selection in force is saved with the weights: a resumed run trains on the same triplets.
    checkpoint = tf.train.Checkpoint(model=model, optimizer=model.optimizer,
                                     **({} if offline is None else {"offline": offline.state}))
    manager = tf.train.CheckpointManager(checkpoint, str(workdir / CHECKPOINT_DIR), config.keep_checkpoints)
    for leftover in remove_temporary_checkpoints(manager.directory):
        logger.warning("Removed '%s', the temporary folder of a checkpoint that was never completed.", leftover)
    if manager.latest_checkpoint:
        checkpoint.restore(manager.latest_checkpoint).assert_existing_objects_matched()
        logger.info("Resumed from %s", manager.latest_checkpoint)
    start = int(model.optimizer.iterations.numpy())
    if start % config.checkpoint_every:
        raise ValueError(f"The latest checkpoint is at step {start}, not a multiple of --checkpoint_every="
                         f"{config.checkpoint_every}; resume with the --checkpoint_every it was written with.")
    if start < config.steps:  # the datasets check their source too (a TFRecord set's identities)
        if tfrecords:
            dataset = tfrecord_training_dataset(config.data_dir, config.image_size, composition, config.seed, start,
                                                config.crop_fraction, config.jitter, config.flip, excluded)
            loader = None
        elif tfds_index is not None:
            dataset = tfds_training_dataset(tfds_index, config.image_size, composition, config.seed, start,
                                            config.crop_fraction, config.jitter, config.flip)
            loader = None
        else:
            made = None if hook is None else hook.training_dataset(config, train_index, composition, start)
            dataset, loader = made or training_dataset(train_index, config.image_size, composition, config.seed,
                                                       start, config.crop_fraction, config.jitter, config.flip,
                                                       sampler=offline)
        validation = None
        if validation_index is not None:
            validation, _ = training_dataset(validation_index, config.image_size,
                                             validation_composition(config, validation_index), config.seed + 1,
                                             jitter=0.0, flip=False, crop_fraction=config.crop_fraction)
            validation = validation.take(config.validation_steps)
    write_text_atomically(workdir / WORKDIR_CONFIG, config.to_json())

    summary = {"data": data_info, "start_step": start, "workdir": str(workdir)}
    if hook is not None:
        summary.update(hook.before_fit(model, config, train_index, start))
    if start < config.steps:
        callbacks = [DivergenceCheck(manager), ThroughputAndCheckpoint(manager, batch_size, loader)]
        if offline is not None:  # selects after the step, before that step's checkpoint is written
            callbacks.insert(1, offline.callback(workdir / "logs" if chief else None, config.steps))
        if chief:
            callbacks.append(keras.callbacks.TensorBoard(str(workdir / "logs"),
                                                         update_freq=summary_every(config.checkpoint_every)))
        t0 = time.perf_counter()
        try:
            history = model.fit(
                dataset,  # global batches; under a strategy, Keras splits each across the replicas
                steps_per_epoch=config.checkpoint_every, epochs=config.steps // config.checkpoint_every,
                initial_epoch=start // config.checkpoint_every, validation_data=validation, callbacks=callbacks,
                verbose=verbose)
        finally:
            if offline is not None:  # releases the input thread if it waits for a selection that will not come
                offline.close()
        summary.update(seconds=round(time.perf_counter() - t0, 1),
                       skipped_images=data_info.get("skipped", 0) if loader is None else loader.skipped,
                       history={k: [float(x) for x in v] for k, v in history.history.items()})
        if offline is not None:
            summary["offline"] = offline.records  # one entry per selection made in this call
    summary["end_step"] = int(model.optimizer.iterations.numpy())
    summary["replicas"] = replicas
    check_finite(model, summary["end_step"], manager)
    save_embedding_model(float32_embedding_model(model.embedding_model, config), workdir / EMBEDDING_MODEL_FILE)
    write_json_atomically(workdir / "summary.json", summary)
    return summary


def save_embedding_model(model: keras.Model, path: Path) -> None:
    """Writes ``model`` as ``.keras`` atomically: a temporary file in the same directory, then a rename."""
    with atomic_file(path, suffix=".keras") as tmp:
        model.save(tmp)


def load_embedding_model(workdir: str | Path, initial: bool = False) -> keras.Model:
    """The embedding model of a workdir (``facenet_tf.models.source.load_workdir``: the final model, else the
    latest checkpoint; ``initial=True``: the run's network before its first step)."""
    return load_workdir(workdir, at_init=initial)[0]
