"""An inference form of a functional model: batch norm folded into the convolution or dense layer before it.

In inference a ``BatchNormalization`` layer is an affine map per channel with fixed coefficients,

    y = gamma * (z - moving_mean) / sqrt(moving_variance + epsilon) + beta,     z = conv(x) + b,

so when it directly follows a convolution (or dense layer) whose output nothing else reads, the pair is one
convolution with kernel ``W * s`` and bias ``(b - moving_mean) * s + beta``, ``s = gamma / sqrt(moving_variance +
epsilon)`` (scaled along the output channels, the kernel's last axis). ``fold_batch_norm`` rewrites every such
pair and removes the batch norm; with ``fuse_activation=True`` it also moves an ``Activation``/``ReLU`` layer that
is the sole reader of a folded layer's output into that layer (``activation="relu"``), removing it as well.

The rewrite goes through ``keras.models.clone_model``: every layer is cloned from its config (so the new model
keeps the layer names and serialises as ``.keras`` like the original), a folded layer is cloned with a bias (and
the fused activation), and removed layers pass their input through. Weights are then copied, or computed (in
float64) for folded layers. Nothing here is specific to one architecture: it works on any functional (or built
``Sequential``) model, nested functional models included; a model without foldable pairs comes back as an
equivalent copy.
"""

from __future__ import annotations

import collections
import dataclasses

import keras
import numpy as np

# Exactly these classes (not subclasses, whose ``call`` may do something else) apply ``kernel`` along its last
# axis as the output channels and then add ``bias``.
FOLDABLE_LAYERS = (keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Conv3D, keras.layers.Dense)


@dataclasses.dataclass(frozen=True)
class Fold:
    """One rewrite: ``layer`` (a convolution or dense layer) absorbs ``batch_norm`` and, optionally, ``activation``
    (an ``Activation`` or ``ReLU`` layer, given as the activation name the folded layer takes)."""

    layer: keras.layers.Layer
    batch_norm: keras.layers.BatchNormalization
    activation_layer: keras.layers.Layer | None = None
    activation: str = "linear"


def _graph_nodes(model: keras.Model) -> list:
    """The model's call nodes (input layers excluded), from the functional graph Keras keeps."""
    return [node for nodes in model._nodes_by_depth.values() for node in nodes
            if node.operation is not None and not node.is_input]


def _activation_name(layer: keras.layers.Layer) -> str | None:
    """The activation a standalone activation layer applies, as a name a convolution accepts; None if it is not
    one (a ``ReLU`` layer with a cap, slope or threshold is not plain ``relu``)."""
    if type(layer) is keras.layers.Activation:
        name = keras.activations.serialize(layer.activation)
        return name if isinstance(name, str) and name != "linear" else None
    if type(layer) is keras.layers.ReLU:
        config = layer.get_config()
        if config.get("max_value") is None and not config.get("negative_slope") and not config.get("threshold"):
            return "relu"
    return None


def _foldable_layer(layer: keras.layers.Layer) -> bool:
    if type(layer) not in FOLDABLE_LAYERS:
        return False
    config = layer.get_config()
    return (config.get("activation") == "linear" and config.get("data_format", "channels_last") == "channels_last"
            and getattr(layer, "quantization_mode", None) is None and not getattr(layer, "lora_enabled", False))


def find_folds(model: keras.Model, fuse_activation: bool = False) -> list[Fold]:
    """The pairs ``fold_batch_norm`` rewrites in ``model`` (not descending into nested models).

    A batch norm is folded when it normalises the last axis, is called once, with no ``training=True`` forced,
    on the output of a layer of ``FOLDABLE_LAYERS`` that is called once, has no activation, works on
    ``channels_last`` data, and whose output nothing else reads (no other layer, not a model output).
    """
    nodes = _graph_nodes(model)
    calls = collections.Counter(id(node.operation) for node in nodes)
    readers: dict[int, list] = collections.defaultdict(list)
    for node in nodes:
        for tensor in node.input_tensors:
            readers[id(tensor)].append(node)
    outputs = {id(tensor) for tensor in model.outputs}

    def sole_reader(tensor):
        """The one node reading ``tensor``, or None when several (or a model output) read it."""
        found = readers[id(tensor)]
        return found[0] if len(found) == 1 and id(tensor) not in outputs else None

    folds = []
    for node in nodes:
        bn = node.operation
        if type(bn) is not keras.layers.BatchNormalization or calls[id(bn)] != 1:
            continue
        if len(node.input_tensors) != 1 or node.arguments.kwargs.get("training") is True:
            continue
        (tensor,) = node.input_tensors
        if bn.axis not in (-1, len(tensor.shape) - 1):
            continue
        producer = tensor._keras_history.operation
        if producer is None or calls[id(producer)] != 1 or not _foldable_layer(producer):
            continue
        if sole_reader(tensor) is not node:
            continue
        fold = Fold(producer, bn)
        if fuse_activation:
            (bn_output,) = node.outputs
            after = sole_reader(bn_output)
            if after is not None and calls[id(after.operation)] == 1 and len(after.input_tensors) == 1:
                name = _activation_name(after.operation)
                if name is not None:
                    fold = Fold(producer, bn, after.operation, name)
        folds.append(fold)
    return folds


