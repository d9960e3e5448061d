"""Table 4 (``facenet_tf.evaluation.robustness``): the degradations by hand, the conditions, the rows, and the
binary's --quick mode on 40 real View 2 pairs."""

import json
import subprocess
import sys

import cv2
import keras
import numpy as np
import pytest

from facenet_tf.evaluation import robustness as r
from facenet_tf.models import create_model
from tests.reliability.conftest import python_env


def _image(seed=0, shape=(48, 40, 3)):
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (shape[0] // 8, shape[1] // 8, 3)).astype(np.uint8)
    return cv2.resize(base, (shape[1], shape[0]), interpolation=cv2.INTER_LINEAR)


def test_jpeg_reencodes_at_the_quality():
    image = _image()
    ok, data = cv2.imencode(".jpg", image[:, :, ::-1].copy(), [cv2.IMWRITE_JPEG_QUALITY, 10])
    np.testing.assert_array_equal(r.jpeg(image, 10), cv2.imdecode(data, cv2.IMREAD_COLOR)[:, :, ::-1])
    assert np.abs(r.jpeg(image, 10).astype(int) - image).mean() > np.abs(r.jpeg(image, 90).astype(int) - image).mean()


def test_resample_goes_through_that_many_pixels_and_back():
    image = _image(shape=(160, 160, 3))
    out = r.resample(image, 1600)  # 40x40, then back up
    small = cv2.resize(image, (40, 40), interpolation=cv2.INTER_AREA)
    np.testing.assert_array_equal(out, cv2.resize(small, (160, 160), interpolation=cv2.INTER_LINEAR))
    assert r.resample(image, 25600) is image and r.resample(image, 65536) is image  # not enlarged first
    tall = _image(shape=(200, 100, 3))
    assert r.resample(tall, 5000).shape == tall.shape  # 100x50 = 5,000 pixels, the aspect kept


def test_conditions_and_the_papers_numbers():
    conditions = r.table4_conditions()
    assert [c.name for c in conditions][:3] == ["none", "jpeg=10", "jpeg=20"] and len(conditions) == 12
    assert r.Condition("jpeg", 10).paper_val == 67.3 and r.Condition("pixels", 1600).paper_val == 37.8
    for bad in (dict(kind="blur"), dict(kind="jpeg", level=0), dict(kind="pixels", level=4), dict(level=3)):
        with pytest.raises(ValueError):
            r.Condition(**bad)


def test_rows_degrade_the_crop_or_the_photo(lfw_root):
    """A crop at JPEG quality 10 gives other embeddings than the undegraded one (so other accuracies may
    follow); 'none' is the same in both places; the table lists both places beside the paper."""
    from facenet_tf.align import AlignConfig
    from facenet_tf.evaluation.embed import keras_embedder
    from facenet_tf.evaluation.lfw import load_pair_sets

    keras.utils.set_random_seed(0)
    embedder = keras_embedder(create_model("nns2", embedding_dim=8, input_shape=(64, 64, 3)), "tiny")
    sets = load_pair_sets("view2", str(lfw_root), 1)
    align = AlignConfig(mode="detect", output_size=(64, 64))
    conditions = [r.Condition(), r.Condition("jpeg", 10)]
    rows = r.evaluate_robustness(embedder, sets, align, conditions, "crop", cache=False)
    rows += r.evaluate_robustness(embedder, sets, align, conditions[:1], "photo", cache=False)
    assert [(x["place"], x["condition"]) for x in rows] == [("crop", "none"), ("crop", "jpeg=10"), ("photo", "none")]
    assert rows[0]["accuracy"] == rows[2]["accuracy"] and rows[0]["val"] == rows[2]["val"]
    assert all(len(x["folds"]) == 10 and x["images"] == 40 for x in rows)
    table = r.format_table4(rows)
    assert "| jpeg=10 | 67.3% |" in table and "photo: VAL" in table


def test_quick_mode_writes_the_table_and_plot(lfw_root, tmp_path):
    model = tmp_path / "tiny.keras"
    keras.utils.set_random_seed(0)
    create_model("nns2", embedding_dim=8, input_shape=(64, 64, 3)).save(model)
    out = tmp_path / "out"
    args = [sys.executable, "experiments/robustness.py", f"--model={model}", "--quick", f"--output_dir={out}",
            f"--data_dir={lfw_root}", "--recipe=flip=none", "--places=crop,photo"]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=300, env=python_env(
        FACENET_TF_CACHE_DIR=str(tmp_path / "cache")))
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = json.loads((out / "rows.json").read_text())["rows"]
    assert len(rows) == 6 and {x["place"] for x in rows} == {"crop", "photo"}
    assert (out / "table4.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "pixels=1600" in (out / "table4.md").read_text()
    again = subprocess.run(args, capture_output=True, text=True, timeout=120, env=python_env())
    assert again.returncode != 0 and "--overwrite" in again.stderr  # an earlier run is not replaced silently
    assert not (out / "rows.partial.json").exists()
    # an interrupted run resumes: the rows in rows.partial.json are kept, the others computed
    resumed = tmp_path / "resumed"
    resumed.mkdir()
    settings = {"model": str(model), "pairs": "view2", "margin": 0.2,
                "recipe": "flip=none,distance=squared_l2,subtract_mean=false", "quick": True}
    kept = dict(rows[0], accuracy=0.125)
    (resumed / "rows.partial.json").write_text(json.dumps({"settings": settings, "rows": [kept]}))
    args_resumed = [a if not a.startswith("--output_dir") else f"--output_dir={resumed}" for a in args]
    proc = subprocess.run(args_resumed + ["--places=crop"], capture_output=True, text=True, timeout=300,
                          env=python_env(FACENET_TF_CACHE_DIR=str(tmp_path / "cache")))
    assert proc.returncode == 0, proc.stderr[-3000:]
    again_rows = json.loads((resumed / "rows.json").read_text())["rows"]
    assert again_rows[0] == kept and [r["condition"] for r in again_rows] == [r["condition"] for r in rows[:3]]
    assert not (resumed / "rows.partial.json").exists()
    combined = tmp_path / "combined"
    (tmp_path / "crop.json").write_text(json.dumps({"command": "python a", "rows": [x for x in rows
                                                                                    if x["place"] == "crop"]}))
    (tmp_path / "photo.json").write_text(json.dumps({"command": "python b", "rows": [x for x in rows
                                                                                     if x["place"] == "photo"]}))
    joined = subprocess.run([sys.executable, "experiments/robustness.py", f"--output_dir={combined}",
                             f"--from_rows={tmp_path / 'crop.json'},{tmp_path / 'photo.json'}"],
                            capture_output=True, text=True, timeout=120, env=python_env())
    assert joined.returncode == 0, joined.stderr[-3000:]
    assert json.loads((combined / "rows.json").read_text())["rows"] == rows  # crop rows, then photo rows
    text = (combined / "table4.md").read_text()
    assert "    python a\n    python b\n" in text and "photo: VAL @ 1e-3" in text
