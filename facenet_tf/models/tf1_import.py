"""Import of davidsandberg/facenet TensorFlow 1 models into the zoo's Keras ``inception_resnet_v1``.

davidsandberg/facenet publishes its Inception-ResNet-v1 models in two TensorFlow 1 formats:

- a frozen graph (``<date>.pb``, a ``GraphDef``): every variable became a ``Const`` node;
- a checkpoint folder: ``model-<date>.meta`` (the ``MetaGraphDef``) and ``model-<date>.ckpt-<step>.index`` /
  ``.data-*`` (the variables, read with ``tf.train.load_checkpoint``).

Both name the network's arrays with slim scopes under ``InceptionResnetV1/``, which map one to one onto the layer
names of ``facenet_tf.models.inception_resnet`` (the names of keras-facenet's conversion of the same network)::

    InceptionResnetV1/Conv2d_1a_3x3/weights                      -> Conv2d_1a_3x3 kernel
    InceptionResnetV1/Conv2d_1a_3x3/BatchNorm/beta               -> Conv2d_1a_3x3_BatchNorm beta (and moving_*)
    InceptionResnetV1/Repeat/block35_2/Branch_1/Conv2d_0a_1x1/.. -> Block35_2_Branch_1_Conv2d_0a_1x1 ...
    InceptionResnetV1/Repeat_1/block17_i/.., Repeat_2/block8_i/.. -> Block17_i_.., Block8_i_..
    InceptionResnetV1/Block8/..                                  -> Block8_<repeats + 1>_.. (the last block)
    InceptionResnetV1/Repeat/block35_2/Conv2d_1x1/biases         -> Block35_2_Conv2d_1x1 bias
    InceptionResnetV1/Repeat/block35_2/mul/x (a scalar, 0.17)    -> the residual scale of Block35_2_ScaleSum
    InceptionResnetV1/Bottleneck/weights                         -> Bottleneck kernel (its width: the embedding)

Batch norm is matched as the graph computes it. slim's ``batch_norm`` there has no scale (``scale=False``): a
``BatchNorm/gamma`` variable is absent and a frozen graph feeds ``FusedBatchNorm`` a ``BatchNorm/Const`` of ones;
either way it must be all ones (checked), as our layers have no scale. Epsilon is read from the graph's
``FusedBatchNorm`` nodes (0.001 in davidsandberg's models). A graph whose batch norms were folded into the
convolutions (e.g. by ``transform_graph fold_old_batch_norms``, as in the OpenCV-ready ``graph_final.pb``) holds
scaled kernels and a ``<conv>/Conv2D_bn_offset`` instead: the offset becomes the layer's beta, its moving mean 0
and moving variance ``1 - epsilon``, so that ``1 / sqrt(variance + epsilon)`` is exactly 1 (checked in float32);
the report lists these as ``derived``. The graph's final ``l2_normalize`` is our ``L2Normalize``.

Nothing of the graph is executed: arrays are read from constants or the checkpoint, so a ``phase_train``
placeholder or a batch size fixed at 1 does not matter. Every array of the network is used exactly once, every
shape is checked, and anything left over is an error; what is not the network (optimizer slots, moving averages
of the weights, the softmax classifier outside ``InceptionResnetV1/``, integer plumbing such as concat axes and
shapes, scalar training switches such as the dropout keep probability) is listed in the report as ignored.

Preprocessing is not in the graph (davidsandberg applies it in the input pipeline), so it is an argument; when it
is not given it follows the model's date in the file name: davidsandberg's 2018 models (20180402-114759,
20180408-102900) were trained with "fixed image standardization" ``(x - 127.5) / 128``, the 2017 ones with
per-image prewhitening. The model is built with that preprocessing as its first layer.

    python -m facenet_tf.models.tf1_import casia_webface --output=runs/casia_webface.keras
    python -m facenet_tf.models.tf1_import ~/models/20180402-114759/20180402-114759.pb --output=vggface2.keras
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
from collections import defaultdict
from pathlib import Path

import keras
import numpy as np
from google.protobuf.message import DecodeError

from facenet_tf.atomic import atomic_file
from facenet_tf.models.inception_resnet import (
    DEFAULTS, PREPROCESSING, ArrayAssignment, PretrainedReport, SourceArray, apply_assignment,
    build_inception_resnet_v1, plan_assignment)
from facenet_tf.models.layers import ScaledResidual
from facenet_tf.models.weights import REGISTRY, resolve_weights

SCOPE = "InceptionResnetV1/"
FROZEN_GRAPH = "frozen graph"
CHECKPOINT = "checkpoint"
DEFAULT_INPUT_SIZE = 160
#: Suffix of a registered model's conversion in the weights cache (the number changes when the conversion does).
CONVERTED_SUFFIX = ".converted-v1.keras"
#: davidsandberg's first model trained with fixed image standardization is from April 2018; all 2018 models use it.
FIXED_STANDARDIZATION_FROM = "20180101"

# davidsandberg's scopes of the repeated blocks -> our layer-name prefix (the last Block8 is numbered at map time)
_BLOCKS = (("Repeat/block35_", "Block35_", "block35"), ("Repeat_1/block17_", "Block17_", "block17"),
           ("Repeat_2/block8_", "Block8_", "block8"))
_SCALE = re.compile(r"^(?P<block>Repeat(_\d+)?/block\d+_\d+|Block8)/mul/[xy]$")  # a residual block's scale
_OPTIMIZER_SLOT = re.compile(r"/(Adam|Adam_1|RMSProp|RMSProp_1|Momentum|Adagrad|Adadelta|Adadelta_1|Ftrl|Ftrl_1|"
                             r"ExponentialMovingAverage)$")
_DATE = re.compile(r"(?<!\d)(20\d{6})-\d{6}(?!\d)")


class Tf1ImportError(ValueError):
    """A file that cannot be imported; one line naming the file and why."""


@dataclasses.dataclass
class _Source:
    """What was read from the file: the network's arrays by TensorFlow name, the graph (for settings), what was
    left out."""

    path: Path
    format: str
    arrays: dict[str, np.ndarray]
    graph: object  # a tf.compat.v1.GraphDef (TensorFlow is imported where it is used)
    ignored: list[str]


# ---------------------------------------------------------------------------------------------------- reading


def _fail(path, why: str) -> Tf1ImportError:
    return Tf1ImportError(f"cannot import '{path}': {why}")


def _parse(message, path: Path, what: str):
    try:
        data = path.read_bytes()
        message.ParseFromString(data)
    except DecodeError as error:
        raise _fail(path, f"not a TensorFlow {what} ({error})") from None
    except OSError as error:
        raise _fail(path, f"unreadable ({error.strerror or error})") from None
    return message


def _is_structural(array: np.ndarray) -> bool:
    """Graph plumbing rather than weights: integer/bool/string constants (axes, shapes), scalars and empty arrays
    (a dropout keep probability, the empty mean/variance a training-mode batch norm is fed)."""
    return not np.issubdtype(array.dtype, np.floating) or array.size <= 1


def _read_frozen_graph(path: Path) -> _Source:
    import tensorflow as tf

    graph = _parse(tf.compat.v1.GraphDef(), path, "GraphDef (frozen graph .pb)")
    if not graph.node:
        raise _fail(path, "not a TensorFlow GraphDef (it has no nodes)")
    arrays, ignored = {}, []
    for node in graph.node:
        if node.op != "Const" or not node.name.startswith(SCOPE):
            continue
        array = tf.make_ndarray(node.attr["value"].tensor)
        if _target(node.name[len(SCOPE):]) is None and _is_structural(array):
            ignored.append(node.name)
        else:
            arrays[node.name] = array
    return _Source(path, FROZEN_GRAPH, arrays, graph, ignored)


def _checkpoint_files(path: Path) -> tuple[Path, str]:
    """(the .meta file, the checkpoint prefix) of a checkpoint folder or of its .meta file."""
    import tensorflow as tf

    folder = path if path.is_dir() else path.parent
    if path.is_dir():
        metas = sorted(folder.glob("*.meta"))
        if len(metas) != 1:
            raise _fail(path, f"a checkpoint folder holds one .meta file; found {len(metas)}"
                        + (f" ({', '.join(m.name for m in metas)})" if metas else ""))
        meta = metas[0]
    else:
        meta = path
    prefix = None
    if Path(f"{meta.with_suffix('')}.index").is_file():  # saved with its meta graph: <prefix>.meta
        prefix = str(meta.with_suffix(""))
    if prefix is None:
        prefix = tf.train.latest_checkpoint(str(folder))
    if prefix is None:
        indexes = sorted(folder.glob("*.index"))
        if len(indexes) != 1:
            raise _fail(path, f"cannot tell which checkpoint to read: {len(indexes)} .index files in '{folder}' and "
                        "no 'checkpoint' state file")
        prefix = str(indexes[0].with_suffix(""))
    return meta, prefix


def _read_checkpoint(path: Path) -> _Source:
    import tensorflow as tf

    meta_path, prefix = _checkpoint_files(path)
    meta = _parse(tf.compat.v1.MetaGraphDef(), meta_path, "MetaGraphDef (.meta)")
    if not meta.graph_def.node:
        raise _fail(meta_path, "not a TensorFlow MetaGraphDef (its graph has no nodes)")
    try:
        reader = tf.train.load_checkpoint(prefix)
    except (tf.errors.OpError, ValueError) as error:
        raise _fail(path, f"cannot read the checkpoint '{prefix}' ({str(error).splitlines()[0]})") from None
    arrays, ignored = {}, []
    for name in sorted(reader.get_variable_to_shape_map()):
        if not name.startswith(SCOPE) or _OPTIMIZER_SLOT.search(name):
            ignored.append(name)
        else:
            arrays[name] = reader.get_tensor(name)
    # the residual scales are Python floats in davidsandberg's code: graph constants, not variables
    for node in meta.graph_def.node:
        if node.op == "Const" and node.name.startswith(SCOPE) and _SCALE.match(node.name[len(SCOPE):]):
            arrays[node.name] = tf.make_ndarray(node.attr["value"].tensor)
    return _Source(path, CHECKPOINT, arrays, meta.graph_def, ignored)


def read_tf1(path: str | os.PathLike) -> _Source:
    """Reads the network's arrays of a frozen ``.pb``, a checkpoint ``.meta`` or a checkpoint folder."""
    path = Path(path).expanduser()
    if path.is_dir() or path.suffix == ".meta":
        source = _read_checkpoint(path)
    elif path.suffix == ".pb" and path.is_file():
        source = _read_frozen_graph(path)
    elif not path.exists():
        raise _fail(path, "no such file or folder")
    else:
        raise _fail(path, "expected a frozen graph (.pb), a checkpoint .meta file or a checkpoint folder")
    if not source.arrays:
        raise _fail(path, f"no {SCOPE[:-1]} arrays in this {source.format} (is it a davidsandberg/facenet "
                          "Inception-ResNet-v1?)")
    return source