def folded_kernel_and_bias(layer: keras.layers.Layer, bn: keras.layers.BatchNormalization
                           ) -> tuple[np.ndarray, np.ndarray]:
    """The kernel and bias of ``layer`` followed by ``bn`` in inference, computed in float64 and returned in the
    dtype of ``layer``'s kernel."""
    kernel = keras.ops.convert_to_numpy(layer.kernel)
    dtype = kernel.dtype
    kernel = kernel.astype(np.float64)
    channels = kernel.shape[-1]
    bias = (keras.ops.convert_to_numpy(layer.bias).astype(np.float64) if layer.use_bias
            else np.zeros(channels, np.float64))

    def statistic(variable, default: float) -> np.ndarray:
        if variable is None:
            return np.full(channels, default, np.float64)
        return keras.ops.convert_to_numpy(variable).astype(np.float64)

    gamma = statistic(bn.gamma if bn.scale else None, 1.0)
    beta = statistic(bn.beta if bn.center else None, 0.0)
    mean = statistic(bn.moving_mean, 0.0)
    variance = statistic(bn.moving_variance, 1.0)
    scale = gamma / np.sqrt(variance + bn.epsilon)
    return (kernel * scale).astype(dtype), ((bias - mean) * scale + beta).astype(dtype)


def fold_batch_norm(model: keras.Model, fuse_activation: bool = False) -> keras.Model:
    """A new functional model computing ``model(x, training=False)`` with every foldable batch norm (see
    ``find_folds``) folded into the layer before it and removed; with ``fuse_activation`` an activation layer
    after a folded pair moves into the folded layer too. Other layers (custom ones included) are cloned from
    their config with the same names and their weights copied; ``model`` is unchanged. Nested functional models
    are folded the same way.
    """
    if isinstance(model, keras.Sequential):
        if not model.built or not model.inputs:
            raise ValueError(f"Sequential model '{model.name}' must be built on an input shape to be folded.")
        model = keras.Model(model.inputs[0], model.outputs[0], name=model.name)  # one input, one output
    if not isinstance(model, keras.Model) or not hasattr(model, "_nodes_by_depth"):
        raise TypeError(f"fold_batch_norm takes a functional or Sequential Keras model, got "
                        f"{type(model).__name__}; a subclassed model has no graph to rewrite.")

    folds = {id(fold.layer): fold for fold in find_folds(model, fuse_activation)}
    removed = {id(fold.batch_norm) for fold in folds.values()}
    removed |= {id(fold.activation_layer) for fold in folds.values() if fold.activation_layer is not None}
    copies: list[tuple[keras.layers.Layer, keras.layers.Layer]] = []  # (original, clone) whose weights to copy
    folded: list[tuple[Fold, keras.layers.Layer]] = []                  # (fold, clone) whose weights to compute

    def clone(layer):
        if id(layer) in removed:
            return layer  # never called: ``call`` passes its input through
        if isinstance(layer, keras.Model):
            return fold_batch_norm(layer, fuse_activation)
        config = layer.get_config()
        fold = folds.get(id(layer))
        if fold is not None:
            config.update(use_bias=True, activation=fold.activation)
        new = type(layer).from_config(config)
        if fold is None:
            copies.append((layer, new))
        else:
            folded.append((fold, new))
        return new

    def call(layer, *args, **kwargs):
        if id(layer) in removed:
            return args[0]
        return layer(*args, **kwargs)

    new_model = keras.models.clone_model(model, clone_function=clone, call_function=call)
    for original, new in copies:
        new.set_weights(original.get_weights())
    for fold, new in folded:
        kernel, bias = folded_kernel_and_bias(fold.layer, fold.batch_norm)
        new.kernel.assign(kernel)
        new.bias.assign(bias)
    return new_model


def frozen_function(model: keras.Model):
    """``model(images, training=False)`` as a ``tf.function`` of one float32 batch (any size) whose weights are
    constants of its graph (``convert_variables_to_constants_v2``), the form a TensorFlow 1 frozen graph has.

    Constant weights let TensorFlow's graph optimiser and oneDNN prepare each convolution's filter once instead of
    on every call: at batch 1 this is what brings a folded Inception-ResNet-v1 level with davidsandberg's frozen
    graph (``benchmarks/inference.py --frozen_graph``). The frozen function is called through a ``tf.function``
    of its own, which costs less per call than calling the converted function directly. Later changes to
    ``model``'s weights do not reach the function. TensorFlow backend only.
    """
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    spec = tf.TensorSpec([None, *model.input.shape[1:]], tf.float32)
    traced = tf.function(lambda images: model(images, training=False)).get_concrete_function(spec)
    frozen = convert_variables_to_constants_v2(traced)

    @tf.function(input_signature=[spec], autograph=False)
    def call(images):
        return tf.nest.flatten(frozen(images))[0]  # the converted function returns the model's one output in a list

    return call
