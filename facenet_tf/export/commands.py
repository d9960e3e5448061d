"""What the export binaries do (``export/saved_model.py``, ``export/tflite.py``), as functions they call once.

Each validates its arguments before any heavy work, the output folder first (``facenet_tf.atomic.check_output``),
and raises :class:`ExportUsageError` for an output that exists or cannot be written, a wrong model name, missing
weights, an unknown variant or a missing threshold; :class:`ExportFailedError` when the export cannot be written
(full disk, I/O error; nothing is replaced then); ``NonFiniteModelError`` for a model giving NaN embeddings.
``run_binary`` turns these into one line on stderr and exit status 2 (usage) or 1 (failure), without a traceback.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from pathlib import Path
from typing import Any, Callable, Sequence, TypeVar

from facenet_tf import paths
from facenet_tf.atomic import OutputError, check_output, write_file_atomically
from facenet_tf.export.calibration import THRESHOLD_SPLIT, Threshold
from facenet_tf.export.source import ModelSource, ModelSourceError, NonFiniteModelError, load_model_source

T = TypeVar("T")
#: Exit statuses of the binaries: the request cannot be done as given; the export failed while running.
EXIT_USAGE, EXIT_FAILED = 2, 1


class ExportUsageError(ValueError):
    """The command was asked for something impossible (unknown model, missing weights, unknown variant, an output
    folder that exists or cannot be written ...)."""


class ExportFailedError(RuntimeError):
    """The export could not be written (full disk, I/O error); the previous output, if any, is untouched."""


def run_binary(command: Callable[[], Any]) -> int:
    """Runs a binary's command; an expected failure prints ``error: <one line>`` on stderr and gives the exit
    status (``EXIT_USAGE`` or ``EXIT_FAILED``) instead of a traceback. 0 on success."""
    try:
        command()
    except (ExportUsageError, OutputError) as error:
        return _report(error, EXIT_USAGE)
    except (ExportFailedError, NonFiniteModelError) as error:
        return _report(error, EXIT_FAILED)
    return 0


def usage_error(error: Exception) -> int:
    """``error: <one line>`` on stderr; the usage exit status (a binary's own checks, before ``run_binary``)."""
    return _report(error, EXIT_USAGE)


def _report(error: Exception, status: int) -> int:
    print("error: " + " ".join(str(error).split()), file=sys.stderr)
    return status


def check_output_dir(output_dir: str, overwrite: bool) -> None:
    """``--output_dir`` can be written as a folder (new, or existing with ``--overwrite``); before any work."""
    try:
        check_output(output_dir, overwrite, "--output_dir", kind="folder")
    except OutputError as error:
        raise ExportUsageError(str(error)) from error


def write_export(write: Callable[[], T], output_dir: str) -> T:
    """Runs the step that writes ``--output_dir``: an existing folder that is not an export of this kind is a
    usage error; a write that fails (full disk, I/O error) an :class:`ExportFailedError`, both naming the flag."""
    import tensorflow as tf

    try:
        return write()
    except FileExistsError as error:
        raise ExportUsageError(f"--output_dir: {error}") from error
    except (OSError, tf.errors.OutOfRangeError, tf.errors.ResourceExhaustedError, tf.errors.UnknownError,
            tf.errors.PermissionDeniedError, tf.errors.FailedPreconditionError, tf.errors.NotFoundError,
            tf.errors.DataLossError) as error:
        reason = str(error).strip().splitlines()[-1] if str(error).strip() else type(error).__name__
        raise ExportFailedError(f"--output_dir '{output_dir}' could not be written ({reason}); nothing was "
                                "replaced") from error


def load_source(model: str, weights: str | None) -> ModelSource:
    try:
        return load_model_source(model, weights)
    except ModelSourceError as error:
        raise ExportUsageError(str(error)) from error


def check_threshold_options(threshold: float | None, calibrate: str | None, required: bool) -> None:
    if threshold is not None and calibrate is not None:
        raise ExportUsageError("give either --threshold or --calibrate_threshold, not both")
    if required and threshold is None and calibrate is None:
        raise ExportUsageError(f"the export needs a verification threshold: --threshold=<squared L2 distance> or "
                               f"--calibrate_threshold={THRESHOLD_SPLIT}")
    if threshold is not None:
        try:
            Threshold(threshold)
        except ValueError as error:
            raise ExportUsageError(f"--threshold: {error}") from error


def check_lfw_root(root: str | os.PathLike | None, needed_by: list[str]) -> None:
    """Before any work: the steps that read LFW (``needed_by``, e.g. ``--calibrate_threshold``) have the LFW root
    the binary resolved."""
    if needed_by and root is None:
        raise ExportUsageError(f"LFW is needed by {' and '.join(needed_by)}, and no LFW root was found. "
                               f"{paths.LFW_HELP}")


def resolve_threshold(source: ModelSource, threshold: float | None, calibrate: str | None,
                      lfw_root: str | os.PathLike | None = None, subset: int | None = None,
                      crop_size: int | None = None, log: Callable[[str], None] = print) -> Threshold | None:
    """The threshold to store: the given number, or calibrated on ``calibrate`` (centre-aligned, best accuracy;
    LFW from ``lfw_root``, the resolved root) with the Keras model; None when neither is asked for."""
    if threshold is not None:
        return Threshold(threshold)
    if calibrate is None:
        return None
    from facenet_tf.export.calibration import calibrate_threshold
    from facenet_tf.export.evaluate import keras_embedder

    log(f"calibrating the threshold on LFW {calibrate} (centre-aligned)")
    result = calibrate_threshold(keras_embedder(source.model), calibrate, "center", lfw_root, subset,
                                 crop_size=crop_size)
    log(f"threshold {result.value:.4f} (accuracy {result.accuracy:.4f} on {result.n_pairs} {calibrate} pairs)")
    return result


def _crop(crop_size: int | None) -> dict | None:
    return None if crop_size is None else {"crop_size": crop_size}


def command_line(argv: Sequence[str]) -> str:
    """The command as one would retype it (``.venv/bin/python export/tflite.py --flag=...``)."""
    import shlex

    return " ".join([".venv/bin/python", *(shlex.quote(a) for a in argv)])


# The commands' LFW roots are resolved once by the binary (``facenet_tf.paths.command_lfw_roots``): ``lfw_root``
# for the calibration (threshold, int8 images), ``pairs_root`` for the evaluation pairs (None for a pairs file
# given by path without --data_dir: its images are read beside it).


@dataclasses.dataclass(frozen=True)
class SavedModelCommand:
    model: str
    output_dir: str
    weights: str | None = None
    threshold: float | None = None
    calibrate_threshold: str | None = None
    int8_scale: float | None = None
    overwrite: bool = False
    lfw_root: Path | None = None
    pairs_root: Path | None = None
    evaluate_int8: str | None = None
    subset: int | None = None
    crop_size: int | None = None
    report: str | None = None
    command: str = ""


def run_saved_model_command(args: SavedModelCommand, log: Callable[[str], None] = print) -> Path:
    """Loads the model, resolves the threshold, writes the SavedModel; optionally evaluates its 128-byte form on
    LFW (through the export's own ``embed_images`` signature) and writes the markdown report."""
    from facenet_tf.export.quantize import DEFAULT_SCALE
    from facenet_tf.export.saved_model import export_saved_model

    check_threshold_options(args.threshold, args.calibrate_threshold, required=True)
    if args.int8_scale is not None and not args.int8_scale > 0:
        raise ExportUsageError(f"--int8_scale must be positive, got {args.int8_scale}")
    check_output_dir(args.output_dir, args.overwrite)
    check_lfw_root(args.lfw_root, ["--calibrate_threshold"] if args.calibrate_threshold else [])
    source = load_source(args.model, args.weights)
    threshold = resolve_threshold(source, args.threshold, args.calibrate_threshold, args.lfw_root, args.subset,
                                  args.crop_size, log)
    scale = DEFAULT_SCALE if args.int8_scale is None else args.int8_scale
    export = write_export(lambda: export_saved_model(source, args.output_dir, threshold, scale,
                                                     overwrite=args.overwrite), args.output_dir)
    log(f"wrote {export.path} (threshold {threshold.value:.4f}, int8 scale {scale:g}); metadata "
        f"{export.metadata_file}")
    if args.evaluate_int8:
        from facenet_tf.evaluation.embed import load_embedder
        from facenet_tf.export.evaluate import evaluate_int8_embeddings, format_int8_report

        result = evaluate_int8_embeddings(load_embedder(str(export.path)), pairs=args.evaluate_int8,
                                          subset=args.subset, root=args.pairs_root,
                                          align_overrides=_crop(args.crop_size), log=log)
        text = format_int8_report(result, args.command, chosen_scale=scale)
        log(text)
        if args.report:
            write_file_atomically(args.report, text.encode())
            log(f"wrote {args.report}")
    return export.path


@dataclasses.dataclass(frozen=True)
class TFLiteCommand:
    model: str
    output_dir: str
    weights: str | None = None
    variants: tuple[str, ...] = ("float32", "float16", "dynamic_int8", "int8")
    num_calibration_images: int = 200
    per_channel: bool = True
    float_nodes: tuple[str, ...] = ()
    threshold: float | None = None
    calibrate_threshold: str | None = None
    lfw_root: Path | None = None
    pairs_root: Path | None = None
    evaluate: str | None = None
    subset: int | None = None
    num_threads: int | None = None
    crop_size: int | None = None
    report: str | None = None
    reference_embeddings: str | None = None
    overwrite: bool = False
    command: str = ""
    notes: tuple[str, ...] = ()


def run_tflite_command(args: TFLiteCommand, log: Callable[[str], None] = print) -> dict:
    """Loads the model, converts every variant; optionally evaluates the Keras model and each variant on LFW
    (parity + accuracy) and writes the markdown report. Returns ``{variant: TFLiteExport}``."""
    from facenet_tf.export.tflite import check_variants, export_tflite

    try:
        variants = check_variants(args.variants)
    except ValueError as error:
        raise ExportUsageError(str(error)) from error
    check_threshold_options(args.threshold, args.calibrate_threshold, required=False)
    if args.float_nodes and "int8" not in variants:
        raise ExportUsageError("--float_nodes only applies to the int8 variant")
    if args.num_calibration_images < 1:
        raise ExportUsageError(f"--num_calibration_images must be >= 1, got {args.num_calibration_images}")
    check_output_dir(args.output_dir, args.overwrite)
    check_lfw_root(args.lfw_root, ["--calibrate_threshold"] * bool(args.calibrate_threshold)
                   + ["the int8 variant (its calibration images)"] * ("int8" in variants))
    source = load_source(args.model, args.weights)
    threshold = resolve_threshold(source, args.threshold, args.calibrate_threshold, args.lfw_root, None,
                                  args.crop_size, log)
    exports = write_export(lambda: export_tflite(
        source, args.output_dir, variants, num_calibration_images=args.num_calibration_images,
        lfw_root=args.lfw_root, threshold=threshold, per_channel=args.per_channel, float_nodes=args.float_nodes,
        crop_size=args.crop_size, overwrite=args.overwrite, log=log), args.output_dir)
    if args.evaluate:
        from facenet_tf.export.evaluate import evaluate_tflite, format_tflite_report

        rows = evaluate_tflite(source, exports, pairs=args.evaluate, subset=args.subset, root=args.pairs_root,
                               num_threads=args.num_threads, reference_cache=args.reference_embeddings,
                               align_overrides=_crop(args.crop_size), log=log)
        notes = list(args.notes)
        if "int8" in exports:
            calibration = exports["int8"].metadata.get("calibration", {})
            notes.append(f"int8 calibration: {calibration.get('images')} images ({calibration.get('source')}), "
                         f"per-channel weights: {calibration.get('per_channel')}, ops kept in float: "
                         f"{calibration.get('float_nodes') or 'none'}.")
        from facenet_tf.export.calibration import aligned_crop_size

        alignment = f"center (crop {aligned_crop_size(args.crop_size)})"
        text = format_tflite_report(rows, args.command, args.evaluate, alignment, args.subset, source.name, notes)
        log(text)
        if args.report:
            write_file_atomically(args.report, text.encode())
            log(f"wrote {args.report}")
    return exports
