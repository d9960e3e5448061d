"""Training from a tensorflow-datasets split, ``--data_dir=tfds:NAME/SPLIT``: the local LFW builder prepared from a
tiny synthetic tree, 2 steps of a tiny nns2 in process, a resume, the View 1 test identities excluded by name (and
a share of the rest kept, --identity_fraction), and
the binary's one-line errors (its data dir resolved from $TFDS_DATA_DIR)."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tensorflow_datasets")

from facenet_tf import paths  # noqa: E402
from facenet_tf.data import tfds_lfw  # noqa: E402
from facenet_tf.train import TrainConfig, train  # noqa: E402
from tests.train.conftest import TINY_FLAGS, make_tree  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture()
def lfw_tfds(tmp_path):
    """lfw_local prepared into a tmp data_dir from 8 people x 4 images; View 1 test names id_00, id_01, id_02."""
    root = tmp_path / "lfw"
    make_tree(root / "lfw-deepfunneled", identities=8, images=4)
    (root / "pairsDevTest.txt").write_text("1\nid_00\t1\t2\nid_01\t1\tid_02\t1\n")
    tfds_lfw.prepare(root, tmp_path / "tfds")
    return root, tmp_path / "tfds"


def _config(workdir, data_dir, **kw):
    values = dict(workdir=str(workdir), data_dir="tfds:lfw_local/full", tfds_data_dir=str(data_dir), model="nns2",
                  input_size=(40, 32), embedding_dim=8, identities_per_batch=3, faces_per_identity=3,
                  extra_negatives=2, exclude_pairs=(), steps=2, checkpoint_every=2)
    return TrainConfig(**{**values, **kw})


@pytest.mark.usefixtures("eager")
def test_two_steps_from_tfds_then_resume_with_view1_test_excluded_by_name(lfw_tfds, tmp_path):
    root, data_dir = lfw_tfds
    workdir = tmp_path / "run"
    config = _config(workdir, data_dir, exclude_pairs=("view1_test",), identity_fraction=0.8)
    summary = train(config, verbose=0, lfw_root=root)
    data = summary["data"]
    assert data["source"] == "tfds" and data["tfds"] == "lfw_local/full"
    assert data["label_feature"] == "label (class_label)"
    # 8 people: 3 excluded by name, then 4 of the 5 left (--identity_fraction=0.8, seeded as on an image tree)
    assert (data["images_before_exclusion"], data["identities_excluded"], data["identities"]) == (32, 3, 4)
    assert summary["end_step"] == 2 and np.isfinite(summary["history"]["loss"]).all()
    assert (workdir / "embedding_model.keras").is_file()
    assert TrainConfig.load(workdir).tfds_data_dir == str(data_dir)
    resumed = train(config.with_flags(steps=4), verbose=0, lfw_root=root)
    assert resumed["start_step"] == 2 and resumed["end_step"] == 4


def test_tfds_settings_need_a_tfds_data_dir_and_an_image_tree_for_validation(tmp_path):
    with pytest.raises(ValueError, match=r"^--tfds_label_feature: expected to be used with --data_dir=tfds:NAME/SPLIT"):
        TrainConfig(workdir=str(tmp_path / "r"), data_dir=str(tmp_path), tfds_label_feature="identity")
    with pytest.raises(ValueError, match=r"^--validation_identities: expected 0 with a TFRecord or tfds --data_dir"):
        _config(tmp_path / "r", tmp_path, validation_identities=2)
    with pytest.raises(ValueError, match=r"^--offline_every: expected 0 with a TFRecord or tfds --data_dir"):
        _config(tmp_path / "r", tmp_path, offline_every=2, offline_subset=11)


ARGS = [sys.executable, "experiments/train.py", *TINY_FLAGS, "--steps=2", "--checkpoint_every=2"]


def _one_line_error(proc):
    errors = [line for line in proc.stderr.splitlines() if "error:" in line]
    assert proc.returncode == 1 and "Traceback" not in proc.stderr and len(errors) == 1, proc.stderr[-3000:]
    return errors[0]


def test_binary_errors_are_one_line_naming_the_flag(lfw_tfds, tmp_path, monkeypatch):
    """A split not prepared where --tfds_data_dir says (read with download=False: nothing fetched); the split found
    through $TFDS_DATA_DIR (opened and indexed) but a pairs name to exclude without its file. Nothing is written."""
    bad = subprocess.run([*ARGS, f"--workdir={tmp_path / 'bad'}", "--data_dir=tfds:lfw_local/full",
                          f"--tfds_data_dir={tmp_path / 'nowhere'}"], cwd=REPO, capture_output=True, text=True,
                         timeout=300)
    assert _one_line_error(bad).startswith(f"train.py: error: --data_dir=tfds:lfw_local/full: 'lfw_local' 1.1.0 is "
                                           f"not prepared in '{tmp_path / 'nowhere'}' (read with download=False)")
    assert not list((tmp_path / "nowhere").rglob("*.tfrecord*"))
    _, data_dir = lfw_tfds
    monkeypatch.setenv("TFDS_DATA_DIR", str(data_dir))
    (tmp_path / "no_pairs").mkdir()
    monkeypatch.setenv("FACENET_TF_LFW_DIR", str(tmp_path / "no_pairs"))
    bad = subprocess.run([*ARGS, f"--workdir={tmp_path / 'bad'}", "--data_dir=tfds:lfw_local/full",
                          "--exclude_pairs=view1_test"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert _one_line_error(bad).startswith("train.py: error: --exclude_pairs=view1_test: "), bad.stderr[-3000:]
    assert "lfw_local/full: 32 images of 8 identities" in bad.stderr  # found through $TFDS_DATA_DIR
    assert not (tmp_path / "bad").exists()


def test_tfds_data_dir_resolves_as_tfds_does(tmp_path, monkeypatch):
    monkeypatch.delenv("TFDS_DATA_DIR", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert paths.tfds_data_dir() == tmp_path / "tensorflow_datasets"
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "env"))
    assert paths.tfds_data_dir() == tmp_path / "env" and paths.tfds_data_dir(tmp_path / "flag") == tmp_path / "flag"
