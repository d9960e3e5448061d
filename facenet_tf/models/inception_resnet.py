"""Inception-ResNet-v1 as in the open-source FaceNet models, and the importer of their pretrained Keras 2 weights.

The architecture is Szegedy et al. 2016 ("Inception-v4, Inception-ResNet and the Impact of Residual Connections"),
Inception-ResNet-v1, with the FaceNet head of the open-source implementations (davidsandberg/facenet): global
average pooling -> dropout -> a bias-free 128-D bottleneck -> batch norm -> (here) L2 normalisation.

Layer for layer it follows the ``model_config`` of ``facenet_keras.h5`` (Keras 2.1.2, converted from the
TensorFlow checkpoint 20170512-110547), with the same names for every layer, so the file's arrays load by name:

    stem         Conv2d_1a_3x3 (32, /2, valid) -> Conv2d_2a_3x3 (32, valid) -> Conv2d_2b_3x3 (64, same)
                 -> MaxPool_3a_3x3 (/2, valid) -> Conv2d_3b_1x1 (80) -> Conv2d_4a_3x3 (192, valid)
                 -> Conv2d_4b_3x3 (256, /2, valid)                                          17x17x256 at 160
    Block35 x5   3 branches (1x1 | 1x1-3x3 | 1x1-3x3-3x3, 32 each) -> 1x1 (256, bias), scale 0.17, ReLU
    Mixed_6a     3x3/2 (384) | 1x1-3x3-3x3/2 (192,192,256) | maxpool 3x3/2                  8x8x896
    Block17 x10  2 branches (1x1 | 1x1-1x7-7x1, 128 each) -> 1x1 (896, bias), scale 0.10, ReLU
    Mixed_7a     1x1-3x3/2 (256,384) | 1x1-3x3/2 (256,256) | 1x1-3x3-3x3/2 (256,256,256) | maxpool 3x3/2  3x3x1792
    Block8 x5    2 branches (1x1 | 1x1-1x3-3x1, 192 each) -> 1x1 (1792, bias), scale 0.20, ReLU
    Block8_6     as Block8, scale 1.0 and no activation
    head         AvgPool (global) -> Dropout (0.2) -> Bottleneck (dense, no bias) -> Bottleneck_BatchNorm

Every convolution except the blocks' 1x1 up-projections is bias-free and followed by batch norm
(``center=True, scale=False, momentum=0.995, epsilon=0.001``) and a ReLU, named ``<conv>_BatchNorm`` and
``<conv>_Activation``. The file's residual ``Lambda`` layers (``inputs[0] + inputs[1] * scale``) become
``ScaledResidual`` layers of the same name (``<block>_ScaleSum``). This model adds two layers: ``Prewhiten`` after
the input (named ``preprocess``) and ``L2Normalize`` at the end (named ``embedding``).

Smallest input: the valid-padding stride-2 convolutions and pools need height and width >= 75 (75 -> 37 -> 35 ->
17 -> 15 -> 7 -> 3 -> 1); at 160 the grids are 79, 77, 38, 36, 17, 8, 3.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import h5py
import keras
import numpy as np

from facenet_tf import paths
from facenet_tf.models.layers import L2Normalize, Prewhiten, ScaledResidual
from facenet_tf.models.weights import REGISTRY, resolve_weights

MODEL_NAME = "inception_resnet_v1"
PRETRAINED_EMBEDDING_DIM = 128
MIN_INPUT_SIZE = 75

# Builder settings other than input_shape/embedding_dim/dropout_rate, with the values of facenet_keras.h5.
DEFAULTS: dict[str, Any] = {
    "block35_repeats": 5,        # Block35 (35x35 grid at 299 input, 17x17 at 160)
    "block17_repeats": 10,       # Block17
    "block8_repeats": 5,         # Block8 with ReLU; one more Block8 (scale 1.0, no activation) always follows
    "block35_scale": 0.17,       # residual scales: the file's Lambda ``arguments``
    "block17_scale": 0.10,
    "block8_scale": 0.20,
    "final_block_scale": 1.0,
    "batch_norm_momentum": 0.995,
    "batch_norm_epsilon": 0.001,
    "weight_decay": 0.0,         # L2 penalty on conv / dense kernels (for training from scratch); 0 = none
}
OVERRIDES = tuple(DEFAULTS)


def _check_settings(input_shape, embedding_dim, dropout_rate, overrides: dict) -> dict[str, Any]:
    # batch_norm: the zoo-wide switch (the training binary passes it to every model); this network always has it.
    if overrides.pop("batch_norm", True) is not True:
        raise ValueError(f"Model '{MODEL_NAME}' always uses batch normalisation; batch_norm=False is not available.")
    unknown = sorted(set(overrides) - set(OVERRIDES))
    if unknown:
        raise TypeError(f"Model '{MODEL_NAME}' got unknown override(s) {unknown}; valid overrides: "
                        f"input_shape, embedding_dim, dropout_rate, {', '.join(OVERRIDES)}.")
    settings = {**DEFAULTS, **overrides}
    shape = tuple(input_shape)
    if not (len(shape) == 3 and all(isinstance(d, int) for d in shape) and shape[2] == 3
            and min(shape[:2]) >= MIN_INPUT_SIZE):
        raise ValueError(f"Model '{MODEL_NAME}' takes input_shape=(height, width, 3) with height and width >= "
                         f"{MIN_INPUT_SIZE}; got {input_shape!r}.")
    if not isinstance(embedding_dim, int) or embedding_dim < 1:
        raise ValueError(f"embedding_dim must be a positive integer, got {embedding_dim!r}.")
    if not 0.0 <= float(dropout_rate) < 1.0:
        raise ValueError(f"dropout_rate must be in [0, 1), got {dropout_rate!r}.")
    for key in ("block35_repeats", "block17_repeats", "block8_repeats"):
        if not isinstance(settings[key], int) or settings[key] < 0:
            raise ValueError(f"{key} must be a non-negative integer, got {settings[key]!r}.")
    return settings


class _Builder:
    """Creates the layers with the file's names; one instance per model."""

    def __init__(self, settings: dict[str, Any]):
        self.s = settings
        decay = settings["weight_decay"]
        self.regularizer = keras.regularizers.L2(decay) if decay else None

    def conv_bn(self, x, filters: int, kernel, name: str, strides: int = 1, padding: str = "same"):
        """Bias-free convolution -> batch norm (no scale) -> ReLU: ``name``, ``name_BatchNorm``, ``name_Activation``."""
        x = keras.layers.Conv2D(filters, kernel, strides=strides, padding=padding, use_bias=False,
                                kernel_regularizer=self.regularizer, name=name)(x)
        x = self.batch_norm(x, f"{name}_BatchNorm")
        return keras.layers.Activation("relu", name=f"{name}_Activation")(x)

    def batch_norm(self, x, name: str):
        return keras.layers.BatchNormalization(axis=-1, momentum=self.s["batch_norm_momentum"],
                                               epsilon=self.s["batch_norm_epsilon"], center=True, scale=False,
                                               name=name)(x)

    def residual(self, shortcut, branches: list, name: str, scale: float, activation: bool):
        """Concatenate the branches, project back to the shortcut's width (1x1 with bias), add scaled, ReLU."""
        mixed = keras.layers.Concatenate(axis=-1, name=f"{name}_Concatenate")(branches)
        up = keras.layers.Conv2D(shortcut.shape[-1], 1, padding="same", use_bias=True,
                                 kernel_regularizer=self.regularizer, name=f"{name}_Conv2d_1x1")(mixed)
        x = ScaledResidual(scale=scale, name=f"{name}_ScaleSum")([shortcut, up])
        return keras.layers.Activation("relu", name=f"{name}_Activation")(x) if activation else x

    def stem(self, x):
        x = self.conv_bn(x, 32, 3, "Conv2d_1a_3x3", strides=2, padding="valid")
        x = self.conv_bn(x, 32, 3, "Conv2d_2a_3x3", padding="valid")
        x = self.conv_bn(x, 64, 3, "Conv2d_2b_3x3")
        x = keras.layers.MaxPooling2D(3, strides=2, padding="valid", name="MaxPool_3a_3x3")(x)
        x = self.conv_bn(x, 80, 1, "Conv2d_3b_1x1", padding="valid")
        x = self.conv_bn(x, 192, 3, "Conv2d_4a_3x3", padding="valid")
        return self.conv_bn(x, 256, 3, "Conv2d_4b_3x3", strides=2, padding="valid")

    def block35(self, x, name: str, scale: float):
        b0 = self.conv_bn(x, 32, 1, f"{name}_Branch_0_Conv2d_1x1")
        b1 = self.conv_bn(x, 32, 1, f"{name}_Branch_1_Conv2d_0a_1x1")
        b1 = self.conv_bn(b1, 32, 3, f"{name}_Branch_1_Conv2d_0b_3x3")
        b2 = self.conv_bn(x, 32, 1, f"{name}_Branch_2_Conv2d_0a_1x1")
        b2 = self.conv_bn(b2, 32, 3, f"{name}_Branch_2_Conv2d_0b_3x3")
        b2 = self.conv_bn(b2, 32, 3, f"{name}_Branch_2_Conv2d_0c_3x3")
        return self.residual(x, [b0, b1, b2], name, scale, activation=True)

    def block17(self, x, name: str, scale: float):
        b0 = self.conv_bn(x, 128, 1, f"{name}_Branch_0_Conv2d_1x1")
        b1 = self.conv_bn(x, 128, 1, f"{name}_Branch_1_Conv2d_0a_1x1")
        b1 = self.conv_bn(b1, 128, (1, 7), f"{name}_Branch_1_Conv2d_0b_1x7")
        b1 = self.conv_bn(b1, 128, (7, 1), f"{name}_Branch_1_Conv2d_0c_7x1")
        return self.residual(x, [b0, b1], name, scale, activation=True)

    def block8(self, x, name: str, scale: float, activation: bool = True):
        b0 = self.conv_bn(x, 192, 1, f"{name}_Branch_0_Conv2d_1x1")
        b1 = self.conv_bn(x, 192, 1, f"{name}_Branch_1_Conv2d_0a_1x1")
        b1 = self.conv_bn(b1, 192, (1, 3), f"{name}_Branch_1_Conv2d_0b_1x3")
        b1 = self.conv_bn(b1, 192, (3, 1), f"{name}_Branch_1_Conv2d_0c_3x1")
        return self.residual(x, [b0, b1], name, scale, activation=activation)

    def mixed_6a(self, x):
        name = "Mixed_6a"
        b0 = self.conv_bn(x, 384, 3, f"{name}_Branch_0_Conv2d_1a_3x3", strides=2, padding="valid")
        b1 = self.conv_bn(x, 192, 1, f"{name}_Branch_1_Conv2d_0a_1x1")
        b1 = self.conv_bn(b1, 192, 3, f"{name}_Branch_1_Conv2d_0b_3x3")
        b1 = self.conv_bn(b1, 256, 3, f"{name}_Branch_1_Conv2d_1a_3x3", strides=2, padding="valid")
        b2 = keras.layers.MaxPooling2D(3, strides=2, padding="valid", name=f"{name}_Branch_2_MaxPool_1a_3x3")(x)
        return keras.layers.Concatenate(axis=-1, name=name)([b0, b1, b2])

    def mixed_7a(self, x):
        name = "Mixed_7a"
        b0 = self.conv_bn(x, 256, 1, f"{name}_Branch_0_Conv2d_0a_1x1")
        b0 = self.conv_bn(b0, 384, 3, f"{name}_Branch_0_Conv2d_1a_3x3", strides=2, padding="valid")
        b1 = self.conv_bn(x, 256, 1, f"{name}_Branch_1_Conv2d_0a_1x1")
        b1 = self.conv_bn(b1, 256, 3, f"{name}_Branch_1_Conv2d_1a_3x3", strides=2, padding="valid")
        b2 = self.conv_bn(x, 256, 1, f"{name}_Branch_2_Conv2d_0a_1x1")
        b2 = self.conv_bn(b2, 256, 3, f"{name}_Branch_2_Conv2d_0b_3x3")
        b2 = self.conv_bn(b2, 256, 3, f"{name}_Branch_2_Conv2d_1a_3x3", strides=2, padding="valid")
        b3 = keras.layers.MaxPooling2D(3, strides=2, padding="valid", name=f"{name}_Branch_3_MaxPool_1a_3x3")(x)
        return keras.layers.Concatenate(axis=-1, name=name)([b0, b1, b2, b3])