# ---------------------------------------------------------------------------------------------------- mapping


def _target(name: str) -> tuple[str, str, str] | None:
    """``(kind, our scope, what)`` for a TensorFlow name without the ``InceptionResnetV1/`` prefix, or None.

    kind ``variable``: what is the variable's short name; ``folded``: the offset of a folded batch norm; ``gamma``:
    a batch-norm scale (must be ones); ``scale``: a residual scale. The scope keeps ``/`` (``Block8/`` not yet
    numbered); ``_layer_name`` turns it into our layer name."""
    scale = _SCALE.match(name)
    if scale:
        return "scale", scale["block"], "scale"
    scope, _, leaf = name.rpartition("/")
    if not scope:
        return None
    if leaf == "weights":
        return "variable", scope, "kernel"
    if leaf == "biases":
        return "variable", scope, "bias"
    if leaf.endswith("_bn_offset"):
        return "folded", f"{scope}/BatchNorm", "beta"
    owner, _, last = scope.rpartition("/")
    if last == "BatchNorm" and owner:
        if leaf in ("beta", "moving_mean", "moving_variance"):
            return "variable", f"{owner}/BatchNorm", leaf
        if leaf in ("gamma", "Const"):
            return "gamma", f"{owner}/BatchNorm", "gamma"
    return None


