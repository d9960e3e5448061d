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
``ScaledResidual`` layers of the same name (``<block>_ScaleSum``). This model adds two layers: the preprocessing
after the input (named ``preprocess``: ``Prewhiten``, or davidsandberg's fixed standardization ``(x - 127.5) / 128``
for the weights of his 2018 models) and ``L2Normalize`` at the end (named ``embedding``).

Weights: ``msceleb`` (the Keras 2 HDF5 file, read here) and ``casia_webface`` (a davidsandberg TensorFlow 1 graph,
read by ``facenet_tf.models.tf1_import``); both go through ``plan_assignment``, which checks every array.

Smallest input: the valid-padding stride-2 convolutions and pools need height and width >= 75 (75 -> 37 -> 35 ->
17 -> 15 -> 7 -> 3 -> 1); at 160 the grids are 79, 77, 38, 36, 17, 8, 3.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any, NamedTuple

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

#: The first layer, by name: the per-image ``prewhiten`` of facenet_keras.h5 and davidsandberg's 2017 models, or
#: davidsandberg's "fixed image standardization" ``(x - 127.5) / 128`` of his 2018 models.
PREPROCESSING = {
    "prewhiten": "(x - mean(x)) / max(std(x), 1/sqrt(x.size)) per image",
    "fixed": "(x - 127.5) / 128",
}


def preprocessing_layer(preprocessing: str) -> keras.layers.Layer:
    """The model's first layer (named ``preprocess``) for a ``PREPROCESSING`` name."""
    if preprocessing == "prewhiten":
        return Prewhiten(name="preprocess")
    if preprocessing == "fixed":  # x / 128 - 127.5 / 128: both steps exact in float32, so equal to (x - 127.5) / 128
        return keras.layers.Rescaling(1.0 / 128.0, offset=-127.5 / 128.0, name="preprocess")
    raise ValueError(f"preprocessing must be one of {sorted(PREPROCESSING)}, got {preprocessing!r}.")


def model_preprocessing(model: keras.Model) -> str | None:
    """The ``PREPROCESSING`` name of ``model``'s ``preprocess`` layer, or None when it is neither."""
    try:
        layer = model.get_layer("preprocess")
    except ValueError:
        return None
    if isinstance(layer, Prewhiten):
        return "prewhiten"
    if isinstance(layer, keras.layers.Rescaling):
        config = layer.get_config()
        if float(config["scale"]) == 1.0 / 128.0 and float(config["offset"]) == -127.5 / 128.0:
            return "fixed"
    return None


