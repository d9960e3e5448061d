"""TFLite export for phones (paper: NNS2, "30 ms/image on a 2015 phone"), run with ``ai_edge_litert``.

Variants (``VARIANTS``):

- ``float32``: the graph as is.
- ``float16``: weights stored as float16 (half the size); computed in float32 on CPUs.
- ``dynamic_int8``: dynamic-range quantisation: int8 weights (per channel), activations quantised on the fly;
  float32 in and out. No calibration data.
- ``int8``: full-integer quantisation: int8 weights and activations, **int8 input and output**. Activation ranges
  come from a representative dataset: real centre-aligned LFW faces of identities outside View 2
  (``facenet_tf.export.calibration.calibration_images``). The input scale is 1 and its zero point -128 when the
  calibration images span 0-255, so uint8 pixels p are fed exactly as p - 128; the output is the L2-normalised
  embedding in int8 (TFLite's L2_NORMALIZATION fixes its scale to 1/128).

Accuracy knobs of ``int8`` (``results/export_tflite.md`` reports what each gave): the number of representative
images, per-channel or per-tensor weight scales, and ops kept in float (``float_nodes``).

Every model takes NHWC RGB 0-255 at the model's input size with a dynamic batch (resize the input tensor).
:class:`TFLiteEmbeddingModel` hides the variant differences: float32 images in, float32 L2-normalised
embeddings out (int8 inputs are quantised with the model's input parameters; int8 outputs are dequantised and
renormalised). ``tflite_embedder`` wraps it as a ``facenet_tf.evaluation.embed.Embedder``, so ``evaluate_lfw``
measures any variant.

Metadata: ``<name>.json`` beside ``<name>.tflite``, and the same JSON embedded in the flatbuffer as the metadata
entry ``facenet_tf_metadata`` (``read_embedded_metadata`` reads it with ``ai_edge_litert``'s schema, no
TensorFlow needed).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from facenet_tf.evaluation.embed import Embedder, l2_normalize
from facenet_tf.export.calibration import Threshold
from facenet_tf.atomic import check_replaceable, write_directory_atomically
from facenet_tf.export.metadata import TFLITE_METADATA_NAME, base_metadata, check_pixels
from facenet_tf.export.metadata import tflite_text as _text
from facenet_tf.export.source import ModelSource, from_keras_model


@dataclasses.dataclass(frozen=True)
class Variant:
    name: str
    description: str
    needs_representative_data: bool = False


VARIANTS: dict[str, Variant] = {v.name: v for v in [
    Variant("float32", "float32 weights and activations"),
    Variant("float16", "float16 weights, float32 computation"),
    Variant("dynamic_int8", "dynamic-range: int8 weights, activations quantised at run time; float32 in/out"),
    Variant("int8", "full integer: int8 weights and activations, int8 input and output", True),
]}

#: Representative images used by default for full-integer quantisation.
DEFAULT_CALIBRATION_IMAGES = 200


def check_variants(variants: Iterable[str]) -> list[str]:
    """The variants, validated (``ValueError`` naming the valid ones), in the order given, without repeats."""
    variants = list(dict.fromkeys(variants))
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown or not variants:
        raise ValueError(f"unknown TFLite variants {unknown}; choose from {list(VARIANTS)}")
    return variants


# --------------------------------------------------------------------------------------------------- conversion


def write_plain_saved_model(model, path: str | os.PathLike) -> Path:
    """A SavedModel with one signature, ``serving_default``: images float32 [None, H, W, 3] -> embeddings.

    The converter's input: no assertions or string ops, only the model; the variables the function reads are
    tracked directly (``tf.Variable``s), which is what lets the converter freeze them into constants.
    """
    import tensorflow as tf

    height, width = int(model.input.shape[1]), int(model.input.shape[2])
    spec = tf.TensorSpec([None, height, width, 3], tf.float32, name="images")
    function = tf.function(lambda images: {"embeddings": model(images, training=False)}, input_signature=[spec])
    module = tf.Module()
    module.serve = function
    module.used_variables = list(function.get_concrete_function().variables)
    tf.saved_model.save(module, os.fspath(path), signatures={"serving_default": function})
    return Path(path)


def convert_saved_model(saved_model_dir: str | os.PathLike, variant: str,
                        representative_images: np.ndarray | None = None,
                        per_channel: bool = True, float_nodes: Sequence[str] = ()) -> bytes:
    """Converts a plain SavedModel (``write_plain_saved_model``) to the flatbuffer of ``variant``.

    ``representative_images`` (uint8 or float, N×H×W×3, 0-255) are required for ``int8``; each is fed alone.
    Accuracy knobs of ``int8``: ``per_channel=False`` quantises weights per tensor instead of per channel;
    ``float_nodes`` (regular expressions) keeps the ops whose output tensor names match in float32
    (``keep_nodes_float``), with int8 input and output still.
    """
    import tensorflow as tf

    (variant,) = check_variants([variant])
    converter = tf.lite.TFLiteConverter.from_saved_model(os.fspath(saved_model_dir))
    if variant != "float32":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if variant == "float16":
        converter.target_spec.supported_types = [tf.float16]
    if variant == "int8":
        if representative_images is None or len(representative_images) == 0:
            raise ValueError("the 'int8' variant needs representative images (calibration_images())")
        images = np.asarray(representative_images)

        def representative_dataset():
            for image in images:
                yield [image[None].astype(np.float32)]

        converter.representative_dataset = representative_dataset
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    if not per_channel:
        converter._experimental_disable_per_channel = True  # noqa: SLF001  (the converter's only switch for it)
    if float_nodes:
        if variant != "int8":
            raise ValueError("float_nodes only applies to the 'int8' variant")
        return keep_nodes_float(converter, float_nodes)
    return converter.convert()


def keep_nodes_float(converter, patterns: Sequence[str]) -> bytes:
    """Full-integer model with int8 input/output in which the ops whose output tensor names match any of
    ``patterns`` run in float32 (quantize/dequantize around them): ``tf.lite.experimental.QuantizationDebugger``
    with ``denylisted_nodes``, then the converter's own int8 input/output rewrite (``modify_model_io_type``,
    a TensorFlow-internal helper: the public converter has no switch for selective quantisation). The debugger
    runs TensorFlow's deprecated ``tf.lite.Interpreter`` internally (hence its deprecation warning); everything
    this package runs uses ``ai_edge_litert``. On the pretrained Inception-ResNet-v1, keeping the preprocessing
    and the bottleneck in float did not bring the embeddings closer (``results/export_tflite.md``)."""
    import re

    import tensorflow as tf
    from ai_edge_litert import schema_py_generated as schema
    from tensorflow.lite.python.util import modify_model_io_type

    for attribute in ("inference_input_type", "inference_output_type"):  # the debugger calibrates in float
        setattr(converter, attribute, tf.float32)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    options = tf.lite.experimental.QuantizationDebugOptions(fully_quantize=True)
    debugger = tf.lite.experimental.QuantizationDebugger(converter=converter, debug_options=options)
    root = schema.Model.GetRootAs(debugger.calibrated_model, 0)
    graph = root.Subgraphs(0)
    names = [_text(graph.Tensors(i).Name()) for i in range(graph.TensorsLength())]
    compiled = [re.compile(p) for p in patterns]
    chosen = sorted({n for n in names if any(p.search(n) for p in compiled)})
    if not chosen:
        raise ValueError(f"no tensor name matches {list(patterns)}; names look like {names[:5]}")
    debugger.options = tf.lite.experimental.QuantizationDebugOptions(fully_quantize=True, denylisted_nodes=chosen)
    return modify_model_io_type(debugger.get_nondebug_quantized_model(), tf.int8, tf.int8)


def convert_model(model, variant: str, representative_images: np.ndarray | None = None,
                  per_channel: bool = True, float_nodes: Sequence[str] = ()) -> bytes:
    """Keras embedding model -> TFLite flatbuffer of ``variant`` (through a temporary plain SavedModel)."""
    with tempfile.TemporaryDirectory(prefix="facenet_tf_tflite_") as scratch:
        saved = write_plain_saved_model(model, Path(scratch) / "saved_model")
        return convert_saved_model(saved, variant, representative_images, per_channel, float_nodes)


# ------------------------------------------------------------------------------------------------------ metadata


def embed_metadata(flatbuffer: bytes, metadata: dict[str, Any], name: str = TFLITE_METADATA_NAME) -> bytes:
    """The flatbuffer with ``metadata`` (JSON, UTF-8) added as the model metadata entry ``name`` (an existing
    entry of that name is replaced). LiteRT ignores metadata it does not know."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(bytearray(flatbuffer), 0)
    model.buffers = model.buffers or []
    model.metadata = [m for m in (model.metadata or []) if _text(m.name) != name]
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(json.dumps(metadata, sort_keys=False).encode(), np.uint8)
    model.buffers.append(buffer)
    entry = schema.MetadataT()
    entry.name = name
    entry.buffer = len(model.buffers) - 1
    model.metadata.append(entry)
    builder = flatbuffers.Builder(len(flatbuffer) + 4096)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


