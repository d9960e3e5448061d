"""The tensorflow-datasets builder for a local LFW copy: splits exclude the protocol's identities; no download."""

import logging

import cv2
import numpy as np
import pytest

tfds = pytest.importorskip("tensorflow_datasets")

from facenet_tf.data import tfds_lfw  # noqa: E402  (registers lfw_local)


@pytest.fixture()
def lfw(tmp_path):
    """5 people (1-3 images of flat colours) in an LFW layout with View 1 test and View 2 pairs files."""
    root = tmp_path / "lfw"
    people = {"Ann_A": 3, "Bob_B": 2, "Cid_C": 1, "Dee_D": 2, "Eve_E": 1}
    for i, (name, n) in enumerate(people.items()):
        folder = root / "lfw-deepfunneled" / name
        folder.mkdir(parents=True)
        for k in range(1, n + 1):
            cv2.imwrite(str(folder / f"{name}_{k:04d}.jpg"), np.full((32, 30, 3), 30 * i + k, np.uint8))
    (root / "pairsDevTest.txt").write_text("1\nAnn_A\t1\t2\nBob_B\t1\tCid_C\t1\n")
    (root / "pairs.txt").write_text("1\t1\nDee_D\t1\t2\nDee_D\t1\tEve_E\t1\n")
    return root


def _read(builder, split):
    return [(ex["identity"].decode(), int(ex["label"]), ex["image"].shape)
            for ex in tfds.as_numpy(builder.as_dataset(split=split))]


def test_builder_splits_exclude_protocol_identities(lfw, tmp_path, caplog):
    (lfw / "lfw-deepfunneled" / "Ann_A" / "Ann_A_0003.jpg").write_bytes(b"broken")
    builder = tfds_lfw.LfwLocal(data_dir=str(tmp_path / "tfds"))
    with caplog.at_level(logging.WARNING):
        builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=str(lfw)))
    assert len([r for r in caplog.records if "Ann_A_0003.jpg" in r.getMessage()]) == 2  # full, train_view2
    every = _read(builder, "full")
    assert len(every) == 8 and all(shape == (32, 30, 3) for *_, shape in every)
    labels = {name: label for name, label, _ in every}
    assert labels == {"Ann_A": 0, "Bob_B": 1, "Cid_C": 2, "Dee_D": 3, "Eve_E": 4}
    assert sorted({n for n, *_ in _read(builder, "train_view1")}) == ["Dee_D", "Eve_E"]
    view2 = _read(builder, "train_view2")
    assert sorted({n for n, *_ in view2}) == ["Ann_A", "Bob_B", "Cid_C"]
    assert all(labels[n] == label for n, label, _ in view2)  # labels agree across splits
    assert builder.info.splits["train_view2"].num_examples == 5  # Ann_A 2 (one unreadable), Bob_B 2, Cid_C 1


def test_builder_without_manual_dir_contents_is_a_clear_error(tmp_path):
    builder = tfds_lfw.LfwLocal(data_dir=str(tmp_path / "tfds"))
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "README").write_text("no images here")
    with pytest.raises(ValueError, match="empty.*holds no"):
        builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=str(tmp_path / "empty")))


def test_prepare_command_runs_as_a_module(lfw, tmp_path):
    """``python -m facenet_tf.data.tfds_lfw`` (the README's way to prepare it; ``tfds build`` needs apache-beam);
    the label is a ClassLabel named by the identities."""
    import subprocess
    import sys
    from pathlib import Path

    proc = subprocess.run([sys.executable, "-m", "facenet_tf.data.tfds_lfw", f"--manual_dir={lfw}",
                           f"--data_dir={tmp_path / 'tfds'}"], cwd=Path(__file__).resolve().parents[2],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().endswith("full 9, train_view1 3, train_view2 6")
    builder = tfds.builder("lfw_local", data_dir=str(tmp_path / "tfds"))
    assert builder.info.features["label"].names == ["Ann_A", "Bob_B", "Cid_C", "Dee_D", "Eve_E"]