def _layer_name(scope: str, last_block8: int) -> str:
    """``Repeat/block35_2/Branch_1/Conv2d_0a_1x1`` -> ``Block35_2_Branch_1_Conv2d_0a_1x1``;
    ``Block8/Conv2d_1x1`` -> ``Block8_6_Conv2d_1x1``; ``Conv2d_1a_3x3/BatchNorm`` -> ``Conv2d_1a_3x3_BatchNorm``."""
    for theirs, ours, _ in _BLOCKS:
        if scope.startswith(theirs):
            scope = ours + scope[len(theirs):]
            break
    else:
        if scope == "Block8" or scope.startswith("Block8/"):
            scope = f"Block8_{last_block8}" + scope[len("Block8"):]
    return scope.replace("/", "_")


def _repeats(names) -> dict[str, int]:
    """How many blocks of each family the arrays name: ``{"block35": 5, "block17": 10, "block8": 5}``."""
    found: dict[str, set[int]] = defaultdict(set)
    for name in names:
        for theirs, _, family in _BLOCKS:
            match = re.match(re.escape(theirs) + r"(\d+)/", name)
            if match:
                found[family].add(int(match[1]))
    counts = {}
    for _, _, family in _BLOCKS:
        numbers = found.get(family, set())
        if numbers != set(range(1, len(numbers) + 1)):
            raise ValueError(f"{family} blocks are not numbered 1..n: {sorted(numbers)}")
        counts[family] = len(numbers)
    return counts


