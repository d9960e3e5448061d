"""Training under hostile conditions: killed with SIGKILL, a full disk, NaN in the input, the weights or the loss,
a read-only workdir.

The real binary (``experiments/train.py``) runs only where the process itself must die or hit its file-size
limit; everything else calls ``facenet_tf.train.train`` in-process, with the model run eagerly (the ``eager``
fixture of tests/train/conftest.py).
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from facenet_tf.atomic import OutputError
from facenet_tf.train import TrainConfig, TrainingDiverged, train
from facenet_tf.train import loop
from facenet_tf.train.model import NON_FINITE

from ..train.conftest import TINY_FLAGS, eager, make_tree  # noqa: F401 (eager: a fixture)
from .conftest import assert_intact, kill_when, read_only, run, snapshot

# The same run as TINY_FLAGS, for in-process runs that a binary then resumes.
TINY = dict(model="nns2", input_size=(40, 32), embedding_dim=8, identities_per_batch=3, faces_per_identity=3,
            extra_negatives=2, exclude_pairs=(), jitter=0.1)


@pytest.fixture()
def tree(tmp_path):
    return make_tree(tmp_path / "faces")


def _config(workdir, tree, **kw) -> TrainConfig:
    return TrainConfig(workdir=str(workdir), data_dir=str(tree), **{**TINY, **kw})


def _train(config: TrainConfig) -> dict:
    keras.utils.set_random_seed(config.seed)
    return train(config, verbose=0)


def _binary(workdir, tree, *extra) -> list[str]:
    return ["experiments/train.py", f"--workdir={workdir}", f"--data_dir={tree}", *TINY_FLAGS, *extra]


def _checkpoints(workdir) -> list[str]:
    state = tf.train.get_checkpoint_state(str(Path(workdir) / loop.CHECKPOINT_DIR))
    return [] if state is None else list(state.all_model_checkpoint_paths)


def _assert_finite_checkpoint(path: str) -> None:
    reader = tf.train.load_checkpoint(path)
    for name in reader.get_variable_to_shape_map():
        value = reader.get_tensor(name)
        if isinstance(value, np.ndarray) and value.dtype.kind == "f":
            assert np.isfinite(value).all(), f"{path}: {name} is not finite"


def _no_temporaries(workdir) -> None:
    left = [p.name for p in Path(workdir).rglob("*") if p.name.endswith("_temp") or ".tmp-" in p.name]
    assert not left, left


def _outputs(workdir) -> dict[str, str]:
    """The snapshot of a workdir less config.json, which a resumed run rewrites with its own --steps."""
    return {k: v for k, v in snapshot(workdir).items() if k != "config.json"}


def _error_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if "error:" in line]


def test_kill_9_at_a_random_point_then_the_same_command_resumes(tree, tmp_path):
    """SIGKILL at a random moment after the first checkpoint (between steps or inside a checkpoint write): every
    checkpoint the index names is complete and finite; the same command then resumes from the latest one (restoring
    every variable of the model) and finishes with a finite model."""
    workdir = tmp_path / "run"
    args = _binary(workdir, tree, "--steps=40", "--checkpoint_every=10")
    index = workdir / loop.CHECKPOINT_DIR / "checkpoint"
    delay = random.Random().uniform(0.0, 0.8)  # 30 more steps take > 2 s
    killed = kill_when(args, tmp_path / "killed.log", lambda: index.is_file() and "ckpt-10" in index.read_text(),
                       delay=delay, timeout=240)
    log = (tmp_path / "killed.log").read_text()
    assert killed, f"the run ended before SIGKILL ({delay:.2f} s after ckpt-10): {log[-2000:]}"
    assert not (workdir / "summary.json").exists()
    paths = _checkpoints(workdir)
    assert paths, log[-2000:]
    for path in paths:  # every tensor readable (the resumed run restores the latest into the model)
        _assert_finite_checkpoint(path)
    last = int(tf.train.load_checkpoint(paths[-1]).get_tensor("optimizer/_iterations/.ATTRIBUTES/VARIABLE_VALUE"))
    assert last >= 10 and last % 10 == 0 and paths[-1].endswith(f"ckpt-{last}"), (paths, last, delay)
    (workdir / loop.CHECKPOINT_DIR / f"ckpt-{last + 10}_temp").mkdir(exist_ok=True)  # as a kill inside a save leaves

    resumed = run(args, tmp_path / "resumed.log", timeout=240)
    assert resumed.returncode == 0, f"delay {delay:.2f} s: {resumed.output[-3000:]}"
    summary = json.loads((workdir / "summary.json").read_text())
    assert summary["start_step"] == last and summary["end_step"] == 40, (summary["start_step"], last, delay)
    assert np.isfinite(summary["history"]["loss"]).all()
    final = keras.saving.load_model(workdir / loop.EMBEDDING_MODEL_FILE)
    assert all(np.isfinite(w).all() for w in final.get_weights())
    _no_temporaries(workdir)


@pytest.mark.usefixtures("eager")
def test_full_disk_during_a_checkpoint(tree, tmp_path):
    """A checkpoint write that hits the file-size limit (a full disk): exit status 1 with one line naming the step
    and the intact last checkpoint, no ``ckpt-N_temp`` folder left, every earlier file byte-for-byte intact."""
    workdir = tmp_path / "run"
    _train(_config(workdir, tree, steps=2, checkpoint_every=2))
    data = next((workdir / loop.CHECKPOINT_DIR).glob("ckpt-2.data-*"))
    before = _outputs(workdir)

    full = run(_binary(workdir, tree, "--steps=4", "--checkpoint_every=2"), tmp_path / "full.log",
               fsize=data.stat().st_size // 2, timeout=240)
    assert full.returncode == 1, full.output[-3000:]
    assert "Traceback" not in full.output
    errors = _error_lines(full.output)
    assert len(errors) == 1 and errors[0].startswith("train.py: error: disk full while writing the checkpoint at "
                                                     "step 4"), full.output[-3000:]
    assert "the last checkpoint ckpt-2 is intact" in errors[0]
    _no_temporaries(workdir)
    assert_intact(before, workdir)
    assert [Path(p).name for p in _checkpoints(workdir)] == ["ckpt-2"]


def _nan_images_from(dataset, first_bad_batch: int):
    def poison(i, batch):
        images, labels = batch
        return tf.where(i >= first_bad_batch, tf.fill(tf.shape(images), np.nan), images), labels

    return dataset.enumerate().map(poison)


@pytest.mark.usefixtures("eager")
def test_nan_input_stops_training_and_keeps_the_last_finite_checkpoint(tree, tmp_path, monkeypatch):
    workdir = tmp_path / "run"
    _train(_config(workdir, tree, steps=2, checkpoint_every=2))
    before = _outputs(workdir)
    make = loop.training_dataset

    def poisoned(*args, **kwargs):  # the resumed run's second batch (step 4) and every later one are NaN
        dataset, loader = make(*args, **kwargs)
        return _nan_images_from(dataset, 1), loader

    monkeypatch.setattr(loop, "training_dataset", poisoned)
    with pytest.raises(TrainingDiverged, match=r"training diverged at step 4: non-finite embeddings; last finite "
                                               r"checkpoint: .*ckpt-2\b") as caught:
        _train(_config(workdir, tree, steps=6, checkpoint_every=2))
    assert caught.value.step == 4 and caught.value.what == "embeddings"
    assert_intact(before, workdir)  # ckpt-2 and the finite embedding_model.keras of the first run
    assert [Path(p).name for p in _checkpoints(workdir)] == ["ckpt-2"]
    _assert_finite_checkpoint(_checkpoints(workdir)[0])


@pytest.mark.usefixtures("eager")
def test_nan_weight_stops_training_before_anything_is_saved(tree, tmp_path, monkeypatch):
    build = loop.build_model

    def build_with_nan(config):
        model = build(config)
        kernel = model.embedding_model.trainable_weights[0]
        kernel.assign(tf.tensor_scatter_nd_update(kernel, [[0] * len(kernel.shape)], [np.nan]))
        return model

    monkeypatch.setattr(loop, "build_model", build_with_nan)
    workdir = tmp_path / "run"
    with pytest.raises(TrainingDiverged, match="training diverged at step 1: non-finite weights; no checkpoint "
                                               "was written") as caught:
        _train(_config(workdir, tree, steps=2, checkpoint_every=2))
    assert caught.value.last_checkpoint is None
    assert _checkpoints(workdir) == [] and not (workdir / loop.EMBEDDING_MODEL_FILE).exists()


@pytest.mark.usefixtures("eager")
def test_huge_learning_rate_stops_training_with_only_finite_checkpoints(tree, tmp_path):
    """From step 3 the learning rate is 5e30 (a decay 'factor' of 1e32): the run stops, every checkpoint it wrote
    holds finite values, and no final model is written."""
    workdir = tmp_path / "run"
    config = _config(workdir, tree, steps=20, checkpoint_every=2, optimizer="sgd", lr_decay_steps=(2,),
                     lr_decay_factor=1e32)
    with pytest.raises(TrainingDiverged) as caught:
        _train(config)
    error = caught.value
    assert error.step > 2 and error.what.split(" ")[0] in NON_FINITE, (error.step, error.what)
    paths = _checkpoints(workdir)
    assert paths and error.last_checkpoint == paths[-1]
    assert int(re.search(r"ckpt-(\d+)$", paths[-1]).group(1)) < error.step
    for path in paths:
        _assert_finite_checkpoint(path)
    assert not (workdir / loop.EMBEDDING_MODEL_FILE).exists() and not (workdir / "summary.json").exists()


@pytest.mark.parametrize("exists", [True, False])
def test_read_only_workdir_is_refused_before_anything_is_written(tree, tmp_path, exists):
    parent = tmp_path / "out"
    parent.mkdir()
    workdir = parent / "run"
    if exists:
        workdir.mkdir()
    folder = workdir if exists else parent
    before = snapshot(parent)
    with read_only(folder):
        with pytest.raises(OutputError, match=r"^--workdir '.*': cannot write in '.*' \(read-only or no "
                                              r"permission\)$"):
            _train(_config(workdir, tree, steps=2, checkpoint_every=2))
    assert snapshot(parent) == before
