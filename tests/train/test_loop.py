"""The train binary and ``loop.train``: config written, checkpoints, resume after kill -9 with nothing lost but the
steps since the last checkpoint, clear one-line errors (bad flags, data that cannot be trained on, a diverged run,
resuming with other settings), and a failed start that writes nothing."""

import dataclasses
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from facenet_tf.train import TrainConfig, TrainingDiverged, train
from facenet_tf.train import loop
from tests.train.conftest import TINY_FLAGS, make_tree

REPO = Path(__file__).resolve().parents[2]


def _train_args(workdir, data_dir, *extra):
    return [sys.executable, "experiments/train.py", f"--workdir={workdir}", f"--data_dir={data_dir}", *TINY_FLAGS,
            *extra]


def _run(args, timeout=300):
    return subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=timeout)


def test_finished_run_is_not_retrained_and_more_steps_continue(tiny_tree, tmp_path):
    workdir = tmp_path / "run"
    first = _run(_train_args(workdir, tiny_tree, "--steps=4", "--checkpoint_every=2"))
    assert first.returncode == 0, first.stderr[-3000:]
    again = _run(_train_args(workdir, tiny_tree, "--steps=6", "--checkpoint_every=2"))
    assert again.returncode == 0, again.stderr[-3000:]
    summary = json.loads((workdir / "summary.json").read_text())
    assert summary["start_step"] == 4 and summary["end_step"] == 6


@pytest.mark.usefixtures("eager")
def test_resume_with_other_settings_is_refused(tiny_tree, tmp_path):
    workdir = tmp_path / "run"  # trained in-process with the binary's settings (TINY_FLAGS), then the binary refuses
    train(TrainConfig.from_flags(workdir=str(workdir), data_dir=str(tiny_tree), model="nns2", input_size=(40, 32),
                                 embedding_dim=8, identities_per_batch=3, faces_per_identity=3, extra_negatives=2,
                                 exclude_pairs=(), jitter=0.1, steps=2, checkpoint_every=2), verbose=0)
    other = _run(_train_args(workdir, tiny_tree, "--steps=4", "--checkpoint_every=2", "--margin=0.5"))
    assert other.returncode != 0
    assert "--margin: was 0.2, now 0.5" in other.stderr


def _one_line_error(proc, status):
    """The run failed with ``status`` and one line ``train.py: error: ...`` on stderr (no traceback); returns it."""
    assert proc.returncode == status, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and errors[0].startswith("train.py: error: "), proc.stderr[-3000:]
    return errors[0]


def test_bad_flags_name_the_flag(tiny_tree, tmp_path):
    bad = _run(_train_args(tmp_path / "r", tiny_tree, "--steps=5", "--checkpoint_every=2", "--margin=inf"))
    assert "--margin: expected a finite number" in _one_line_error(bad, 2)
    bad = _run(_train_args(tmp_path / "r2", tmp_path / "missing", "--steps=2", "--checkpoint_every=2"))
    line = _one_line_error(bad, 1)
    assert "--data_dir: " in line and "missing' does not exist" in line
    assert not (tmp_path / "r").exists() and not (tmp_path / "r2").exists()


def test_diverged_run_fails_naming_the_step_and_saves_nothing(tiny_tree, tmp_path):
    """The reported run: plain SGD at 1e30 used to exit 0 with a NaN embedding_model.keras."""
    workdir = tmp_path / "run"
    proc = _run(_train_args(workdir, tiny_tree, "--steps=4", "--checkpoint_every=2", "--optimizer=sgd",
                            "--learning_rate=1e30"))
    line = _one_line_error(proc, 1)
    assert line.startswith("train.py: error: training diverged at step ") and "no checkpoint was written" in line
    assert not (workdir / "embedding_model.keras").exists() and not (workdir / "checkpoints").exists()