def _float32_text(value) -> float:
    """The shortest decimal that is the same float32 (0.17 rather than 0.17000000178813934)."""
    return float(str(np.float32(value)))


def _graph_epsilon(source: _Source) -> tuple[float, str]:
    """The batch-norm epsilon of the network's batch norms, and where it was read."""
    import tensorflow as tf

    found = set()
    for node in source.graph.node:
        if not node.name.startswith(SCOPE):
            continue
        if node.op.startswith("FusedBatchNorm") and "epsilon" in node.attr:
            found.add(np.float32(node.attr["epsilon"].f))
        elif node.op == "Const" and node.name.endswith("/BatchNorm/batchnorm/add/y"):
            found.add(np.float32(tf.make_ndarray(node.attr["value"].tensor)))
    if len(found) > 1:
        raise _fail(source.path, f"its batch norms use different epsilons {sorted(map(float, found))}; the model "
                                 "has one")
    if found:
        return _float32_text(found.pop()), "the graph's batch-norm nodes"
    return DEFAULTS["batch_norm_epsilon"], "davidsandberg's default (no batch-norm node in the graph)"


def _graph_input(source: _Source) -> tuple[tuple[int, int], int | None]:
    """((height, width), batch size) of the graph's ``input`` node where they are fixed; else 160 x 160."""
    for node in source.graph.node:
        if node.name == "input" and "shape" in node.attr and not node.attr["shape"].shape.unknown_rank:
            dims = [d.size for d in node.attr["shape"].shape.dim]
            if len(dims) == 4 and dims[1] > 0 and dims[2] > 0:
                return (dims[1], dims[2]), (dims[0] if dims[0] > 0 else None)
    return (DEFAULT_INPUT_SIZE, DEFAULT_INPUT_SIZE), None


def preprocessing_for(path: str | os.PathLike) -> tuple[str, str]:
    """The preprocessing of a davidsandberg model from the date in its file name (``20180408-102900``), and why;
    ValueError naming the file when there is no date."""
    match = _DATE.search(str(path))
    if match is None:
        raise _fail(path, "its preprocessing cannot be told from its name (no davidsandberg model date such as "
                          "20180408-102900): pass preprocessing='fixed' (2018 models) or 'prewhiten' (2017 models)")
    date = match[1]
    name = "fixed" if date >= FIXED_STANDARDIZATION_FROM else "prewhiten"
    return name, f"model date {match[0]} in the file name"