# ------------------------------------------------------------------------------------------------------- running


class TFLiteEmbeddingModel:
    """A .tflite embedding model in ``ai_edge_litert``: float32 RGB 0-255 images (N, H, W, 3) in, float32
    L2-normalised embeddings out, whatever the variant (int8 in/out is converted here)."""

    def __init__(self, model: str | os.PathLike | bytes, num_threads: int | None = None,
                 renormalize: bool = True):
        from ai_edge_litert.interpreter import Interpreter

        if isinstance(model, (bytes, bytearray)):
            self.interpreter = Interpreter(model_content=bytes(model), num_threads=num_threads)
            self.path = None
        else:
            self.interpreter = Interpreter(model_path=os.fspath(model), num_threads=num_threads)
            self.path = Path(model)
        self.renormalize = renormalize
        (self._input,) = self.interpreter.get_input_details()
        (self._output,) = self.interpreter.get_output_details()
        shape = self._input["shape_signature"]
        if len(shape) != 4 or shape[3] != 3:
            raise ValueError(f"expected a model taking (N, H, W, 3) images, its input is {list(shape)}")
        self.input_size = (int(shape[1]), int(shape[2]))
        self.embedding_size = int(self._output["shape_signature"][-1])
        self._batch = None

    @property
    def input_dtype(self) -> np.dtype:
        return np.dtype(self._input["dtype"])

    @property
    def output_dtype(self) -> np.dtype:
        return np.dtype(self._output["dtype"])

    @property
    def input_quantization(self) -> tuple[float, int]:
        return tuple(self._input["quantization"])

    @property
    def output_quantization(self) -> tuple[float, int]:
        return tuple(self._output["quantization"])

    def _prepare(self, batch: int) -> None:
        if batch != self._batch:
            self.interpreter.resize_tensor_input(self._input["index"], [batch, *self.input_size, 3], strict=True)
            self.interpreter.allocate_tensors()
            self._batch = batch

    def quantize_input(self, images: np.ndarray) -> np.ndarray:
        """Images as the model's input dtype (int8 models: ``round(x / scale + zero_point)``, clipped)."""
        images = np.asarray(images, np.float32)
        if self.input_dtype == np.float32:
            return images
        scale, zero_point = self.input_quantization
        info = np.iinfo(self.input_dtype)
        return np.clip(np.rint(images / scale + zero_point), info.min, info.max).astype(self.input_dtype)

    def run(self, images: np.ndarray) -> np.ndarray:
        """The raw output (int8 for the ``int8`` variant) of one batch; ``ValueError`` for another image size or
        pixel values that are not finite values in [0, 255] (``metadata.check_pixels``). An empty batch gives
        (0, d) without running the interpreter."""
        images = np.asarray(images)
        expected = (*self.input_size, 3)
        if images.ndim != 4 or images.shape[1:] != expected:
            raise ValueError(f"expected images of shape (N, {expected[0]}, {expected[1]}, 3), got {images.shape}")
        check_pixels(images)
        if len(images) == 0:
            return np.zeros((0, self.embedding_size), self.output_dtype)
        self._prepare(len(images))
        self.interpreter.set_tensor(self._input["index"], self.quantize_input(images))
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self._output["index"]).copy()

    def __call__(self, images: np.ndarray) -> np.ndarray:
        out = self.run(images)
        if self.output_dtype != np.float32:
            scale, zero_point = self.output_quantization
            out = (out.astype(np.float32) - zero_point) * np.float32(scale)
        out = out.astype(np.float32)
        if not np.isfinite(out).all():
            raise ValueError("the TFLite model gave NaN or infinite embeddings")
        return l2_normalize(out).astype(np.float32) if self.renormalize else out


