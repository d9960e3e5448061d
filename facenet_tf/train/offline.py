"""Offline triplet selection during training (paper, "Triplet loss and selection": "generate triplets offline every n
steps, using the most recent network checkpoint and computing the argmin and argmax on a subset of the data").

Every ``offline_every`` steps (at step r = 0, n, 2n, ...; ``OfflineRefresh``, a callback, runs it between steps with
the weights after r steps) an identity-balanced subset of ``offline_subset`` training images, a pure function of
(seed, r), is embedded (centre crop of the training load size, no augmentation) and
``facenet_tf.losses.offline.select_triplets`` picks each anchor's hard positive and its semi-hard (or hardest)
negative. Steps r .. r+n-1 then train on triplets drawn from that selection, each batch a pure function of
(seed, step) and the selection: T = (P*K+R) // 3 triplets, the batch ``[anchors; positives; negatives]`` (3T images).
With ``strategy="offline"`` the loss is the hinge of exactly those triplets; with an online strategy the batch is
mined online as usual (the paper's combination of the two).

The selection in force is part of the checkpoint (``OfflineState``: the step it was made at and its triplets as image
indices), saved with the weights, so a run resumed after ``kill -9`` trains on the same triplets as one never stopped.

Subset and batches are drawn while the model trains (``tf.data`` prefetches): ``OfflineSelector.batch`` of a step
waits until the selection of that step's refresh is published; ``close`` releases a waiting input thread when
training stops early.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import numpy as np
import tensorflow as tf
import keras

from facenet_tf.data.pipeline import ImageBatchLoader, ImageIndex
from facenet_tf.data.sampling import BatchComposition, IdentityBalancedSampler
from facenet_tf.losses.offline import select_triplets
from facenet_tf.train.config import TrainConfig

logger = logging.getLogger(__name__)

SUBSET_STREAM = 1  # IdentityBalancedSampler stream of the subsets (0: the training batches of online runs)
BATCH_STREAM = 2   # numpy stream of the triplets drawn per step


def subset_composition(config: TrainConfig) -> BatchComposition:
    """The subset is drawn as a training batch is, scaled up to ``offline_subset`` images: K faces per identity and
    the batch's share of extra negatives."""
    k = config.faces_per_identity
    batch = config.identities_per_batch * k + config.extra_negatives
    extra = round(config.offline_subset * config.extra_negatives / batch)
    identities = max(1, (config.offline_subset - extra) // k)
    return BatchComposition(identities, k, config.offline_subset - identities * k)


class OfflineState(tf.Module):
    """The selection in force, tracked by the run's checkpoint: ``step`` it was made at (-1: none yet), ``count``
    triplets in the first rows of ``triplets`` ((offline_subset, 3) int64 image indices: anchor, positive, negative)."""

    def __init__(self, capacity: int):
        super().__init__(name="offline_selection")
        self.step = tf.Variable(-1, dtype=tf.int64, trainable=False, name="step")
        self.count = tf.Variable(0, dtype=tf.int64, trainable=False, name="count")
        self.triplets = tf.Variable(tf.zeros([capacity, 3], tf.int64), trainable=False, name="triplets")

    def set(self, step: int, triplets: np.ndarray) -> None:
        padded = np.zeros(self.triplets.shape, np.int64)
        padded[:len(triplets)] = triplets
        self.triplets.assign(padded)
        self.count.assign(len(triplets))
        self.step.assign(step)

    def get(self) -> tuple[int, np.ndarray]:
        return int(self.step.numpy()), self.triplets.numpy()[:int(self.count.numpy())]


class OfflineSelector:
    """Subsets, selections and batches of one run (module docstring). ``sampler``-like for
    ``facenet_tf.data.pipeline.training_dataset``: ``batch(step)`` (image indices) and ``batch_size``."""

    def __init__(self, config: TrainConfig, index: ImageIndex):
        if not config.offline_every:
            raise ValueError("--offline_every: 0 means no offline selection; nothing to select.")
        if config.offline_subset > len(index):
            raise ValueError(f"--offline_subset: expected at most the {len(index)} training images, got "
                             f"{config.offline_subset}.")
        self.config = config
        self.index = index
        self.every = config.offline_every
        self.triplets_per_batch = config.offline_triplets_per_batch
        self.batch_size = 3 * self.triplets_per_batch
        try:
            self.subsets = IdentityBalancedSampler(index.labels, subset_composition(config), config.seed,
                                                   stream=SUBSET_STREAM)
        except ValueError as error:
            raise ValueError(f"--offline_subset={config.offline_subset}: {error}") from None
        self.state = OfflineState(config.offline_subset)
        h, w = config.image_size
        self._load_size = (round(h * (1 + config.jitter)), round(w * (1 + config.jitter)))
        self._loader = ImageBatchLoader(index, self._load_size, config.crop_fraction, seed=config.seed)
        self._condition = threading.Condition()
        self._published: tuple[int, np.ndarray] | None = None
        self._closed = False
        self._writer = None
        self._embed = None  # (model, its traced inference call)
        self.records: list[dict] = []

    def refresh_step(self, step: int) -> int:
        """The step of the selection that step ``step`` trains on."""
        return step - step % self.every

    # The input side (tf.data's thread).
    def batch(self, step: int) -> np.ndarray:
        """Image indices of step ``step``: ``[anchors; positives; negatives]`` of T triplets drawn from the selection
        of ``refresh_step(step)`` (without replacement when it has T or more), waiting until it is published."""
        wanted = self.refresh_step(step)
        with self._condition:
            while not self._closed and (self._published is None or self._published[0] != wanted):
                if self._published is not None and self._published[0] > wanted:
                    raise RuntimeError(f"offline selection of step {self._published[0]} published before step "
                                       f"{step} was drawn")
                self._condition.wait()
            if self._closed:
                raise RuntimeError("offline selection closed: training stopped")
            triplets = self._published[1]
        rng = np.random.default_rng([self.config.seed, int(step), BATCH_STREAM])
        chosen = rng.choice(len(triplets), size=self.triplets_per_batch, replace=len(triplets) < self.triplets_per_batch)
        return triplets[chosen].T.reshape(-1)

    def close(self) -> None:
        """Releases an input thread waiting for a selection that will never come (training stopped)."""
        with self._condition:
            self._closed = True
            self._condition.notify_all()

    def _publish(self, step: int, triplets: np.ndarray) -> None:
        with self._condition:
            self._published = (step, triplets)
            self._condition.notify_all()

    # The training side (the callback, between steps).
    def subset(self, step: int) -> tuple[np.ndarray, np.ndarray]:
        """``(images float32 (N, H, W, 3), image indices (N,))`` of the subset of refresh ``step``: the centre of the
        training load size (what a training crop sees, without augmentation); unreadable images are replaced as in
        training (the indices say which were used)."""
        images, _, used = self._loader.load_indexed(self.subsets.batch(step))
        h, w = self.config.image_size
        top, left = (self._load_size[0] - h) // 2, (self._load_size[1] - w) // 2
        return images[:, top:top + h, left:left + w].astype(np.float32), used

    def refresh(self, model: keras.Model, step: int) -> dict:
        """Embeds the subset of ``step`` with ``model``'s current weights, selects, stores (``state``), publishes and
        logs; returns the record (step, seconds and ``OfflineSelection.stats``)."""
        t0 = time.perf_counter()
        images, used = self.subset(step)
        if self._embed is None or self._embed[0] is not model:  # traced once per run, unless the model runs eagerly
            call = lambda x: model(x, training=False)  # noqa: E731
            self._embed = (model, call if model.run_eagerly else tf.function(call, reduce_retracing=True))
        embed = self._embed[1]
        chunk = self.config.identities_per_batch * self.config.faces_per_identity + self.config.extra_negatives
        embeddings = np.concatenate([np.asarray(embed(tf.constant(images[i:i + chunk])), np.float32)
                                     for i in range(0, len(images), chunk)])
        if not np.isfinite(embeddings).all():
            raise ValueError(f"offline selection at step {step}: non-finite embeddings (the network diverged); lower "
                             "--learning_rate and run again.")
        selection = select_triplets(embeddings, self.index.labels[used], self.config.offline_negative,
                                    self.config.fallback)
        if not len(selection):
            raise ValueError(f"--offline_subset={self.config.offline_subset}: the selection at step {step} found no "
                             f"triplet (--fallback={self.config.fallback}); use --fallback=farthest or a larger subset.")
        triplets = np.stack([used[selection.anchors], used[selection.positives], used[selection.negatives]], axis=1)
        self.state.set(step, triplets)
        self._publish(step, triplets)
        record = {"step": step, **selection.stats(), "seconds": round(time.perf_counter() - t0, 2)}
        self.records.append(record)
        self._log(record)
        return record

    def resume(self, model: keras.Model, step: int) -> None:
        """At the start of training at ``step``: publishes the checkpointed selection when it is the one of
        ``refresh_step(step)``, else (a new run, or a checkpoint at a refresh step written without it) selects with
        the current weights."""
        wanted = self.refresh_step(step)
        saved_step, triplets = self.state.get()
        if saved_step == wanted and len(triplets):
            self._publish(wanted, triplets)
            return
        if wanted != step:
            logger.warning("The checkpoint at step %d holds no offline selection of step %d; selecting with the "
                           "weights of step %d.", step, wanted, step)
        self.refresh(model, wanted)

    def _log(self, record: dict) -> None:
        logger.info("Offline selection at step %d: %d triplets of %d anchors, mean D(a,p) %.4f, mean D(a,n) %.4f, "
                    "semi-hard %.3f (%.1f s)", record["step"], record["num_triplets"], record["candidates"],
                    record["mean_d_ap"], record["mean_d_an"], record["semi_hard_fraction"], record["seconds"])
        if self._writer is not None:
            with self._writer.as_default():
                for key in ("num_triplets", "candidates", "mean_d_ap", "mean_d_an", "semi_hard_fraction"):
                    tf.summary.scalar(f"offline/{key}", record[key], step=record["step"])
            self._writer.flush()

    def callback(self, logs_dir: str | Path | None, total_steps: int) -> "OfflineRefresh":
        """The callback that runs the refreshes; ``logs_dir``: TensorBoard folder (its ``train`` run) or None."""
        if logs_dir is not None:
            self._writer = tf.summary.create_file_writer(str(Path(logs_dir) / "train"))
        return OfflineRefresh(self, total_steps)


class OfflineRefresh(keras.callbacks.Callback):
    """Publishes the selection in force when training starts and selects anew after every ``offline_every``-th step
    (before the checkpoint of that step is written, so the checkpoint holds it), except after the last step."""

    def __init__(self, selector: OfflineSelector, total_steps: int):
        super().__init__()
        self.selector = selector
        self.total_steps = total_steps

    def _guarded(self, work) -> None:
        try:
            work()
        except BaseException:
            self.selector.close()
            raise

    def on_train_begin(self, logs=None):
        step = int(self.model.optimizer.iterations.numpy())
        self._guarded(lambda: self.selector.resume(self.model, step))

    def on_train_batch_end(self, batch, logs=None):
        step = int(self.model.optimizer.iterations.numpy())
        if step % self.selector.every == 0 and step < self.total_steps:
            self._guarded(lambda: self.selector.refresh(self.model, step))

    def on_train_end(self, logs=None):
        self.selector.close()