def load_tf1_model(path: str | os.PathLike, preprocessing: str | None = None,
                   ) -> tuple[keras.Model, dict, PretrainedReport]:
    """``(model, metadata, report)`` for a davidsandberg/facenet Inception-ResNet-v1 in TensorFlow 1 format.

    ``path``: a frozen graph ``.pb``, a checkpoint ``.meta`` file or a checkpoint folder (one ``.meta``; the
    variables of its latest checkpoint). ``preprocessing``: ``"fixed"`` or ``"prewhiten"``; None reads it from the
    model date in the file name (see the module docstring). The model is ``build_inception_resnet_v1`` at the
    graph's input size (160 x 160 where the graph does not fix it), embedding size (the bottleneck's width), block
    counts, residual scales and batch-norm epsilon, with every variable filled from the file.

    ``metadata``: format, input size, preprocessing (name, formula, how it was chosen), embedding size, batch-norm
    epsilon and whether batch norm was folded, block counts and scales, the graph's fixed batch size.
    ``report``: a ``PretrainedReport`` (also set as ``model.pretrained_report``) with every array's assignment.
    Anything that does not fit (not a graph, no ``InceptionResnetV1/`` arrays, an array that maps to nothing or
    to a variable of another shape, a variable that no array fills) raises one line of ``ValueError`` naming the
    file.
    """
    source = read_tf1(path)
    path = source.path
    if preprocessing is None:
        preprocessing, chosen = preprocessing_for(path)
    elif preprocessing in PREPROCESSING:
        chosen = "given"
    else:
        raise _fail(path, f"preprocessing must be one of {sorted(PREPROCESSING)}, got {preprocessing!r}")

    names = {name: name[len(SCOPE):] for name in source.arrays}
    try:
        repeats = _repeats(names.values())
    except ValueError as error:
        raise _fail(path, str(error)) from None
    last_block8 = repeats["block8"] + 1
    problems: list[str] = []
    targets = {}
    for name, relative in names.items():
        target = _target(relative)
        if target is None:
            problems.append(f"{name} {source.arrays[name].shape} maps to no layer")
        else:
            kind, scope, what = target
            layer = _layer_name(scope, last_block8) + ("_ScaleSum" if kind == "scale" else "")
            targets[name] = (kind, layer, what)

    bottleneck = source.arrays.get(f"{SCOPE}Bottleneck/weights")
    if bottleneck is None or bottleneck.ndim != 2:
        raise _fail(path, f"no 2-D {SCOPE}Bottleneck/weights (the embedding layer) among its "
                          f"{len(source.arrays)} {SCOPE[:-1]} arrays")
    epsilon, epsilon_from = _graph_epsilon(source)
    scales = {}
    final = f"Block8_{last_block8}_ScaleSum"
    for family, setting in (("Block35_", "block35_scale"), ("Block17_", "block17_scale"),
                            ("Block8_", "block8_scale"), (final, "final_block_scale")):
        values = {_float32_text(source.arrays[name]) for name, (kind, layer, _) in targets.items()
                  if kind == "scale" and layer.startswith(family)
                  and (setting == "final_block_scale") == (layer == final)}
        if len(values) > 1:
            problems.append(f"the {family}* blocks use different residual scales {sorted(values)}; the model "
                            "has one per block family")
        scales[setting] = values.pop() if values else DEFAULTS[setting]
    input_size, batch = _graph_input(source)
    model = build_inception_resnet_v1(
        (*input_size, 3), embedding_dim=int(bottleneck.shape[1]), preprocessing=preprocessing,
        block35_repeats=repeats["block35"], block17_repeats=repeats["block17"], block8_repeats=repeats["block8"],
        batch_norm_epsilon=epsilon, **scales)

    file_layers: dict[str, list[SourceArray]] = defaultdict(list)
    settings: list[ArrayAssignment] = []
    setting_targets: dict[tuple[str, str], list[str]] = defaultdict(list)
    variance = np.float32(1.0) - np.float32(epsilon)
    if np.float32(variance + np.float32(epsilon)) != np.float32(1.0):
        raise _fail(path, f"a folded batch norm cannot be represented exactly with epsilon {epsilon}")
    folded = 0
    for name, (kind, layer, what) in targets.items():
        array = source.arrays[name]
        if kind == "variable":
            file_layers[layer].append(SourceArray(name, what, array))
        elif kind == "folded":
            folded += 1
            file_layers[layer].append(SourceArray(name, "beta", array))
            derived_from = f"{name} (folded batch norm)"
            file_layers[layer] += [SourceArray(derived_from, "moving_mean", np.zeros_like(array), derived=True),
                                   SourceArray(derived_from, "moving_variance", np.full_like(array, variance),
                                               derived=True)]
        else:  # a setting: checked against the built model, not copied
            setting_targets[(layer, what)].append(name)
            problems += _check_setting(model, name, kind, layer, array)
            settings.append(ArrayAssignment(layer, name, f"{layer}/{what}", array.shape))
    problems += [f"{layer}: {what} given by {len(found)} arrays ({', '.join(found)})"
                 for (layer, what), found in setting_targets.items() if len(found) > 1]
    problems += [f"{layer.name}: no residual scale (<block>/mul/x) in the {source.format}"
                 for layer in model.layers
                 if isinstance(layer, ScaledResidual) and (layer.name, "scale") not in setting_targets]
    plan, assign_problems = plan_assignment(model, dict(file_layers))
    problems += assign_problems
    if problems:
        shown = "; ".join(problems[:8]) + (f"; ... and {len(problems) - 8} more" if len(problems) > 8 else "")
        raise _fail(path, f"{len(problems)} array(s) do not fit {model.name} (embedding "
                          f"{bottleneck.shape[1]}-D): {shown}")
    assignments, derived = apply_assignment(plan)
    report = PretrainedReport(
        source=str(path), file_arrays=len(source.arrays), file_values=sum(a.size for a in source.arrays.values()),
        assignments=assignments, settings=tuple(settings), derived=derived, ignored=tuple(source.ignored))
    model.pretrained_report = report
    metadata = {
        "source": str(path),
        "format": source.format,
        "input_size": list(input_size),
        "graph_batch_size": batch,
        "preprocessing": preprocessing,
        "preprocessing_formula": PREPROCESSING[preprocessing],
        "preprocessing_from": chosen,
        "embedding_dim": int(bottleneck.shape[1]),
        "batch_norm_epsilon": epsilon,
        "batch_norm_epsilon_from": epsilon_from,
        "folded_batch_norms": folded,
        "block_repeats": repeats,
        "residual_scales": scales,
    }
    return model, metadata, report