def tflite_embedder(model: str | os.PathLike | bytes, num_threads: int | None = None, name: str | None = None,
                    renormalize: bool = True) -> Embedder:
    """An :class:`Embedder` running a .tflite embedding model (see :class:`TFLiteEmbeddingModel`)."""
    runner = TFLiteEmbeddingModel(model, num_threads, renormalize)
    label = name or (f"tflite:{runner.path}" if runner.path is not None else "tflite")
    return Embedder(runner, runner.input_size, label)


def embedding_parity(reference: np.ndarray, candidate: np.ndarray) -> dict[str, float]:
    """How close ``candidate`` embeddings are to ``reference`` (same rows): the largest absolute component
    difference and the smallest / mean cosine similarity."""
    reference = np.asarray(reference, np.float64)
    candidate = np.asarray(candidate, np.float64)
    if reference.shape != candidate.shape or reference.ndim != 2 or len(reference) == 0:
        raise ValueError(f"expected two non-empty (N, d) arrays of one shape, got {reference.shape} and "
                         f"{candidate.shape}")
    cosine = np.einsum("nd,nd->n", l2_normalize(reference), l2_normalize(candidate))
    return {"n": int(len(reference)), "max_abs_difference": float(np.abs(reference - candidate).max()),
            "min_cosine": float(cosine.min()), "mean_cosine": float(cosine.mean())}