def _tiny_config(workdir, data_dir, **kw):
    return TrainConfig(**{**dict(workdir=str(workdir), data_dir=str(data_dir), model="nns2", input_size=(40, 32),
                                 embedding_dim=8, identities_per_batch=3, faces_per_identity=3, extra_negatives=2,
                                 exclude_pairs=(), steps=2, checkpoint_every=2), **kw})


@pytest.mark.usefixtures("eager")
def test_failed_start_writes_nothing_and_the_corrected_command_runs(tiny_tree, tmp_path):
    """A misspelt --data_dir used to leave a config.json that refused the corrected command; also: batch_all and
    validation identities train on a plain run."""
    workdir = tmp_path / "run"
    with pytest.raises(FileNotFoundError, match="--data_dir: '.*fcaes' does not exist"):
        train(_tiny_config(workdir, tmp_path / "fcaes"), verbose=0)
    assert not workdir.exists()
    summary = train(_tiny_config(workdir, tiny_tree, strategy="batch_all", validation_identities=2), verbose=0)
    assert summary["end_step"] == 2 and summary["data"]["validation_identities"] == 2
    assert "val_loss" in summary["history"] and "non_finite" not in summary["history"]
    assert TrainConfig.load(workdir).strategy == "batch_all"


def test_without_data_dir_the_lfw_root_is_the_one_the_command_resolved(tmp_path, monkeypatch):
    """config.json stores data_dir None for "the LFW root": ``lfw_root`` (resolved once by the command) is the tree
    and what --exclude_pairs names resolve against, also for a TFRecord set; $FACENET_TF_LFW_DIR is never read."""
    root = tmp_path / "lfw"
    make_tree(root / "lfw-deepfunneled")
    (root / "pairsDevTest.txt").write_text("1\nid_00\t1\t2\nid_01\t1\tid_02\t1\n")
    monkeypatch.setenv("FACENET_TF_LFW_DIR", str(make_tree(tmp_path / "elsewhere", identities=3)))
    config = TrainConfig(workdir=str(tmp_path / "run"), data_dir=None, exclude_pairs=("view1_test",))
    index, _, info = loop.split_identities(config, root)
    assert info["images_dir"] == str(root / "lfw-deepfunneled") and len(index.names) == 5
    assert loop.excluded_identities(config, root) == {"id_00", "id_01", "id_02"}
    with pytest.raises(FileNotFoundError, match=r"^--data_dir: No LFW directory was given\. .*FACENET_TF_LFW_DIR"):
        loop.split_identities(config)
    with pytest.raises(ValueError, match=r"^--exclude_pairs=view1_test: the LFW pairs 'view1_test' need the LFW "
                                         r"root.*point \$FACENET_TF_LFW_DIR at LFW"):
        loop.excluded_identities(config)
    with pytest.raises(FileNotFoundError, match="--data_dir: No LFW directory"):
        train(config, verbose=0)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("identities,images", [(1, 4), (5, 1), (2, 1)])
def test_data_without_triplets_is_refused_naming_the_folder(tmp_path, identities, images):
    tree = make_tree(tmp_path / "faces", identities=identities, images=images)
    workdir = tmp_path / "run"
    with pytest.raises(ValueError, match=rf"^--data_dir '{tree}': cannot train on it: Need at least 2 identities "
                                         r"with >= 2 images"):
        train(_tiny_config(workdir, tree), verbose=0)
    assert not workdir.exists()


def test_validation_identities_that_cannot_form_a_batch_are_refused(tmp_path):
    tree = make_tree(tmp_path / "faces", identities=8, images=2)  # held out: 2 identities, 4 images < P*K+R
    with pytest.raises(ValueError, match=r"^--validation_identities=2: the identities held out of .* cannot form a "
                                         r"validation batch: The batch size 5"):
        train(_tiny_config(tmp_path / "run", tree, validation_identities=2), verbose=0)
    assert not (tmp_path / "run").exists()