def _check_setting(model: keras.Model, name: str, kind: str, layer: str, array: np.ndarray) -> list[str]:
    """A graph array that is a setting of the architecture: a residual scale must be the built layer's (it was
    built from these arrays, so this checks the mapping), a batch-norm scale must be ones (our layers have none)."""
    try:
        target = model.get_layer(layer)
    except ValueError:
        return [f"{name}: no layer {layer} in the model"]
    if kind == "scale":
        if array.size != 1 or np.float32(array.reshape(-1)[0]) != np.float32(getattr(target, "scale", np.nan)):
            return [f"{name}: residual scale {array.tolist()} != {layer}'s {getattr(target, 'scale', None)}"]
        return []
    channels = target.weights[0].shape if target.weights else None
    if channels is None or array.shape != tuple(channels):
        return [f"{name}: batch-norm scale shape {array.shape} != {layer}'s {tuple(channels or ())}"]
    if not np.all(array == 1):
        return [f"{name}: batch-norm scale is not all ones (range {array.min():g}..{array.max():g}) but {layer} "
                "has no scale"]
    return []


# ---------------------------------------------------------------------------------------------------- caching


def convert_once(path: str | os.PathLike, target: str | os.PathLike, preprocessing: str | None = None) -> Path:
    """The ``.keras`` conversion of ``path`` at ``target``: written (atomically) if it is not there yet."""
    target = Path(target)
    if not target.is_file():
        model, _, _ = load_tf1_model(path, preprocessing)
        with atomic_file(target, suffix=".keras") as tmp:
            model.save(tmp)
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m facenet_tf.models.tf1_import",
                                     description="Convert a davidsandberg/facenet TensorFlow 1 Inception-ResNet-v1 "
                                                 "(.pb, .meta, checkpoint folder or registered name) to .keras.")
    parser.add_argument("source", help="a frozen .pb, a checkpoint .meta or folder, or a registered weights name")
    parser.add_argument("--output", required=True, help="the .keras file to write")
    parser.add_argument("--preprocessing", choices=sorted(PREPROCESSING), default=None,
                        help="default: the registry entry's, else from the model date in the file name")
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args(argv)
    preprocessing, path = args.preprocessing, Path(args.source)
    if args.source in REGISTRY:
        entry = REGISTRY[args.source]
        path, preprocessing = resolve_weights(entry), preprocessing or entry.preprocessing
    try:
        with atomic_file(args.output, overwrite=args.overwrite, suffix=".keras") as tmp:
            model, metadata, report = load_tf1_model(path, preprocessing)
            model.save(tmp)
    except (ValueError, FileExistsError) as error:
        parser.exit(1, f"{parser.prog}: error: {error}\n")
    print(f"{report.file_arrays} arrays ({report.file_values:,} values): {len(report.assignments)} copied, "
          f"{len(report.settings)} checked settings, {len(report.derived)} derived, {len(report.ignored)} ignored; "
          f"complete: {report.complete}")
    print(", ".join(f"{key} {value}" for key, value in metadata.items() if key != "source"))
    print("wrote", args.output)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