# -------------------------------------------------------------------------------------------------------- export


@dataclasses.dataclass(frozen=True)
class TFLiteExport:
    variant: str
    path: Path
    metadata_path: Path
    size_bytes: int
    metadata: dict[str, Any]


def tflite_metadata(source: ModelSource, variant: str, flatbuffer: bytes, threshold: Threshold | None,
                    calibration: dict[str, Any] | None) -> dict[str, Any]:
    runner = TFLiteEmbeddingModel(flatbuffer)
    metadata = base_metadata(source, "tflite")
    metadata["variant"] = {"name": variant, "description": VARIANTS[variant].description}
    metadata["tensors"] = {
        "input": {"dtype": runner.input_dtype.name, "shape": [-1, *runner.input_size, 3],
                  **_quantization(runner.input_dtype, runner.input_quantization, "pixel")},
        "output": {"dtype": runner.output_dtype.name, "shape": [-1, runner.embedding_size],
                   **_quantization(runner.output_dtype, runner.output_quantization, "embedding")},
    }
    metadata["runtime"] = "ai_edge_litert.interpreter.Interpreter; resize the input to [N, H, W, 3] for a batch"
    if calibration is not None:
        metadata["calibration"] = calibration
    if threshold is not None:
        metadata["threshold"] = threshold.to_dict()
    return metadata


def _quantization(dtype: np.dtype, quantization: tuple[float, int], what: str) -> dict[str, Any]:
    if dtype == np.float32:
        return {}
    scale, zero_point = quantization
    shifted = f"q - {zero_point}" if zero_point >= 0 else f"q + {-zero_point}"
    return {"scale": scale, "zero_point": zero_point, "formula": f"real {what} = ({shifted}) * {scale:.9g}"}


def is_tflite_export(folder: Path) -> bool:
    """Whether ``folder`` holds only what :func:`export_tflite` writes: ``.tflite`` files, each with its ``.json``
    metadata beside it, and ``.json`` files whose ``format`` is ``tflite``; nothing else (no subfolder, no link)."""
    for entry in folder.iterdir():
        if entry.is_symlink() or not entry.is_file() or entry.suffix not in (".tflite", ".json"):
            return False
        if entry.suffix == ".tflite" and not entry.with_suffix(".json").is_file():
            return False
        if entry.suffix == ".json":
            try:
                if json.loads(entry.read_text()).get("format") != "tflite":
                    return False
            except (ValueError, AttributeError, OSError):
                return False
    return True