def build_inception_resnet_v1(input_shape=(160, 160, 3), embedding_dim: int = 128, dropout_rate: float = 0.2,
                              **overrides: Any) -> keras.Model:
    """Builds Inception-ResNet-v1: float32 RGB images (0-255) -> L2-normalised embeddings (batch, embedding_dim).

    ``dropout_rate`` is applied to the pooled 1792-D features before the bottleneck (0.2, i.e. keep 0.8, as the
    pretrained model was trained). ``overrides`` (defaults in ``DEFAULTS``): ``block35_repeats`` (5),
    ``block17_repeats`` (10), ``block8_repeats`` (5), ``block35_scale`` (0.17), ``block17_scale`` (0.10),
    ``block8_scale`` (0.20), ``final_block_scale`` (1.0), ``batch_norm_momentum`` (0.995), ``batch_norm_epsilon``
    (0.001), ``weight_decay`` (0.0: an L2 kernel penalty when > 0). An unknown key raises ``TypeError``.
    Height and width must be >= ``MIN_INPUT_SIZE`` (75). The pretrained weights (``load_pretrained_weights``)
    fit the defaults with ``embedding_dim=128`` at any input size.
    """
    s = _check_settings(input_shape, embedding_dim, dropout_rate, overrides)
    build = _Builder(s)
    inputs = keras.Input(shape=tuple(input_shape), dtype="float32", name="image")
    x = Prewhiten(name="preprocess")(inputs)
    x = build.stem(x)
    for i in range(1, s["block35_repeats"] + 1):
        x = build.block35(x, f"Block35_{i}", s["block35_scale"])
    x = build.mixed_6a(x)
    for i in range(1, s["block17_repeats"] + 1):
        x = build.block17(x, f"Block17_{i}", s["block17_scale"])
    x = build.mixed_7a(x)
    for i in range(1, s["block8_repeats"] + 1):
        x = build.block8(x, f"Block8_{i}", s["block8_scale"])
    x = build.block8(x, f"Block8_{s['block8_repeats'] + 1}", s["final_block_scale"], activation=False)
    x = keras.layers.GlobalAveragePooling2D(name="AvgPool")(x)
    x = keras.layers.Dropout(dropout_rate, name="Dropout")(x)
    x = keras.layers.Dense(embedding_dim, use_bias=False, kernel_regularizer=build.regularizer,
                           name="Bottleneck")(x)
    x = build.batch_norm(x, "Bottleneck_BatchNorm")
    outputs = L2Normalize(name="embedding")(x)
    return keras.Model(inputs, outputs, name=MODEL_NAME)


