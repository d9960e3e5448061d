"""``experiments/eval_recognition.py --data_dir=tfds:NAME/SPLIT``: the people of a prepared tensorflow-datasets split
(here lfw_local from a tiny synthetic tree) decoded and aligned in memory, embedded by a tiny .keras model, and the
identification and clustering report written for them."""

import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("tensorflow_datasets")

from facenet_tf.data import tfds_lfw  # noqa: E402
from facenet_tf.models import create_model  # noqa: E402
from tests.train.conftest import make_tree  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


def test_recognition_report_on_a_tfds_split(tmp_path, monkeypatch):
    make_tree(tmp_path / "lfw" / "lfw-deepfunneled", identities=8, images=4)
    (tmp_path / "lfw" / "lfw-deepfunneled" / "id_07" / "id_07_0003.png").unlink()  # 3 images: left out
    tfds_lfw.prepare(tmp_path / "lfw", tmp_path / "tfds")
    create_model("nns2", embedding_dim=8, input_shape=(40, 32, 3)).save(tmp_path / "tiny.keras")
    monkeypatch.setenv("FACENET_TF_CACHE_DIR", str(tmp_path / "cache"))
    output = tmp_path / "report.md"
    proc = subprocess.run([sys.executable, "experiments/eval_recognition.py", f"--model={tmp_path / 'tiny.keras'}",
                           "--weights=", "--alignment=center", "--data_dir=tfds:lfw_local/full",
                           f"--tfds_data_dir={tmp_path / 'tfds'}", "--min_images=4", "--enrolled=1",
                           "--thresholds=0.5,1.0", "--sweep=1.0", f"--output={output}",
                           f"--sheets_dir={tmp_path / 'sheets'}"], cwd=REPO, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = output.read_text()
    assert text.startswith("# Recognition and clustering on `tfds:lfw_local/full` (")
    assert "7 people with >= 4 images, 28 images." in text
    assert "| 1 | 7 | 21 |" in text  # one enrolled per person: 7 identities, 21 probes
    assert len(list((tmp_path / "cache" / "recognition").glob("*.npz"))) == 1