TFLITE_EXPORT = "a TFLite export (only .tflite files and their .json metadata)"


def export_tflite(source: ModelSource | Any, output_dir: str | os.PathLike, variants: Iterable[str] = tuple(VARIANTS),
                  representative_images: np.ndarray | None = None,
                  num_calibration_images: int = DEFAULT_CALIBRATION_IMAGES, lfw_root: str | os.PathLike | None = None,
                  threshold: Threshold | None = None, per_channel: bool = True, float_nodes: Sequence[str] = (),
                  basename: str | None = None, crop_size: int | None = None, overwrite: bool = False,
                  log: Callable[[str], None] | None = None) -> dict[str, TFLiteExport]:
    """Converts ``source`` to each variant: ``<output_dir>/<basename>_<variant>.tflite`` (with metadata embedded)
    and ``<basename>_<variant>.json``. ``basename`` defaults to the model's name.

    The folder is written atomically: every variant is built in a hidden sibling that replaces ``output_dir`` only
    when all are done, so a failed or killed export leaves no mixture of old and new files. ``overwrite``:
    replace an existing folder, only if it is a TFLite export (``is_tflite_export``) or empty; checked before
    any work. A model whose embeddings of the check batch are not finite raises ``NonFiniteModelError``.

    ``int8`` needs ``representative_images``; when None, ``num_calibration_images`` centre-aligned LFW faces of
    identities outside View 2 are used (``calibration_images``, centre crop ``crop_size``) from ``lfw_root``, the
    LFW root the command resolved (``facenet_tf.paths.command_lfw_root``).
    """
    if not isinstance(source, ModelSource):
        source = from_keras_model(source)
    variants = check_variants(variants)
    check_replaceable(output_dir, overwrite, is_tflite_export, TFLITE_EXPORT)
    source.check_embeddings()
    log = log or (lambda message: None)
    calibration = None
    if "int8" in variants:
        if representative_images is None:
            from facenet_tf.export.calibration import aligned_crop_size, calibration_images

            chosen = calibration_images(source.input_size, num_calibration_images, lfw_root, crop_size=crop_size)
            representative_images = chosen.images
            calibration = {"images": len(chosen), "source": "LFW, centre-aligned, identities in no View 2 pair",
                           "crop_size": aligned_crop_size(crop_size), "excluded_identities": chosen.excluded_identities,
                           "first_files": list(chosen.paths[:3])}
        else:
            calibration = {"images": int(len(representative_images)), "source": "given by the caller"}
        calibration["per_channel"] = per_channel
        calibration["float_nodes"] = list(float_nodes)
    output_dir = Path(output_dir).absolute()
    basename = basename or source.name
    exports: dict[str, TFLiteExport] = {}

    def write(tmp: Path) -> None:
        tmp.mkdir()
        scratch = tmp / ".converter_input"  # inside tmp: a killed run's leftovers go with it
        saved = write_plain_saved_model(source.model, scratch)
        for variant in variants:
            log(f"converting {source.name} to TFLite {variant}")
            int8 = variant == "int8"
            flatbuffer = convert_saved_model(saved, variant, representative_images if int8 else None, per_channel,
                                             float_nodes if int8 else ())
            metadata = tflite_metadata(source, variant, flatbuffer, threshold,
                                       calibration if variant == "int8" else None)
            flatbuffer = embed_metadata(flatbuffer, metadata)
            name = f"{basename}_{variant}"
            (tmp / f"{name}.tflite").write_bytes(flatbuffer)
            (tmp / f"{name}.json").write_text(json.dumps(metadata, indent=2) + "\n")
            exports[variant] = TFLiteExport(variant, output_dir / f"{name}.tflite", output_dir / f"{name}.json",
                                            len(flatbuffer), metadata)
            log(f"converted {variant} ({len(flatbuffer) / 1e6:.2f} MB)")
        shutil.rmtree(scratch)

    write_directory_atomically(output_dir, write, overwrite=overwrite, replaceable=is_tflite_export,
                               what=TFLITE_EXPORT)
    log(f"wrote {output_dir}: {', '.join(e.path.name for e in exports.values())}")
    return exports
