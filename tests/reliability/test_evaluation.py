"""Evaluation tells the truth about what it scored: a pairs file given by path is scored on the image tree beside
it (never on the default LFW tree), the report names that tree and the file's SHA-256, and every expected failure
(an unreadable image, no tree, a binary pairs file, a model yielding NaN, a read-only --output_dir) stops the run
with one line naming the culprit and leaves nothing behind.

A tiny Keras model and eight 40x40 synthetic JPEGs in a pairs-file + tree layout under tmp_path; the default LFW
root ($FACENET_TF_LFW_DIR) points at a second tree holding the same names, all corrupt, so reading it by mistake
fails every case that does not expect it.
"""

import hashlib
import json

import cv2
import keras
import numpy as np
import pytest

from facenet_tf.data.images import ImageReadError
from facenet_tf.evaluation.embed import Embedder, NonFiniteEmbeddingError, keras_embedder
from facenet_tf.evaluation.lfw import evaluate_lfw
from tests.reliability.conftest import assert_intact, python_env, read_only, run, snapshot

# 2 folds x (2 same + 2 different) over four people with two images each
PAIRS_TEXT = ("2\t2\nAnn\t1\t2\nBen\t1\t2\nAnn\t1\tBen\t1\nCid\t1\tDee\t1\n"
              "Cid\t1\t2\nDee\t1\t2\nAnn\t2\tCid\t2\nBen\t2\tDee\t2\n")
PEOPLE = ("Ann", "Ben", "Cid", "Dee")
SCRIPT = "experiments/eval_lfw.py"


def make_tree(root, corrupt=False):
    """``<root>/pairs.txt`` and ``<root>/lfw-deepfunneled/<Name>/<Name>_000k.jpg`` (a colour per person, plus
    noise); ``corrupt``: every image is text instead."""
    rng = np.random.default_rng(0)
    for p, name in enumerate(PEOPLE):
        (root / "lfw-deepfunneled" / name).mkdir(parents=True)
        for k in (1, 2):
            path = root / "lfw-deepfunneled" / name / f"{name}_{k:04d}.jpg"
            if corrupt:
                path.write_bytes(b"not a jpeg")
                continue
            colour = np.array([60 * p, 255 - 60 * p, 128], np.float64)
            image = np.clip(colour + rng.normal(0, 20, (40, 40, 3)), 0, 255).astype(np.uint8)
            assert cv2.imwrite(str(path), image)
    (root / "pairs.txt").write_text(PAIRS_TEXT)
    return root / "pairs.txt"


