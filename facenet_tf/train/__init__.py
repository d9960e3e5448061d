"""Triplet training: ``TripletModel`` (custom train_step), ``TrainConfig``, and the ``train`` run."""

from facenet_tf.train.config import TrainConfig
from facenet_tf.train.loop import CheckpointWriteError, TrainingDiverged, load_embedding_model, train
from facenet_tf.train.model import TripletModel

__all__ = ["TrainConfig", "TripletModel", "train", "load_embedding_model", "TrainingDiverged",
           "CheckpointWriteError"]
