"""The train binary: config written, checkpoints, resume after kill -9 with nothing lost but the steps since the
last checkpoint, clear errors for bad flags and for resuming with other settings."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from tests.train.conftest import TINY_FLAGS

REPO = Path(__file__).resolve().parents[2]


def _train_args(workdir, data_dir, *extra):
    return [sys.executable, "experiments/train.py", f"--workdir={workdir}", f"--data_dir={data_dir}", *TINY_FLAGS,
            *extra]


def _run(args, timeout=300):
    return subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=timeout)


def test_train_resume_after_kill_9(tiny_tree, tmp_path):
    workdir = tmp_path / "run"
    args = _train_args(workdir, tiny_tree, "--steps=40", "--checkpoint_every=4")
    proc = subprocess.Popen(args, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ckpt_dir = workdir / "checkpoints"
    deadline = time.time() + 240
    try:
        while time.time() < deadline:  # wait for the second checkpoint, then kill -9
            index = ckpt_dir / "checkpoint"
            if index.is_file() and "ckpt-8" in index.read_text():
                break
            time.sleep(0.2)
        else:
            raise AssertionError("no checkpoint within 240 s")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not (workdir / "summary.json").exists(), "the run was killed before finishing"
    config = json.loads((workdir / "config.json").read_text())
    assert config["model"] == "nns2" and config["steps"] == 40 and config["exclude_pairs"] == []

    resumed = _run(args)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    summary = json.loads((workdir / "summary.json").read_text())
    assert summary["start_step"] >= 8 and summary["start_step"] % 4 == 0
    assert summary["end_step"] == 40
    assert (workdir / "embedding_model.keras").is_file()
    assert list((workdir / "logs").iterdir()), "TensorBoard logs written"
    losses = summary["history"]["loss"]
    assert np.isfinite(losses).all()


def test_finished_run_is_not_retrained_and_more_steps_continue(tiny_tree, tmp_path):
    workdir = tmp_path / "run"
    first = _run(_train_args(workdir, tiny_tree, "--steps=4", "--checkpoint_every=2"))
    assert first.returncode == 0, first.stderr[-3000:]
    again = _run(_train_args(workdir, tiny_tree, "--steps=6", "--checkpoint_every=2"))
    assert again.returncode == 0, again.stderr[-3000:]
    summary = json.loads((workdir / "summary.json").read_text())
    assert summary["start_step"] == 4 and summary["end_step"] == 6


def test_resume_with_other_settings_is_refused(tiny_tree, tmp_path):
    workdir = tmp_path / "run"
    assert _run(_train_args(workdir, tiny_tree, "--steps=2", "--checkpoint_every=2")).returncode == 0
    other = _run(_train_args(workdir, tiny_tree, "--steps=4", "--checkpoint_every=2", "--margin=0.5"))
    assert other.returncode != 0
    assert "--margin: was 0.2, now 0.5" in other.stderr


def test_bad_flags_name_the_flag(tiny_tree, tmp_path):
    bad = _run(_train_args(tmp_path / "r", tiny_tree, "--steps=5", "--checkpoint_every=2"))
    assert bad.returncode != 0 and "--steps: expected a multiple of --checkpoint_every=2" in bad.stderr
    bad = _run(_train_args(tmp_path / "r2", tmp_path / "missing", "--steps=2", "--checkpoint_every=2"))
    assert bad.returncode != 0 and "missing" in bad.stderr


def test_train_from_tfrecords_converted_by_the_binary(tiny_tree, tmp_path):
    records = tmp_path / "records"
    made = _run([sys.executable, "experiments/make_tfrecords.py", f"--data_dir={tiny_tree}",
                 f"--output_dir={records}", "--num_shards=2", "--images_per_record=3"])
    assert made.returncode == 0, made.stderr[-3000:]
    assert "32 images, 8 identities" in made.stdout
    again = _run([sys.executable, "experiments/make_tfrecords.py", f"--data_dir={tiny_tree}",
                  f"--output_dir={records}"])
    assert again.returncode != 0 and "--overwrite" in again.stderr

    workdir = tmp_path / "run"
    first = _run(_train_args(workdir, records, "--steps=4", "--checkpoint_every=2"))
    assert first.returncode == 0, first.stderr[-3000:]
    summary = json.loads((workdir / "summary.json").read_text())
    assert summary["data"]["source"] == "tfrecord" and summary["data"]["images"] == 32
    assert summary["end_step"] == 4 and np.isfinite(summary["history"]["loss"]).all()
    resumed = _run(_train_args(workdir, records, "--steps=6", "--checkpoint_every=2"))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    summary = json.loads((workdir / "summary.json").read_text())
    assert summary["start_step"] == 4 and summary["end_step"] == 6

    bad = _run(_train_args(tmp_path / "r2", records, "--steps=2", "--checkpoint_every=2",
                           "--validation_identities=2"))
    assert bad.returncode != 0 and "--validation_identities: expected 0 with a TFRecord" in bad.stderr
    assert "Traceback" not in bad.stderr