# ----------------------------------------------------------------------------------------------------------------
# The pretrained weights


@dataclasses.dataclass(frozen=True)
class ArrayAssignment:
    """One array of the file and the model variable it was copied into."""

    layer: str
    file_name: str               # the file's weight name, e.g. "Conv2d_1a_3x3/kernel:0"
    variable: str                # the model variable's path, e.g. "Conv2d_1a_3x3/kernel"
    shape: tuple[int, ...]


@dataclasses.dataclass(frozen=True)
class PretrainedReport:
    """What ``load_pretrained_weights`` did; stored as ``model.pretrained_report``.

    A load either assigns every array of the file to exactly one model variable and fills every model variable
    that has weights, or raises before changing anything, so after a successful load ``unused_file_arrays`` and
    ``unfilled_model_variables`` are empty; they are kept so a test can say so.
    """

    source: str
    file_arrays: int                       # arrays in the file
    file_values: int                       # their total size (every value, BN statistics included)
    assignments: tuple[ArrayAssignment, ...]
    unused_file_arrays: tuple[str, ...] = ()
    unfilled_model_variables: tuple[str, ...] = ()

    @property
    def assigned_values(self) -> int:
        return sum(int(np.prod(a.shape)) for a in self.assignments)

    @property
    def complete(self) -> bool:
        """Every array used once, every model weight filled, nothing left over."""
        files = [(a.layer, a.file_name) for a in self.assignments]
        return (len(files) == len(set(files)) == self.file_arrays and self.assigned_values == self.file_values
                and not self.unused_file_arrays and not self.unfilled_model_variables)


