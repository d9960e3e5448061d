"""Exports under hostile conditions: killed midway, full disk, read-only output, NaN weights, hostile pixels.

Subprocesses (the real binaries) only where the process itself must die or hit its file-size limit; everything
else runs in-process on a few-layer model.
"""

from __future__ import annotations

import random
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

import facenet_tf.atomic as atomic
from facenet_tf.export.calibration import Threshold
from facenet_tf.export.commands import (EXIT_FAILED, EXIT_USAGE, SavedModelCommand, TFLiteCommand, run_binary,
                                        run_saved_model_command, run_tflite_command)
from facenet_tf.export.metadata import PIXEL_ERROR, read_metadata
from facenet_tf.export.saved_model import SIGNATURES, export_saved_model
from facenet_tf.export.tflite import TFLiteEmbeddingModel, export_tflite, is_tflite_export

from ..export.conftest import TINY_DIM, build_micro_model, nan_weight_model, smooth_images
from .conftest import kill_when, read_only, run, snapshot

BINARY = {"saved_model": "export/saved_model.py", "tflite": "export/tflite.py"}
#: The threshold of the exports already in place; the hostile runs write another, so old and new are told apart.
OLD_THRESHOLD, NEW_THRESHOLD = 1.0, 1.3
#: Seconds from the hidden temporary folder appearing to the end of a run (measured: ~2 s and ~4 s).
WRITE_SECONDS = {"saved_model": 2.5, "tflite": 4.0}


@pytest.fixture(scope="module")
def micro(tmp_path_factory):
    """The few-layer model, and its .keras file for the binaries."""
    import keras

    keras.utils.set_random_seed(1)
    model = build_micro_model()
    path = tmp_path_factory.mktemp("model") / "micro.keras"
    model.save(path)
    return model, path


def _export(kind: str, model, target: Path, threshold: float, overwrite: bool = False) -> None:
    if kind == "saved_model":
        export_saved_model(model, target, threshold, overwrite=overwrite)
    else:
        export_tflite(model, target, ["float32", "float16"], threshold=Threshold(threshold), overwrite=overwrite)


@pytest.fixture(scope="module")
def templates(micro, tmp_path_factory) -> dict[str, Path]:
    """One export of each kind, copied wherever a test needs an export already in place."""
    root = tmp_path_factory.mktemp("templates")
    for kind in BINARY:
        _export(kind, micro[0], root / kind, OLD_THRESHOLD)
    return {kind: root / kind for kind in BINARY}


def _existing(templates, kind: str, folder: Path) -> Path:
    target = folder / "export"
    shutil.copytree(templates[kind], target)
    return target


def _hidden(target: Path) -> list[str]:
    return sorted(p.name for p in target.parent.iterdir() if p.name.startswith(f".{target.name}."))


def _args(kind: str, model_file: Path, target: Path) -> list[str]:
    variants = [] if kind == "saved_model" else ["--variants=float32,float16"]
    return [BINARY[kind], f"--model={model_file}", f"--output_dir={target}", f"--threshold={NEW_THRESHOLD}",
            "--overwrite", "--verbosity=-1", *variants]


def _assert_complete_new_export(kind: str, target: Path) -> None:
    if kind == "saved_model":
        assert read_metadata(target)["threshold"]["value"] == pytest.approx(NEW_THRESHOLD)
        assert set(tf.saved_model.load(str(target)).signatures) == set(SIGNATURES)
    else:
        assert is_tflite_export(target)
        assert sorted(p.name for p in target.glob("*.tflite")) == ["micro_float16.tflite", "micro_float32.tflite"]
        for model in target.glob("*.tflite"):
            assert read_metadata(model)["threshold"]["value"] == pytest.approx(NEW_THRESHOLD)
            assert TFLiteEmbeddingModel(model)(smooth_images(1)).shape == (1, TINY_DIM)


def _error_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("error:")]


# -------------------------------------------------------------------------------------------------- kill -9


def _both(function):
    """``function(kind)`` for both binaries at once (each is mostly TensorFlow's start-up): {kind: result}."""
    with ThreadPoolExecutor(len(BINARY)) as pool:
        futures = {kind: pool.submit(function, kind) for kind in BINARY}
        return {kind: future.result() for kind, future in futures.items()}


