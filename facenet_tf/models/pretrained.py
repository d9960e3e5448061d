"""Pretrained weights into an Inception-ResNet-v1: a registered name or a file, Keras 2 HDF5 or a davidsandberg
TensorFlow 1 model. Sits above ``inception_resnet`` (the network and the Keras 2 reader) and ``tf1_import`` (the
TensorFlow 1 converter, which builds the network), so neither imports the other's user.
"""

from __future__ import annotations

import os
from pathlib import Path

import keras
import numpy as np

from facenet_tf.models import tf1_import
from facenet_tf.models.inception_resnet import (MODEL_NAME, PretrainedReport, SourceArray, apply_assignment,
                                                architecture_differences, is_tf1_model, load_keras2_weights,
                                                model_preprocessing, plan_assignment, resolve_pretrained)
from facenet_tf.models.weights import REGISTRY, converted_path


def load_pretrained_weights(model: keras.Model, weights: str | os.PathLike = "msceleb") -> keras.Model:
    """Copies pretrained arrays into ``model``, layer by layer by name.

    ``weights`` is a registered name (``"msceleb"``: ``<weights dir>/inception_resnet_v1_msceleb/facenet_keras.h5``,
    see ``facenet_tf.paths``; ``"casia_webface"``: davidsandberg's TensorFlow 1 graph 20180408-102900, see
    ``facenet_tf.models.weights``) or a path: a Keras 2 ``facenet_keras.h5``-style file, or a davidsandberg
    TensorFlow 1 model (``facenet_tf.models.tf1_import``; a registered one is converted once and the converted
    ``.keras`` file is kept in the weights cache). Within a layer, arrays match model variables by their short
    name (``kernel``, ``bias``, ``beta``, ``moving_mean``, ``moving_variance``). Everything is checked before
    anything is assigned: every file array must find a model variable of the same shape, every model layer with
    weights must be in the file, and a TensorFlow 1 model's preprocessing, residual scales and batch-norm epsilon
    must be the model's; otherwise ``ValueError`` lists each problem (layer, weight, file shape, model shape) and
    the model is unchanged. Returns ``model``, with a ``PretrainedReport`` set as ``model.pretrained_report``.
    """
    path = resolve_pretrained(weights)
    if is_tf1_model(path):
        return _load_tf1_weights(model, path, REGISTRY.get(str(weights)))
    return load_keras2_weights(model, path)


def _load_tf1_weights(model: keras.Model, path: Path, entry) -> keras.Model:
    """Converts a davidsandberg TensorFlow 1 model (a registered one once, into the weights cache) and copies the
    converted weights into ``model`` after checking that both compute the same function."""
    if entry is not None:
        keras_file = tf1_import.convert_once(path, converted_path(entry, tf1_import.CONVERTED_SUFFIX),
                                             entry.preprocessing)
        source = keras.saving.load_model(keras_file)
        origin = f"{path} (converted: {keras_file})"
    else:
        source, _, _ = tf1_import.load_tf1_model(path)
        origin = str(path)
    file_layers = {layer.name: [SourceArray(v.path, v.name, np.asarray(v)) for v in layer.weights]
                   for layer in source.layers if layer.weights}
    plan, problems = plan_assignment(model, file_layers)
    problems = architecture_differences(source, model) + problems
    if problems:
        dim = source.get_layer("Bottleneck").units
        raise ValueError(f"Cannot load '{path}' into model '{model.name}': {len(problems)} mismatch(es). These "
                         f"weights need embedding_dim={dim}, preprocessing={model_preprocessing(source)!r} "
                         f"(e.g. create_model('{MODEL_NAME}', weights=..., embedding_dim={dim}, "
                         f"preprocessing={model_preprocessing(source)!r})).\n  " + "\n  ".join(problems))
    assignments, _ = apply_assignment(plan)
    model.pretrained_report = PretrainedReport(
        source=origin, file_arrays=len(plan), file_values=sum(item.array.size for _, item, _ in plan),
        assignments=assignments)
    return model