def test_non_finite_batch_norm_statistics_are_never_checkpointed(tiny_tree, tmp_path):
    """The train step checks the trainable weights; before a save every variable is checked, batch norm
    statistics and optimizer slots included."""
    model = loop.build_model(_tiny_config(tmp_path / "run", tiny_tree))
    manager = tf.train.CheckpointManager(tf.train.Checkpoint(model=model, optimizer=model.optimizer),
                                         str(tmp_path / "checkpoints"), 3)
    loop.save_checkpoint(model, manager, 2)
    mean = next(v for v in model.weights if "moving_mean" in v.path)
    mean.assign(np.full(mean.shape, np.nan, np.float32))
    with pytest.raises(TrainingDiverged, match=re.escape(f"at step 4: non-finite weights ({mean.path}); last finite "
                                                         f"checkpoint: {tmp_path / 'checkpoints' / 'ckpt-2'}. ")):
        loop.save_checkpoint(model, manager, 4)
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == [
        "checkpoint", "ckpt-2.data-00000-of-00001", "ckpt-2.index"]


@pytest.mark.usefixtures("eager")
def test_train_from_tfrecords_converted_by_the_binary(tiny_tree, tmp_path):
    records = tmp_path / "records"
    made = _run([sys.executable, "experiments/make_tfrecords.py", f"--data_dir={tiny_tree}",
                 f"--output_dir={records}", "--num_shards=2", "--images_per_record=3"])
    assert made.returncode == 0, made.stderr[-3000:]
    assert "32 images, 8 identities" in made.stdout
    again = _run([sys.executable, "experiments/make_tfrecords.py", f"--data_dir={tiny_tree}",
                  f"--output_dir={records}"])
    assert again.returncode != 0 and "--overwrite" in again.stderr

    # Training from the shards (in-process and eager: the binary's resume is the tests above; the traced step,
    # tests/train/test_model.py).
    workdir = tmp_path / "run"
    summary = train(_tiny_config(workdir, records, steps=4), verbose=0)
    assert summary["data"]["source"] == "tfrecord" and summary["data"]["images"] == 32
    assert summary["end_step"] == 4 and np.isfinite(summary["history"]["loss"]).all()
    summary = train(_tiny_config(workdir, records, steps=6), verbose=0)
    assert summary["start_step"] == 4 and summary["end_step"] == 6
    assert json.loads((workdir / "summary.json").read_text())["end_step"] == 6

    with pytest.raises(ValueError, match="--validation_identities: expected 0 with a TFRecord"):
        train(_tiny_config(tmp_path / "r2", records, validation_identities=2), verbose=0)
    assert not (tmp_path / "r2").exists()


def test_identity_fraction_trains_on_a_nested_seeded_share_of_the_tree(tmp_path):
    tree = make_tree(tmp_path / "faces", identities=12, images=2)
    index = {f: loop.split_identities(_tiny_config(tmp_path / "w", tree, identity_fraction=f, seed=3))
             for f in (0.25, 0.5, 1.0)}
    names = {f: set(index[f][0].names) for f in index}
    assert [len(names[f]) for f in (0.25, 0.5, 1.0)] == [3, 6, 12] and names[0.25] < names[0.5] < names[1.0]
    assert index[0.5][2]["identities"] == 6 and index[0.5][2]["images"] == 12
    assert index[0.5][2]["identity_fraction"] == 0.5 and index[0.5][2]["identities_total"] == 12
    other = loop.split_identities(_tiny_config(tmp_path / "w", tree, identity_fraction=0.5, seed=4))[0]
    assert set(other.names) != names[0.5]


def test_complete_groups_reach_the_sampler_before_anything_is_written(tiny_tree, tmp_path):
    """8 identities of 4 images: complete groups of K=5 cannot be drawn; the run says so and writes nothing."""
    config = dataclasses.replace(_tiny_config(tmp_path / "run", tiny_tree, complete_groups=True), faces_per_identity=5)
    with pytest.raises(ValueError, match="Complete groups of K=5 faces need at least 3 identities with >= 5"):
        train(config, verbose=0)
    assert not (tmp_path / "run").exists()