def resolve_pretrained(weights: str | os.PathLike) -> Path:
    """The file for ``weights``: a name in the weights registry (``facenet_tf.models.weights``: found, or fetched
    and verified on first use) or a file path."""
    key = str(weights)
    registered = [name for name, entry in REGISTRY.items() if entry.architecture == MODEL_NAME]
    if key in registered:
        return resolve_weights(key)
    path = Path(weights).expanduser()
    if not path.is_file():
        raise FileNotFoundError(
            f"Pretrained weights {key!r} for '{MODEL_NAME}': '{path}' is not a file (weights is one of "
            f"{registered} or the path of a facenet_keras.h5-style file). {paths.WEIGHTS_HELP}")
    return path


def _text(value) -> str:
    return value.decode("utf8") if isinstance(value, bytes) else str(value)


def read_keras2_weights(path: str | os.PathLike) -> dict[str, list[tuple[str, np.ndarray]]]:
    """``{layer name: [(weight name, array), ...]}`` from a Keras 2 HDF5 file (full model or weights only), in the
    order of each layer's ``weight_names`` attribute; layers without weights are left out."""
    with h5py.File(path, "r") as f:
        group = f["model_weights"] if "model_weights" in f else f
        if "layer_names" not in group.attrs:
            raise ValueError(f"'{path}' is not a Keras 2 HDF5 model or weights file (no 'layer_names' attribute "
                             f"in {'/model_weights' if group is not f else 'its root'}).")
        layers: dict[str, list[tuple[str, np.ndarray]]] = {}
        for layer in map(_text, group.attrs["layer_names"]):
            names = [_text(n) for n in group[layer].attrs.get("weight_names", [])]
            if names:
                layers[layer] = [(n, np.asarray(group[layer][n])) for n in names]
    return layers