def _check_settings(input_shape, embedding_dim, dropout_rate, overrides: dict) -> dict[str, Any]:
    # batch_norm: the zoo-wide switch (the training binary passes it to every model); this network always has it.
    if overrides.pop("batch_norm", True) is not True:
        raise ValueError(f"Model '{MODEL_NAME}' always uses batch normalisation; batch_norm=False is not available.")
    unknown = sorted(set(overrides) - set(OVERRIDES))
    if unknown:
        raise TypeError(f"Model '{MODEL_NAME}' got unknown override(s) {unknown}; valid overrides: "
                        f"input_shape, embedding_dim, dropout_rate, preprocessing, {', '.join(OVERRIDES)}.")
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
                              preprocessing: str = "prewhiten", **overrides: Any) -> keras.Model:
    """Builds Inception-ResNet-v1: float32 RGB images (0-255) -> L2-normalised embeddings (batch, embedding_dim).

    ``dropout_rate`` is applied to the pooled 1792-D features before the bottleneck (0.2, i.e. keep 0.8, as the
    pretrained model was trained). ``preprocessing`` (a ``PREPROCESSING`` name) picks the first layer:
    ``"prewhiten"`` (facenet_keras.h5) or ``"fixed"`` (davidsandberg's 2018 models). ``overrides`` (defaults in
    ``DEFAULTS``): ``block35_repeats`` (5), ``block17_repeats`` (10), ``block8_repeats`` (5), ``block35_scale``
    (0.17), ``block17_scale`` (0.10), ``block8_scale`` (0.20), ``final_block_scale`` (1.0), ``batch_norm_momentum``
    (0.995), ``batch_norm_epsilon`` (0.001), ``weight_decay`` (0.0: an L2 kernel penalty when > 0). An unknown key
    raises ``TypeError``.
    Height and width must be >= ``MIN_INPUT_SIZE`` (75). The pretrained weights (``load_pretrained_weights``)
    fit the defaults at any input size: ``msceleb`` with ``embedding_dim=128``; ``casia_webface`` with
    ``embedding_dim=512, preprocessing="fixed"``.
    """
    s = _check_settings(input_shape, embedding_dim, dropout_rate, overrides)
    first = preprocessing_layer(preprocessing)
    build = _Builder(s)
    inputs = keras.Input(shape=tuple(input_shape), dtype="float32", name="image")
    x = first(inputs)
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
    """What a weights import did (``load_pretrained_weights``, ``facenet_tf.models.tf1_import``); stored as
    ``model.pretrained_report``.

    A load either assigns every array of the file to exactly one model variable and fills every model variable
    that has weights, or raises before changing anything, so after a successful load ``unused_file_arrays`` and
    ``unfilled_model_variables`` are empty; they are kept so a test can say so.

    A TensorFlow 1 graph also holds arrays that are not variables of the Keras model but settings of its
    architecture, checked rather than copied (``settings``: residual scales, a batch-norm scale of ones), and may
    imply variables it does not hold (``derived``: a batch norm folded into the convolution before it has moving
    mean 0 and variance 1 - epsilon). ``ignored`` names what is not part of the network (optimizer slots, graph
    plumbing such as concat axes and shapes).
    """

    source: str
    file_arrays: int                       # arrays in the file (those of the network: ``ignored`` not counted)
    file_values: int                       # their total size (every value, BN statistics included)
    assignments: tuple[ArrayAssignment, ...]
    unused_file_arrays: tuple[str, ...] = ()
    unfilled_model_variables: tuple[str, ...] = ()
    settings: tuple[ArrayAssignment, ...] = ()
    derived: tuple[ArrayAssignment, ...] = ()
    ignored: tuple[str, ...] = ()

    @property
    def assigned_values(self) -> int:
        return sum(int(np.prod(a.shape)) for a in self.assignments)

    @property
    def complete(self) -> bool:
        """Every array used once, every model weight filled, nothing left over."""
        used = [(a.layer, a.file_name) for a in self.assignments + self.settings]
        setting_values = sum(int(np.prod(a.shape)) for a in self.settings)
        return (len(used) == len(set(used)) == self.file_arrays
                and self.assigned_values + setting_values == self.file_values
                and not self.unused_file_arrays and not self.unfilled_model_variables)


class SourceArray(NamedTuple):
    """An array to load: its name in the file, the short name of the model variable it fills (``kernel``,
    ``bias``, ``beta``, ``moving_mean``, ``moving_variance``), the values, and whether the file holds it (False:
    derived from what the file holds, e.g. a folded batch norm's moving mean)."""

    name: str
    variable: str
    array: np.ndarray
    derived: bool = False


Plan = list[tuple[keras.Variable, SourceArray, ArrayAssignment]]


def plan_assignment(model: keras.Model, file_layers: dict[str, list[SourceArray]]) -> tuple[Plan, list[str]]:
    """Matches ``{layer name: [SourceArray, ...]}`` to ``model``'s variables, layer by layer by name and within a
    layer by short name; changes nothing. Returns the plan and the problems (each names the layer, the array, the
    file shape and the model shape): a file array without a model variable of its shape, two arrays for one
    variable, a model layer with weights that the file does not fill."""
    model_layers = {layer.name: layer for layer in model.layers if layer.weights}
    problems: list[str] = []
    plan: Plan = []
    for layer_name, arrays in file_layers.items():
        layer = model_layers.get(layer_name)
        if layer is None:
            problems.append(f"{layer_name}: in the file ({', '.join(f'{a.name} {a.array.shape}' for a in arrays)}) "
                            f"but the model has no layer with weights of that name")
            continue
        variables = {v.name: v for v in layer.weights}
        for item in arrays:
            variable = variables.pop(item.variable, None)
            if variable is None:
                problems.append(f"{layer_name}: file array {item.name} {item.array.shape} has no model variable "
                                f"(model has {[v.name for v in layer.weights]})")
            elif tuple(variable.shape) != item.array.shape:
                problems.append(f"{layer_name}: {item.name} file shape {item.array.shape} != model shape "
                                f"{tuple(variable.shape)}")
            else:
                plan.append((variable, item, ArrayAssignment(layer_name, item.name, variable.path, item.array.shape)))
        for variable in variables.values():
            problems.append(f"{layer_name}: model variable {variable.path} {tuple(variable.shape)} has no array "
                            f"in the file")
    for layer_name in sorted(set(model_layers) - set(file_layers)):
        shapes = ", ".join(f"{v.path} {tuple(v.shape)}" for v in model_layers[layer_name].weights)
        problems.append(f"{layer_name}: model layer with weights ({shapes}) is not in the file")
    return plan, problems