def test_kill_during_export_keeps_the_old_export_and_the_rerun_cleans_up(micro, templates, tmp_path):
    """Both binaries, each killed with SIGKILL at a random moment of its write (the seed is in the message)."""
    seed = random.randrange(2**32)
    delays = {kind: random.Random(seed).uniform(0, WRITE_SECONDS[kind]) for kind in BINARY}
    targets = {kind: _existing(templates, kind, tmp_path / kind) for kind in BINARY}
    before = {kind: snapshot(target) for kind, target in targets.items()}

    def kill(kind: str) -> bool:
        target = targets[kind]
        return kill_when(_args(kind, micro[1], target), tmp_path / f"{kind}.log", lambda: bool(_hidden(target)),
                         delay=delays[kind])

    killed = _both(kill)
    for kind, target in targets.items():
        where = f"{kind}, seed {seed}: killed {killed[kind]} {delays[kind]:.2f} s after the temporary folder appeared"
        leftovers = _hidden(target)
        if snapshot(target) != before[kind]:  # the kill came after the swap: the new export is complete
            _assert_complete_new_export(kind, target)
        else:
            assert killed[kind], where  # a run that ended by itself must have replaced the export
        _export(kind, micro[0], target, NEW_THRESHOLD, overwrite=True)  # the next run
        _assert_complete_new_export(kind, target)
        assert _hidden(target) == [], f"{where}; left {leftovers}"


def test_a_swap_killed_between_its_two_renames_is_undone_by_the_next_run(micro, templates, tmp_path, monkeypatch):
    """Where paths cannot be exchanged in one step, the previous export is renamed aside first; a kill right then
    leaves only ``.<name>.old-*``. The next run puts it back instead of deleting the only copy."""
    target = _existing(templates, "saved_model", tmp_path)
    before = snapshot(target)
    target.rename(tmp_path / ".export.old-0badc0de")
    with pytest.raises(FileExistsError, match="--overwrite"):
        export_saved_model(micro[0], target, NEW_THRESHOLD)
    assert snapshot(target) == before
    assert _hidden(target) == []
    monkeypatch.setattr(atomic, "_exchange", lambda a, b: False)  # the two-rename swap still works
    export_saved_model(micro[0], target, NEW_THRESHOLD, overwrite=True)
    _assert_complete_new_export("saved_model", target)
    assert _hidden(target) == []


# ------------------------------------------------------------------------------------------------ full disk


def test_full_disk_fails_in_one_line_and_keeps_the_old_export(micro, templates, tmp_path):
    """Both binaries under RLIMIT_FSIZE: small files (and the log) get through, the graph files do not."""
    limit = {"saved_model": 64_000, "tflite": 16_000}
    targets = {kind: _existing(templates, kind, tmp_path / kind) for kind in BINARY}
    before = {kind: snapshot(target) for kind, target in targets.items()}
    results = _both(lambda kind: run(_args(kind, micro[1], targets[kind]), tmp_path / f"{kind}.log",
                                     fsize=limit[kind]))
    for kind, result in results.items():
        assert result.returncode == EXIT_FAILED, result.output[-3000:]
        assert "Traceback" not in result.output
        (line,) = _error_lines(result.output)
        assert "--output_dir" in line and "File too large" in line and "nothing was replaced" in line
        assert snapshot(targets[kind]) == before[kind]
        assert _hidden(targets[kind]) == []


# ------------------------------------------------------------------------------------------- read-only output


@pytest.mark.parametrize("kind", list(BINARY))
def test_read_only_output_folder_is_refused_before_any_work(kind, micro, tmp_path, capsys):
    folder = tmp_path / "exports"
    folder.mkdir()
    target = folder / "new"
    if kind == "saved_model":
        command = lambda: run_saved_model_command(  # noqa: E731
            SavedModelCommand(model=str(micro[1]), output_dir=str(target), threshold=1.0), log=print)
    else:
        command = lambda: run_tflite_command(  # noqa: E731
            TFLiteCommand(model=str(micro[1]), output_dir=str(target), variants=("float32",)), log=print)
    with read_only(folder):
        assert run_binary(command) == EXIT_USAGE
    out, err = capsys.readouterr()
    assert out == ""  # it stopped before loading the model
    (line,) = err.splitlines()
    assert line.startswith("error: --output_dir") and "read-only" in line
    assert list(folder.iterdir()) == []


@pytest.mark.parametrize("kind", list(BINARY))
def test_existing_output_without_overwrite_is_one_line(kind, micro, templates, tmp_path, capsys):
    target = _existing(templates, kind, tmp_path)
    before = snapshot(target)
    if kind == "saved_model":
        command = lambda: run_saved_model_command(  # noqa: E731
            SavedModelCommand(model=str(micro[1]), output_dir=str(target), threshold=1.0))
    else:
        command = lambda: run_tflite_command(TFLiteCommand(model=str(micro[1]), output_dir=str(target)))  # noqa: E731
    assert run_binary(command) == EXIT_USAGE
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("error: --output_dir") and "--overwrite" in line
    assert snapshot(target) == before


