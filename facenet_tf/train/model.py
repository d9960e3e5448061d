"""``TripletModel``: any zoo model trained with the triplet loss and online mining in a custom ``train_step``.

Paper, "Triplet loss and selection": embed the batch, mine triplets inside it (semi-hard by default), minimise
the hinge. Under a ``tf.distribute`` strategy every replica's embeddings and labels are **gathered before mining**,
so mining sees the global batch (the paper's ~1,800 faces do not fit one device): each replica computes the same
global loss, and the gradient flowing back through ``all_gather`` reaches each replica's own images.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from facenet_tf.losses import offline_triplet_loss_with_metrics, triplet_loss_with_metrics

# Metric name -> key in the dict returned by ``triplet_loss_with_metrics``.
METRIC_KEYS = {
    "loss": "loss",
    "active_fraction": "fraction_active",
    "num_triplets": "num_triplets",
    "mean_d_ap": "mean_positive_distance",
    "mean_d_an": "mean_negative_distance",
    "semi_hard_fraction": "fraction_semi_hard_found",
}


# What a train step found non-finite, in the order a divergence propagates: the log key ``non_finite`` holds the
# 1-based index of the first (0: every value finite), e.g. NaN input images show as "embeddings".
NON_FINITE = ("weights", "embeddings", "loss", "gradients")


def _all_finite(tensors) -> tf.Tensor:
    """One scalar: every value of ``tensors`` finite. A sum per tensor (NaN and inf survive a sum; finite values
    only overflow to inf when the network has diverged anyway) keeps this to one cheap reduction per tensor."""
    sums = [tf.reduce_sum(tf.cast(t, tf.float32)) for t in tensors if t is not None]
    return tf.reduce_all(tf.math.is_finite(tf.stack(sums))) if sums else tf.constant(True)


def _multi_worker(strategy: tf.distribute.Strategy) -> bool:
    in_multi_worker = getattr(strategy.extended, "_in_multi_worker_mode", None)
    return bool(in_multi_worker and in_multi_worker())


@keras.saving.register_keras_serializable(package="facenet_tf")
class TripletModel(keras.Model):
    """Wraps an embedding model (images -> L2-normalised embeddings) for triplet training.

    ``reduction="auto"`` averages the hinge over all anchor-positive pairs (TF Addons' convention), and for
    ``batch_all`` over the active triplets. Compile with ``jit_compile=False``: the number of positive slots the
    miner uses depends on the label values, which XLA cannot compile.

    ``fit``/``evaluate`` take ``(images, labels)`` batches, labels one integer identity per image. Every step
    reports: loss, fraction of active triplets (loss > 0), number of triplets, mean D(a,p), mean D(a,n) and the
    fraction of anchor-positive pairs that found a semi-hard negative. Calling the model returns embeddings.

    ``strategy="offline"``: no online mining; each training batch is T triplets chosen offline
    (``facenet_tf.train.offline``), laid out ``[anchors; positives; negatives]``, and the loss is their hinge
    (``offline_triplet_loss_with_metrics``). Validation batches (identity-balanced) are mined semi-hard.
    """

    def __init__(self, embedding_model: keras.Model, margin: float = 0.2, strategy: str = "semi_hard",
                 fallback: str = "farthest", reduction: str = "auto", seed: int = 0, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.embedding_model = embedding_model
        self.margin = margin
        self.strategy = strategy
        self.fallback = fallback
        self.reduction = reduction
        self.seed = seed
        self.trackers = {name: keras.metrics.Mean(name=name) for name in METRIC_KEYS}

    def call(self, images, training: bool = False):
        return self.embedding_model(images, training=training)

    @property
    def metrics(self):
        return list(self.trackers.values())

    def _mine(self, images, labels, training: bool):
        """Embeds the local batch, gathers the global batch across replicas, mines and returns the statistics."""
        embeddings = self(images, training=training)
        labels = tf.reshape(labels, [-1])
        context = tf.distribute.get_replica_context()
        if context is not None and context.num_replicas_in_sync > 1:
            embeddings = context.all_gather(embeddings, axis=0)
            labels = context.all_gather(labels, axis=0)
        reduction = None if self.reduction == "auto" else self.reduction
        strategy = self.strategy
        if strategy == "offline":
            if training:
                return offline_triplet_loss_with_metrics(embeddings, margin=self.margin, reduction=reduction)
            strategy = "semi_hard"
        seed = tf.stack([tf.constant(self.seed, tf.int64), tf.cast(self.optimizer.iterations, tf.int64)])
        return triplet_loss_with_metrics(labels, embeddings, margin=self.margin, strategy=strategy,
                                         fallback=self.fallback, reduction=reduction, seed=seed)

    def _output(self, results: dict) -> dict:
        if _multi_worker(tf.distribute.get_strategy()):
            # Keras 3.15 reduces step outputs across workers with reduce("MEAN", axis=0), which needs a batch axis;
            # every replica holds the same global value, so the mean of these length-1 vectors is that value.
            results = {name: tf.reshape(value, [1]) for name, value in results.items()}
        return results

    def _update(self, stats):
        for name, key in METRIC_KEYS.items():
            self.trackers[name].update_state(stats[key])
        return self._output({name: tracker.result() for name, tracker in self.trackers.items()})

    def train_step(self, data):
        """One step; the logs gain ``non_finite`` (see ``NON_FINITE``). A step with a non-finite value applies
        zero gradients instead (the trainable weights are not overwritten with NaN: unchanged for SGD, AdaGrad and
        RMSprop, moved by the momentum alone otherwise; batch norm statistics still see the batch); the caller
        stops training on it (``facenet_tf.train.loop.DivergenceCheck``). With a ``LossScaleOptimizer`` (mixed
        precision) the loss is scaled before the gradients are taken, and non-finite gradients alone are an
        overflow, not reported: that step changes no weight, halves the loss scale and still counts as a step."""
        images, labels, _ = keras.utils.unpack_x_y_sample_weight(data)
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        weights_finite = _all_finite(self.trainable_variables)
        with tf.GradientTape() as tape:
            stats = self._mine(images, labels, training=True)
            loss = stats["loss"]
            if self.losses:
                loss = loss + tf.add_n(self.losses)
            # Every replica computes the same global loss and the optimizer sums the replicas' gradients. A
            # LossScaleOptimizer (mixed precision) multiplies it by its loss scale (others leave it as it is).
            scaled = self.optimizer.scale_loss(loss / replicas)
        gradients = tape.gradient(scaled, self.trainable_variables)
        # With loss scaling, non-finite gradients are an overflow of the scaled loss, not a divergence: the
        # optimizer skips the step and halves the scale.
        loss_scaling = isinstance(self.optimizer, keras.optimizers.LossScaleOptimizer)
        # Embeddings: the mean distances are NaN as soon as an embedding of a mined pair is (losses.distances keeps
        # NaN); any other non-finite embedding makes the gradients non-finite.
        checks = [weights_finite, _all_finite([stats["mean_positive_distance"], stats["mean_negative_distance"]]),
                  tf.math.is_finite(loss), tf.logical_or(loss_scaling, _all_finite(gradients))]
        failed = tf.logical_not(tf.stack(checks))
        finite = tf.logical_not(tf.reduce_any(failed))
        non_finite = tf.where(finite, 0, tf.argmax(tf.cast(failed, tf.int32), output_type=tf.int32) + 1)
        gradients = [None if g is None else tf.where(finite, g, tf.zeros_like(g)) for g in gradients]
        if loss_scaling:
            # A skipped step does not count in the optimizer's iterations, which number the run's steps (data
            # stream, mining seeds, checkpoints): count it here.
            skipped = tf.logical_not(self.optimizer.check_finite(gradients))
        self.optimizer.apply(gradients, self.trainable_variables)
        if loss_scaling:
            self.optimizer.iterations.assign_add(tf.cast(skipped, self.optimizer.iterations.dtype))
        results = dict(self._update(stats))
        results.update(self._output({"non_finite": tf.cast(non_finite, tf.float32)}))
        return results

    def test_step(self, data):
        images, labels, _ = keras.utils.unpack_x_y_sample_weight(data)
        return self._update(self._mine(images, labels, training=False))

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        # Keras 3.15 averages the first batch across replicas here to build the model symbolically, which fails
        # under MultiWorkerMirroredStrategy ("Attempt to convert a value (PerReplica...)"). There is nothing to
        # build once the layers and the optimizer are built (facenet_tf.train.loop.build_model does that).
        if all(layer.built for layer in self._flatten_layers()) and getattr(self.optimizer, "built", False):
            return
        super()._maybe_symbolic_build(iterator=iterator, data_batch=data_batch)

    def get_config(self):
        return {**super().get_config(), "embedding_model": keras.saving.serialize_keras_object(self.embedding_model),
                "margin": self.margin, "strategy": self.strategy, "fallback": self.fallback,
                "reduction": self.reduction, "seed": self.seed}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["embedding_model"] = keras.saving.deserialize_keras_object(config["embedding_model"])
        return cls(**config)