def tiny_model(name="tiny", nan=False):
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Rescaling(1 / 255)(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    dense = keras.layers.Dense(4, use_bias=False)
    model = keras.Model(inputs, dense(x), name=name)
    kernel = np.random.default_rng(1).normal(size=(3, 4)).astype("float32")
    if nan:
        kernel[2, 1] = np.nan
    dense.set_weights([kernel])
    return model


@pytest.fixture()
def layout(tmp_path, monkeypatch):
    """(user pairs file, its tree, an output folder path); the default LFW root is an all-corrupt tree."""
    make_tree(tmp_path / "default_lfw", corrupt=True)
    monkeypatch.setenv("FACENET_TF_LFW_DIR", str(tmp_path / "default_lfw"))
    pairs = make_tree(tmp_path / "user")
    return pairs, tmp_path / "user" / "lfw-deepfunneled", tmp_path / "out"


def evaluate(embedder, pairs, output_dir, **kwargs):
    return evaluate_lfw(embedder, pairs=str(pairs), alignment="center", output_dir=output_dir, progress=False,
                        cache=False, align_overrides={"crop_size": 32}, **kwargs)


def test_a_pairs_path_is_scored_on_the_tree_beside_it(layout):
    pairs, tree, out = layout
    report = evaluate(keras_embedder(tiny_model()), pairs, out)
    assert report["image_root"] == str(tree.absolute())
    digest = hashlib.sha256(pairs.read_bytes()).hexdigest()
    assert report["pairs_files"] == [{"path": str(pairs.absolute()), "sha256": digest}]
    assert report["n_pairs"] == 8 and report["images"] == 8
    saved = json.loads((out / "results.json").read_text())
    assert (saved["image_root"], saved["pairs_files"]) == (report["image_root"], report["pairs_files"])
    keras.backend.clear_session()


def test_a_corrupt_image_in_the_user_tree_is_reported(layout):
    pairs, tree, out = layout
    bad = tree / "Cid" / "Cid_0002.jpg"
    bad.write_bytes(b"\xff\xd8 cut short")
    with pytest.raises(ImageReadError) as error:
        evaluate(keras_embedder(tiny_model()), pairs, out)
    assert error.value.path == str(bad)
    assert not out.exists()
    keras.backend.clear_session()


def test_no_tree_beside_the_pairs_file_and_no_data_dir_is_refused(layout, tmp_path):
    pairs, tree, out = layout
    alone = tmp_path / "alone"
    alone.mkdir()
    lonely = alone / "pairs.txt"
    lonely.write_bytes(pairs.read_bytes())
    embedder = keras_embedder(tiny_model())
    with pytest.raises(FileNotFoundError) as error:
        evaluate(embedder, lonely, out)
    message = str(error.value)
    assert "\n" not in message and str(lonely) in message and "--data_dir" in message
    assert "default_lfw" not in message and not out.exists()
    # with the image root given, that tree is used
    report = evaluate(embedder, lonely, out, root=str(tree.parent))
    assert report["image_root"] == str(tree.absolute())
    assert report["pairs_files"][0]["path"] == str(lonely.absolute())
    keras.backend.clear_session()


def test_a_model_yielding_nan_is_refused_and_nothing_is_written(layout, tmp_path):
    pairs, _, out = layout
    before = snapshot(tmp_path)
    with pytest.raises(NonFiniteEmbeddingError, match=r"model 'nan_model' .*\(NaN\) for input 0 \('/.*_0001\.jpg'\)"):
        model = tiny_model("nan_model", nan=True)
        evaluate(Embedder(lambda x: model(x, training=False).numpy(), (16, 16), "nan_model"), pairs, out)
    assert not out.exists()
    assert snapshot(tmp_path) == before
    keras.backend.clear_session()


@pytest.fixture()
def saved_model(tmp_path):
    path = tmp_path / "tiny.keras"
    tiny_model().save(path)
    keras.backend.clear_session()
    return path


def test_binary_pairs_file_fails_in_one_line_and_writes_nothing(layout, saved_model, tmp_path):
    _, tree, out = layout
    binary = tree.parent / "pairs.jpg"
    binary.write_bytes((tree / "Ann" / "Ann_0001.jpg").read_bytes())  # an image passed as the pairs file
    before = snapshot(tmp_path)
    proc = run([SCRIPT, f"--model={saved_model}", f"--pairs={binary}", f"--output_dir={out}", "--alignment=center"],
               tmp_path / "log.txt", timeout=60, env=python_env(FACENET_TF_CACHE_DIR=str(tmp_path / "cache")))
    assert proc.returncode == 1, proc.output
    assert proc.output.strip().splitlines() == [
        f"eval_lfw.py: error: {binary}, line 1: not UTF-8 text (byte 0xff at offset 0); expected a tab-separated "
        "text pairs file such as LFW's pairs.txt"]
    assert not out.exists() and not (tmp_path / "cache").exists()
    assert_intact(before, tmp_path)


def test_read_only_output_dir_fails_in_one_line_before_any_embedding(layout, saved_model, tmp_path):
    pairs, _, out = layout
    out.mkdir()
    with read_only(out):
        proc = run([SCRIPT, f"--model={saved_model}", f"--pairs={pairs}", f"--output_dir={out}",
                    "--alignment=center"], tmp_path / "log.txt", timeout=60,
                   env=python_env(FACENET_TF_CACHE_DIR=str(tmp_path / "cache")))
    assert proc.returncode == 1, proc.output
    (line,) = proc.output.strip().splitlines()
    assert line.startswith(f"eval_lfw.py: error: --output_dir '{out}") and "read-only" in line
    assert not (tmp_path / "cache").exists()  # nothing was aligned, let alone embedded
    assert not any(out.iterdir())