# ------------------------------------------------------------------------------------------------ NaN weights


@pytest.mark.parametrize("kind", list(BINARY))
def test_model_with_a_nan_weight_is_not_exported(kind, micro, tmp_path, capsys):
    broken = tmp_path / "broken.keras"
    nan_weight_model(micro[0]).save(broken)
    target = tmp_path / "export"
    if kind == "saved_model":
        command = lambda: run_saved_model_command(  # noqa: E731
            SavedModelCommand(model=str(broken), output_dir=str(target), threshold=1.0), log=print)
    else:
        command = lambda: run_tflite_command(  # noqa: E731
            TFLiteCommand(model=str(broken), output_dir=str(target), variants=("float32",)), log=print)
    assert run_binary(command) == EXIT_FAILED
    (line,) = capsys.readouterr().err.splitlines()
    assert "NaN or infinite embeddings" in line and "1 of its" in line and "not exported" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken.keras"]


# ------------------------------------------------------------------------------------------- hostile pixels


@pytest.fixture(scope="module")
def signatures(templates):
    return tf.saved_model.load(str(templates["saved_model"])).signatures


def _images(value: float, n: int = 2) -> np.ndarray:
    images = smooth_images(n, seed=3)
    images[-1, 10, 20, 1] = value  # one bad value in the last image
    return images


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf, 1e30, -5.0, 300.0])
def test_serving_signatures_reject_pixels_that_are_not_finite_0_255(signatures, value):
    images = tf.constant(_images(value))
    calls = {"embed_images": lambda: signatures["embed_images"](images=images),
             "embed_images_int8": lambda: signatures["embed_images_int8"](images=images),
             "verify (a)": lambda: signatures["verify"](images_a=images, images_b=tf.constant(smooth_images(2))),
             "verify (b)": lambda: signatures["verify"](images_a=tf.constant(smooth_images(2)), images_b=images)}
    for name, call in calls.items():
        with pytest.raises(tf.errors.InvalidArgumentError, match=PIXEL_ERROR.replace("[", r"\[")) as error:
            call()
        assert "NaN, infinite or out of range" in str(error.value), name


def test_pixels_within_the_tolerance_are_accepted(signatures):
    images = smooth_images(1)
    images[0, 0, 0] = [-0.5, 255.5, 0.0]  # resampling overshoot
    assert np.isfinite(signatures["embed_images"](images=tf.constant(images))["embeddings"].numpy()).all()


def test_verify_no_longer_calls_a_nan_image_the_same_person(signatures):
    nan = np.full([1, 64, 64, 3], np.nan, np.float32)
    with pytest.raises(tf.errors.InvalidArgumentError, match="finite pixel values"):
        signatures["verify"](images_a=tf.constant(nan), images_b=tf.constant(smooth_images(1)))


def test_empty_batches_give_empty_results(signatures):
    empty = tf.zeros([0, 64, 64, 3])
    assert signatures["embed_images"](images=empty)["embeddings"].shape == (0, TINY_DIM)
    codes = signatures["embed_images_int8"](images=empty)["embeddings"]
    assert codes.shape == (0, TINY_DIM) and codes.dtype == tf.int8
    assert signatures["embed_jpeg"](images=tf.constant([], tf.string))["embeddings"].shape == (0, TINY_DIM)
    out = signatures["verify"](images_a=empty, images_b=empty)
    assert out["distances"].shape == (0,) and out["same"].shape == (0,)
    codes = tf.zeros([0, TINY_DIM], tf.int8)
    out = signatures["int8_distances"](embeddings_a=codes, embeddings_b=codes)
    assert all(value.shape == (0,) for value in out.values())


@pytest.mark.parametrize("variant", ["float32", "float16"])
def test_tflite_runner_rejects_bad_pixels_and_accepts_empty_batches(templates, variant):
    runner = TFLiteEmbeddingModel(templates["tflite"] / f"micro_{variant}.tflite")
    for value in (np.nan, np.inf, 1e30):
        with pytest.raises(ValueError, match=PIXEL_ERROR.replace("[", r"\[")):
            runner(_images(value))
    empty = runner(np.zeros([0, 64, 64, 3], np.float32))
    assert empty.shape == (0, TINY_DIM) and empty.dtype == np.float32
