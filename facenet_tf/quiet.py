"""Quiet start-up for commands: TensorFlow's native start-up lines kept off the terminal.

``import tensorflow`` prints, from C++ and before any Python logging setting can act, two lines per native library
("All log messages before absl::InitializeLog() is called are written to STDERR" and "oneDNN custom operations are
on ..."). A user command should print its result, not those. :func:`import_tensorflow_quietly` imports TensorFlow
with the process's standard error (file descriptor 2) sent to a temporary file, and hands back what was written
there only when the import fails, so a broken install still says why. TensorFlow is an extra (``[cpu]`` or
``[gpu]``): :func:`require_tensorflow` says which to install when it is missing.

This module imports nothing of facenet_tf (any layer may use it).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import sys
import tempfile
from collections.abc import Iterator


#: What to install when TensorFlow is missing (``import facenet_tf`` works without it: the JAX side of harmonic
#: phase 2 needs only Keras, NumPy, OpenCV and absl).
TENSORFLOW_MISSING = ("this part of facenet-tf needs TensorFlow, which is not installed: pip install "
                      "'facenet-tf[cpu]' (CPU only) or 'facenet-tf[gpu]' (NVIDIA GPU, Linux; TensorFlow's CUDA wheels)")


def require_tensorflow() -> None:
    """Raises ``ModuleNotFoundError`` (``name="tensorflow"``) saying which extra to install when TensorFlow is
    not installed or cannot be found (blocked: ``sys.modules["tensorflow"] = None`` or an import hook); imports
    nothing."""
    try:
        found = importlib.util.find_spec("tensorflow") is not None
    except (ImportError, ValueError):  # an import hook that refuses it, or a half-imported module
        found = False
    if not found:
        raise ModuleNotFoundError(TENSORFLOW_MISSING, name="tensorflow")


def quiet_defaults() -> None:
    """The environment of a quiet command, unless the user set otherwise: oneDNN on, TensorFlow's C++ log at
    warnings-and-worse off (errors still show), absl's Python log at warnings."""
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@contextlib.contextmanager
def native_stderr_captured() -> Iterator[list[str]]:
    """Within the block, whatever is written to file descriptor 2 (C++ logs as well as Python's ``sys.stderr``)
    goes to a temporary file; the yielded list then holds that text. Standard error is restored on exit."""
    captured: list[str] = []
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield captured
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            captured.append(sink.read().decode(errors="replace"))


def import_tensorflow_quietly() -> None:
    """``import tensorflow`` without its native start-up lines (a no-op when it is imported already). A missing
    TensorFlow raises :func:`require_tensorflow`'s error; an import that fails prints what TensorFlow wrote and
    raises as it would have."""
    if sys.modules.get("tensorflow") is not None:
        return
    require_tensorflow()
    quiet_defaults()
    failure: BaseException | None = None
    with native_stderr_captured() as captured:
        try:
            import tensorflow  # noqa: F401
        except BaseException as error:  # noqa: BLE001 - re-raised below, once standard error is back
            failure = error
    if failure is not None:
        sys.stderr.write(captured[0])
        raise failure