def apply_assignment(plan: Plan) -> tuple[tuple[ArrayAssignment, ...], tuple[ArrayAssignment, ...]]:
    """Assigns a checked plan; returns (the assignments of file arrays, those of derived arrays)."""
    for variable, item, _ in plan:
        variable.assign(item.array.astype(variable.dtype, copy=False))
    return (tuple(a for _, item, a in plan if not item.derived), tuple(a for _, item, a in plan if item.derived))


def resolve_pretrained(weights: str | os.PathLike) -> Path:
    """The file for ``weights``: a name in the weights registry (``facenet_tf.models.weights``: found, or fetched
    and verified on first use) or a path: a facenet_keras.h5-style file, or a davidsandberg TensorFlow 1 model
    (frozen ``.pb``, checkpoint ``.meta`` or checkpoint folder)."""
    key = str(weights)
    registered = [name for name, entry in REGISTRY.items() if entry.architecture == MODEL_NAME]
    if key in registered:
        return resolve_weights(key)
    path = Path(weights).expanduser()
    if not (path.is_file() or (path.is_dir() and any(path.glob("*.meta")))):
        raise FileNotFoundError(
            f"Pretrained weights {key!r} for '{MODEL_NAME}': '{path}' is not a file (weights is one of "
            f"{registered}, the path of a facenet_keras.h5-style file or of a davidsandberg TensorFlow 1 model: "
            f"a frozen .pb, a checkpoint .meta or checkpoint folder). {paths.WEIGHTS_HELP}")
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


def is_tf1_model(path: str | os.PathLike) -> bool:
    """Whether ``path`` names a davidsandberg TensorFlow 1 model (frozen ``.pb``, ``.meta``, checkpoint folder)."""
    path = Path(path)
    return path.is_dir() or path.suffix in (".pb", ".meta")


def load_keras2_weights(model: keras.Model, path: Path) -> keras.Model:
    """Copies the arrays of a Keras 2 ``facenet_keras.h5``-style file into ``model`` (see
    ``facenet_tf.models.pretrained.load_pretrained_weights``, which resolves names and TensorFlow 1 models)."""
    file_layers = {layer: [SourceArray(name, _short_name(name), array) for name, array in arrays]
                   for layer, arrays in read_keras2_weights(path).items()}
    plan, problems = plan_assignment(model, file_layers)
    if problems:
        hint = ""
        bottleneck = next((layer for layer in model.layers if layer.name == "Bottleneck"), None)
        if bottleneck is not None and bottleneck.units != PRETRAINED_EMBEDDING_DIM:
            hint = (f" The pretrained bottleneck is {PRETRAINED_EMBEDDING_DIM}-D but this model's is "
                    f"{bottleneck.units}-D: build it with "
                    f"embedding_dim={PRETRAINED_EMBEDDING_DIM} to load these weights.")
        raise ValueError(f"Cannot load '{path}' into model '{model.name}': {len(problems)} mismatch(es).{hint}\n  "
                         + "\n  ".join(problems))
    assignments, _ = apply_assignment(plan)
    model.pretrained_report = PretrainedReport(
        source=str(path),
        file_arrays=sum(len(arrays) for arrays in file_layers.values()),
        file_values=sum(a.array.size for arrays in file_layers.values() for a in arrays),
        assignments=assignments)
    return model


def architecture_differences(source: keras.Model, model: keras.Model) -> list[str]:
    """What, besides the weights, makes ``source`` compute something else than ``model``: the preprocessing, the
    residual scales, the batch-norm epsilons (compared in float32, as they are computed)."""
    problems = []
    if model_preprocessing(source) != model_preprocessing(model):
        problems.append(f"preprocessing: {model_preprocessing(source)!r} in the weights, "
                        f"{model_preprocessing(model)!r} in the model")
    theirs = {layer.name: layer for layer in source.layers}
    for layer in model.layers:
        other = theirs.get(layer.name)
        for attribute in ("scale", "epsilon"):
            if (isinstance(layer, (ScaledResidual, keras.layers.BatchNormalization))
                    and isinstance(other, type(layer)) and hasattr(layer, attribute)
                    and np.float32(getattr(layer, attribute)) != np.float32(getattr(other, attribute))):
                problems.append(f"{layer.name}: {attribute} {getattr(other, attribute)} in the weights, "
                                f"{getattr(layer, attribute)} in the model")
    return problems
