"""What the export binaries do, and their usage errors (facenet_tf.export.commands, export/*.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from facenet_tf.export.commands import (EXIT_USAGE, ExportUsageError, SavedModelCommand, TFLiteCommand,
                                        check_threshold_options, load_source, run_saved_model_command,
                                        run_tflite_command)
from facenet_tf.export.metadata import read_metadata
from facenet_tf.export.source import load_model_source
from facenet_tf.paths import REPO_ROOT


def test_unknown_model_lists_the_valid_names():
    with pytest.raises(ExportUsageError, match="neither a zoo model.*inception_resnet_v1"):
        load_source("nn9", None)


def test_zoo_model_without_weights_says_what_to_pass():
    with pytest.raises(ExportUsageError, match="needs weights.*msceleb.*random"):
        load_source("nns2", None)


def test_missing_weights_file(tmp_path):
    with pytest.raises(ExportUsageError, match="does not exist"):
        load_source("nns2", str(tmp_path / "missing.weights.h5"))


def test_missing_keras_file_and_weights_for_a_file(tmp_path):
    with pytest.raises(ExportUsageError, match="does not exist"):
        load_source(str(tmp_path / "model.keras"), None)
    with pytest.raises(ExportUsageError, match="for zoo models"):
        load_source(str(tmp_path / "model.keras"), "msceleb")


def test_random_weights_zoo_model_and_keras_file(micro_model, tmp_path):
    source = load_model_source("nns2", "random")
    assert source.kind == "zoo" and source.name == "nns2" and source.preprocessing == "scale"
    assert source.input_size == (140, 116) and source.embedding_size == 128
    path = tmp_path / "micro.keras"
    micro_model.save(path)
    source = load_model_source(str(path))
    assert source.kind == "keras_file" and source.name == "micro" and source.preprocessing == "scale"
    assert source.describe() == {"kind": "keras_file", "model": "micro", "path": str(path)}


def test_threshold_options():
    with pytest.raises(ExportUsageError, match="--threshold.*--calibrate_threshold"):
        check_threshold_options(None, None, required=True)
    with pytest.raises(ExportUsageError, match="not both"):
        check_threshold_options(1.0, "view1_train", required=True)
    with pytest.raises(ExportUsageError, match=r"\[0, 4\]"):
        check_threshold_options(7.0, None, required=True)
    check_threshold_options(None, None, required=False)


def test_unknown_variant_fails_before_loading_the_model(tmp_path):
    args = TFLiteCommand(model="no_such_model", output_dir=str(tmp_path), variants=("float32", "int4"))
    with pytest.raises(ExportUsageError, match="unknown TFLite variants.*int4"):
        run_tflite_command(args)


def test_calibration_without_an_lfw_root_fails_before_the_model_loads(tmp_path):
    """The binary resolves the LFW root (None: none found); a step that reads LFW then refuses at once."""
    args = TFLiteCommand(model="no_such_model", output_dir=str(tmp_path / "t"), variants=("float32", "int8"))
    with pytest.raises(ExportUsageError, match=r"^LFW is needed by the int8 variant .*FACENET_TF_LFW_DIR"):
        run_tflite_command(args)
    args = SavedModelCommand(model="no_such_model", output_dir=str(tmp_path / "s"), calibrate_threshold="view1_train")
    with pytest.raises(ExportUsageError, match=r"^LFW is needed by --calibrate_threshold, and no LFW root was found"):
        run_saved_model_command(args)


def test_saved_model_command_from_a_keras_file(micro_model, tmp_path):
    path = tmp_path / "micro.keras"
    micro_model.save(path)
    out = tmp_path / "export"
    args = SavedModelCommand(model=str(path), output_dir=str(out), threshold=1.2, int8_scale=200.0)
    assert run_saved_model_command(args, log=lambda _: None) == out.absolute()
    metadata = read_metadata(out)
    assert metadata["source"]["kind"] == "keras_file" and metadata["int8_embeddings"]["scale"] == 200.0
    with pytest.raises(ExportUsageError, match="--overwrite"):
        run_saved_model_command(args, log=lambda _: None)


def test_tflite_command_float_variants(micro_model, tmp_path):
    path = tmp_path / "micro.keras"
    micro_model.save(path)
    args = TFLiteCommand(model=str(path), output_dir=str(tmp_path / "tflite"), variants=("float32", "float16"),
                         threshold=1.0)
    exports = run_tflite_command(args, log=lambda _: None)
    assert sorted(exports) == ["float16", "float32"]
    assert (tmp_path / "tflite" / "micro_float16.tflite").is_file()


def _run_binary(script: str, *flags: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run([sys.executable, str(REPO_ROOT / "export" / script), *flags], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=300)


def test_binaries_turn_bad_requests_into_usage_errors(tmp_path):
    result = _run_binary("tflite.py", "--model=nns2", "--weights=random", f"--output_dir={tmp_path / 'a'}",
                         "--variants=float32,int4")
    assert result.returncode == EXIT_USAGE
    assert _error_line(result).startswith("error: unknown TFLite variants ['int4']")
    result = _run_binary("saved_model.py", "--model=nns2", f"--weights={tmp_path / 'missing.h5'}",
                         "--threshold=1.0", f"--output_dir={tmp_path / 'b'}")
    assert result.returncode == EXIT_USAGE and "does not exist" in _error_line(result)
    result = _run_binary("saved_model.py", "--model=nn9", "--threshold=1.0", f"--output_dir={tmp_path / 'c'}")
    assert result.returncode == EXIT_USAGE and "neither a zoo model" in _error_line(result)
    result = _run_binary("tflite.py", "--model=nns2", "--weights=random", f"--output_dir={tmp_path / 'd'}",
                         f"--data_dir={tmp_path / 'fcaes'}")
    assert result.returncode == EXIT_USAGE
    assert _error_line(result).startswith(f"error: --data_dir: '{tmp_path / 'fcaes'}' does not exist.")
    assert not any(Path(tmp_path).iterdir())


def _error_line(result: subprocess.CompletedProcess) -> str:
    """The one line a binary prints for an expected failure (and no traceback)."""
    assert "Traceback" not in result.stderr
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    return line


def test_run_binary_prints_one_line_and_chooses_the_exit_status(capsys):
    from facenet_tf.atomic import OutputError
    from facenet_tf.export.commands import EXIT_FAILED, ExportFailedError, run_binary
    from facenet_tf.export.source import NonFiniteModelError

    def failing(error):
        def command():
            raise error
        return command

    cases = [(ExportUsageError("bad\n  request"), EXIT_USAGE), (OutputError("--output_dir 'x' exists"), EXIT_USAGE),
             (ExportFailedError("disk full"), EXIT_FAILED), (NonFiniteModelError("NaN"), EXIT_FAILED)]
    for error, status in cases:
        assert run_binary(failing(error)) == status
        assert capsys.readouterr().err == "error: " + " ".join(str(error).split()) + "\n"
    assert run_binary(lambda: None) == 0
    with pytest.raises(RuntimeError):  # an unexpected error keeps its traceback
        run_binary(failing(RuntimeError("bug")))


def test_numpy_only_import_of_the_quantiser():
    code = ("import sys; from facenet_tf.export import quantize_embeddings, read_metadata; "
            "import numpy as np; quantize_embeddings(np.zeros((1, 4), np.float32)); "
            "print('tensorflow' in sys.modules, 'keras' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "False"]
    assert np.int8  # numpy is all it needs
