"""The optimizer of a training run, from its config (shared by the plain and the harmonic trainer)."""

from __future__ import annotations

import keras

from facenet_tf.train.config import TrainConfig


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