def _short_name(weight_name: str) -> str:
    """``"Block35_1_Conv2d_1x1/bias:0"`` -> ``"bias"``."""
    return weight_name.rsplit("/", 1)[-1].split(":", 1)[0]


def load_pretrained_weights(model: keras.Model, weights: str | os.PathLike = "msceleb") -> keras.Model:
    """Copies the arrays of a Keras 2 ``facenet_keras.h5``-style file into ``model``, layer by layer by name.

    ``weights`` is ``"msceleb"`` (``<weights dir>/inception_resnet_v1_msceleb/facenet_keras.h5``, see
    ``facenet_tf.paths``) or the path of such a file. Within a layer, arrays match model variables by their
    short name (``kernel``, ``bias``, ``beta``, ``moving_mean``, ``moving_variance``). Everything is checked
    before anything is assigned: every file array must find a model variable of the same shape, and every model
    layer with weights must be in the file; otherwise ``ValueError`` lists each problem (layer, weight, file
    shape, model shape) and the model is unchanged. Returns ``model``, with a ``PretrainedReport`` set as
    ``model.pretrained_report``.
    """
    path = resolve_pretrained(weights)
    file_layers = read_keras2_weights(path)
    model_layers = {layer.name: layer for layer in model.layers if layer.weights}

    problems: list[str] = []
    plan: list[tuple[keras.Variable, np.ndarray, ArrayAssignment]] = []
    for layer_name, arrays in file_layers.items():
        layer = model_layers.get(layer_name)
        if layer is None:
            problems.append(f"{layer_name}: in the file ({', '.join(f'{n} {a.shape}' for n, a in arrays)}) "
                            f"but the model has no layer with weights of that name")
            continue
        variables = {v.name: v for v in layer.weights}
        for file_name, array in arrays:
            variable = variables.pop(_short_name(file_name), None)
            if variable is None:
                problems.append(f"{layer_name}: file array {file_name} {array.shape} has no model variable "
                                f"(model has {[v.name for v in layer.weights]})")
            elif tuple(variable.shape) != array.shape:
                problems.append(f"{layer_name}: {file_name} file shape {array.shape} != model shape "
                                f"{tuple(variable.shape)}")
            else:
                plan.append((variable, array, ArrayAssignment(layer_name, file_name, variable.path, array.shape)))
        for variable in variables.values():
            problems.append(f"{layer_name}: model variable {variable.path} {tuple(variable.shape)} has no array "
                            f"in the file")
    for layer_name in sorted(set(model_layers) - set(file_layers)):
        shapes = ", ".join(f"{v.path} {tuple(v.shape)}" for v in model_layers[layer_name].weights)
        problems.append(f"{layer_name}: model layer with weights ({shapes}) is not in the file")
    if problems:
        hint = ""
        if "Bottleneck" in model_layers and model_layers["Bottleneck"].units != PRETRAINED_EMBEDDING_DIM:
            hint = (f" The pretrained bottleneck is {PRETRAINED_EMBEDDING_DIM}-D but this model's is "
                    f"{model_layers['Bottleneck'].units}-D: build it with "
                    f"embedding_dim={PRETRAINED_EMBEDDING_DIM} to load these weights.")
        raise ValueError(f"Cannot load '{path}' into model '{model.name}': {len(problems)} mismatch(es).{hint}\n  "
                         + "\n  ".join(problems))

    for variable, array, _ in plan:
        variable.assign(array.astype(variable.dtype, copy=False))
    report = PretrainedReport(
        source=str(path),
        file_arrays=sum(len(arrays) for arrays in file_layers.values()),
        file_values=sum(a.size for arrays in file_layers.values() for _, a in arrays),
        assignments=tuple(a for _, _, a in plan))
    model.pretrained_report = report
    return model
