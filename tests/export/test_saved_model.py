"""The serving SavedModel: signatures vs the Keras model, isolation from facenet_tf, TFSMLayer, bad inputs,
metadata, and atomic writing (facenet_tf.export.saved_model)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from facenet_tf.export import saved_model as saved_model_lib
from facenet_tf.export.calibration import Threshold
from facenet_tf.export.metadata import read_metadata
from facenet_tf.export.quantize import DEFAULT_SCALE, integer_squared_distances, integer_threshold, quantize_embeddings
from facenet_tf.export.saved_model import SIGNATURES, export_saved_model, load_metadata
from facenet_tf.export.source import from_keras_model

from .conftest import TINY_DIM, nan_weight_model, smooth_images

THRESHOLD = 0.8


@pytest.fixture(scope="module")
def export_dir(tiny_model, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("saved_model") / "tiny"
    threshold = Threshold(THRESHOLD)
    export_saved_model(from_keras_model(tiny_model, "nns2"), path, threshold)
    return path


@pytest.fixture(scope="module")
def loaded(export_dir):
    return tf.saved_model.load(str(export_dir))


def _keras(model, images):
    return model(images, training=False).numpy()


def test_signatures_present(loaded):
    assert set(loaded.signatures) == set(SIGNATURES)


def test_embed_images_and_serving_default_match_keras(loaded, tiny_model, tiny_images):
    expected = _keras(tiny_model, tiny_images)
    for name in ("embed_images", "serving_default"):
        out = loaded.signatures[name](images=tf.constant(tiny_images))
        assert set(out) == {"embeddings"}
        np.testing.assert_allclose(out["embeddings"].numpy(), expected, atol=1e-5)
    # the input spec is what load_embedder reads the input size from
    spec = loaded.signatures["embed_images"].structured_input_signature[1]["images"]
    assert spec.shape.as_list() == [None, 64, 64, 3] and spec.dtype == tf.float32


def test_verify_uses_the_stored_threshold(loaded, tiny_model, tiny_images):
    a, b = tiny_images[:3], tiny_images[[0, 4, 5]]
    out = loaded.signatures["verify"](images_a=tf.constant(a), images_b=tf.constant(b))
    ea, eb = _keras(tiny_model, a), _keras(tiny_model, b)
    expected = np.sum((ea - eb) ** 2, axis=1)
    np.testing.assert_allclose(out["distances"].numpy(), expected, atol=1e-5)
    assert out["distances"].numpy()[0] == pytest.approx(0.0, abs=1e-6)  # an image against itself
    np.testing.assert_array_equal(out["same"].numpy(), out["distances"].numpy() <= THRESHOLD)
    assert loaded.threshold.numpy() == pytest.approx(THRESHOLD)


def test_int8_signatures_match_numpy_quantiser(loaded, tiny_model, tiny_images):
    codes = loaded.signatures["embed_images_int8"](images=tf.constant(tiny_images))["embeddings"].numpy()
    assert codes.dtype == np.int8 and codes.shape == (len(tiny_images), TINY_DIM)
    # same float32 arithmetic -> bit-identical codes (the embeddings themselves agree to ~1e-7; allow a code to
    # differ by one where an embedding sits exactly on a rounding boundary)
    reference = quantize_embeddings(_keras(tiny_model, tiny_images), DEFAULT_SCALE)
    assert np.abs(codes.astype(int) - reference).max() <= 1
    assert np.count_nonzero(codes != reference) <= 2
    assert loaded.int8_scale.numpy() == DEFAULT_SCALE

    a, b = codes[:3], codes[3:]
    out = loaded.signatures["int8_distances"](embeddings_a=tf.constant(a), embeddings_b=tf.constant(b))
    integer = integer_squared_distances(a, b)
    np.testing.assert_array_equal(out["integer_squared_distances"].numpy(), integer)
    np.testing.assert_allclose(out["squared_distances"].numpy(), integer / DEFAULT_SCALE ** 2, rtol=1e-6)
    np.testing.assert_array_equal(out["same"].numpy(), integer <= integer_threshold(THRESHOLD, DEFAULT_SCALE))


def test_embed_jpeg_decodes_and_resizes(loaded, tiny_model):
    images = smooth_images(3, seed=5).astype(np.uint8)
    expected = _keras(tiny_model, images.astype(np.float32))
    big = smooth_images(1, shape=(128, 128, 3), seed=6).astype(np.uint8)[0]
    small = smooth_images(1, shape=(40, 40, 3), seed=7).astype(np.uint8)[0]
    encoded = [tf.io.encode_png(images[0]).numpy(),          # lossless, exact size -> identical pixels
               tf.io.encode_jpeg(images[1], quality=95).numpy(),
               tf.io.encode_png(big).numpy(),                # shrunk with area averaging
               tf.io.encode_jpeg(small, quality=95).numpy(),  # enlarged bilinearly
               tf.io.encode_png(images[2][:, :, :1]).numpy()]  # grey PNG -> expanded to 3 channels
    out = loaded.signatures["embed_jpeg"](images=tf.constant(encoded))["embeddings"].numpy()
    assert out.shape == (5, TINY_DIM)
    np.testing.assert_allclose(out[0], expected[0], atol=1e-5)
    assert np.dot(out[1], expected[1]) > 0.99
    from facenet_tf.align import resize

    for row, source in ((2, big), (3, small)):  # the alignment's own resize gives (nearly) the same input
        reference = _keras(tiny_model, resize(source, (64, 64))[None].astype(np.float32))[0]
        assert np.dot(out[row], reference) > 0.995
    grey = np.repeat(images[2][:, :, :1], 3, axis=2).astype(np.float32)
    np.testing.assert_allclose(out[4], _keras(tiny_model, grey[None])[0], atol=1e-5)


def test_embed_jpeg_names_the_undecodable_indices(loaded):
    good = tf.io.encode_jpeg(smooth_images(1, seed=8).astype(np.uint8)[0]).numpy()
    png = tf.io.encode_png(smooth_images(1, seed=9).astype(np.uint8)[0]).numpy()
    batch = [good, b"not an image at all", good[: len(good) // 2], good, b"", png[:-20]]
    with pytest.raises(tf.errors.InvalidArgumentError) as error:
        loaded.signatures["embed_jpeg"](images=tf.constant(batch))
    message = str(error.value)
    assert "embed_jpeg" in message and "not complete JPEG or PNG" in message
    assert "[1 2 4 5]" in message


def test_wrong_image_shape_names_the_expected_shape(loaded):
    with pytest.raises(tf.errors.InvalidArgumentError) as error:
        loaded.signatures["embed_images"](images=tf.zeros([2, 32, 48, 3]))
    message = str(error.value)
    assert "[N, 64, 64, 3]" in message and "[2 32 48 3]" in message
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"images_b.*\[N, 64, 64, 3\]"):
        loaded.signatures["verify"](images_a=tf.zeros([1, 64, 64, 3]), images_b=tf.zeros([1, 64, 64, 1]))


def test_wrong_dtype_names_the_expected_dtype(loaded):
    with pytest.raises((tf.errors.InvalidArgumentError, TypeError, ValueError), match="float"):
        loaded.signatures["embed_images"](images=tf.zeros([1, 64, 64, 3], tf.uint8))


def test_verify_and_int8_distances_need_equal_batches(loaded):
    with pytest.raises(tf.errors.InvalidArgumentError, match="same number of items.*3.*and.*2"):
        loaded.signatures["verify"](images_a=tf.zeros([3, 64, 64, 3]), images_b=tf.zeros([2, 64, 64, 3]))
    with pytest.raises(tf.errors.InvalidArgumentError, match=rf"\[N, {TINY_DIM}\]"):
        loaded.signatures["int8_distances"](embeddings_a=tf.zeros([2, 8], tf.int8),
                                            embeddings_b=tf.zeros([2, 8], tf.int8))


def test_metadata_asset(export_dir, loaded):
    metadata = read_metadata(export_dir)
    assert (export_dir / "assets" / "metadata.json").is_file()
    assert load_metadata(loaded) == metadata
    assert metadata["model"] == "nns2" and metadata["format"] == "saved_model"
    assert metadata["input"]["height"] == 64 and metadata["input"]["width"] == 64
    assert metadata["embedding_size"] == TINY_DIM
    assert metadata["preprocessing"]["name"] == "scale"
    assert metadata["threshold"]["value"] == pytest.approx(THRESHOLD) and metadata["threshold"]["source"] == "given"
    assert metadata["int8_embeddings"]["scale"] == DEFAULT_SCALE
    assert metadata["int8_embeddings"]["integer_threshold"] == integer_threshold(THRESHOLD, DEFAULT_SCALE)
    assert set(metadata["signatures"]) == set(SIGNATURES)
    for key in ("facenet_tf_version", "exported_at", "source", "tensorflow_version"):
        assert metadata[key]


ISOLATED = textwrap.dedent("""
    import importlib.abc, json, sys
    class Blocker(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "facenet_tf" or name.startswith("facenet_tf."):
                raise ImportError("facenet_tf is blocked in this process")
    sys.meta_path.insert(0, Blocker())
    try:
        import facenet_tf  # noqa: F401
        raise SystemExit("facenet_tf could be imported")
    except ImportError:
        pass
    import numpy as np
    import tensorflow as tf
    export, inputs, outputs = sys.argv[1:4]
    data = np.load(inputs)
    loaded = tf.saved_model.load(export)
    sig = loaded.signatures
    result = {
        "embeddings": sig["embed_images"](images=tf.constant(data["images"]))["embeddings"].numpy(),
        "serving": sig["serving_default"](images=tf.constant(data["images"]))["embeddings"].numpy(),
        "jpeg": sig["embed_jpeg"](images=tf.constant([open(f"{inputs}.{i}.png", "rb").read()
                                                      for i in range(len(data["images"]))]))["embeddings"].numpy(),
        "distances": sig["verify"](images_a=tf.constant(data["images"]),
                                   images_b=tf.constant(data["images"][::-1].copy()))["distances"].numpy(),
        "codes": sig["embed_images_int8"](images=tf.constant(data["images"]))["embeddings"].numpy(),
    }
    np.savez(outputs, **result)
    metadata = json.loads(open(loaded.metadata_path.asset_path.numpy().decode()).read())
    print(json.dumps({"modules": sorted(m for m in sys.modules if m.startswith("facenet")),
                      "model": metadata["model"], "threshold": float(loaded.threshold.numpy())}))
""")


def test_signatures_need_nothing_from_facenet_tf(export_dir, tiny_model, tmp_path):
    images = smooth_images(3, seed=11)
    np.savez(tmp_path / "inputs.npz", images=images)
    for i, image in enumerate(images):
        (tmp_path / f"inputs.npz.{i}.png").write_bytes(tf.io.encode_png(image.astype(np.uint8)).numpy())
    script = tmp_path / "isolated.py"
    script.write_text(ISOLATED)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    completed = subprocess.run([sys.executable, "-I", str(script), str(export_dir), str(tmp_path / "inputs.npz"),
                                str(tmp_path / "outputs.npz")], cwd=tmp_path, env=env, capture_output=True,
                               text=True, timeout=300)
    assert completed.returncode == 0, completed.stderr[-3000:]
    report = json.loads(completed.stdout.strip().splitlines()[-1])
    assert report["modules"] == [] and report["model"] == "nns2" and report["threshold"] == pytest.approx(THRESHOLD)
    out = np.load(tmp_path / "outputs.npz")
    expected = _keras(tiny_model, images)
    np.testing.assert_allclose(out["embeddings"], expected, atol=1e-5)
    np.testing.assert_allclose(out["serving"], expected, atol=1e-5)
    np.testing.assert_allclose(out["jpeg"], expected, atol=1e-5)  # PNG at the input size: exact pixels
    np.testing.assert_allclose(out["distances"], np.sum((expected - expected[::-1]) ** 2, axis=1), atol=1e-5)
    assert out["codes"].dtype == np.int8


def test_tfsm_layer(export_dir, tiny_model, tiny_images):
    layer = keras.layers.TFSMLayer(str(export_dir), call_endpoint="serving_default")
    out = layer(tiny_images)
    np.testing.assert_allclose(np.asarray(out["embeddings"]), _keras(tiny_model, tiny_images), atol=1e-5)
    # usable as a layer of a new Keras model
    inputs = keras.Input((64, 64, 3))
    model = keras.Model(inputs, layer(inputs)["embeddings"])
    np.testing.assert_allclose(model.predict(tiny_images, verbose=0), _keras(tiny_model, tiny_images), atol=1e-5)


def test_load_embedder_reads_the_export(export_dir, tiny_model, tiny_images):
    from facenet_tf.evaluation.embed import load_embedder

    embedder = load_embedder(str(export_dir))
    assert embedder.input_size == (64, 64)
    np.testing.assert_allclose(embedder(tiny_images), _keras(tiny_model, tiny_images), atol=1e-5)


# ---------------------------------------------------------------------------------------------------- atomicity


def _tree_digest(path: Path) -> dict[str, str]:
    return {str(f.relative_to(path)): hashlib.sha256(f.read_bytes()).hexdigest()
            for f in sorted(path.rglob("*")) if f.is_file()}


def _siblings(path: Path) -> list[str]:
    return sorted(p.name for p in path.parent.iterdir() if p.name != path.name)


@pytest.fixture(scope="module")
def micro_export(micro_model, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("micro") / "export"
    export_saved_model(micro_model, path, threshold=1.0)
    return path


def test_failed_export_leaves_the_existing_export_untouched(micro_export, micro_model, tmp_path, monkeypatch):
    target = tmp_path / "export"
    shutil.copytree(micro_export, target)
    before = _tree_digest(target)
    real_save = tf.saved_model.save
    written = []

    def save_then_fail(obj, path, *args, **kwargs):
        real_save(obj, path, *args, **kwargs)
        written.append(sorted(p.name for p in Path(path).iterdir()))
        raise RuntimeError("disk full (simulated)")

    monkeypatch.setattr(tf.saved_model, "save", save_then_fail)
    with pytest.raises(RuntimeError, match="simulated"):
        export_saved_model(micro_model, target, threshold=1.5, overwrite=True)
    assert written and "saved_model.pb" in written[0]  # it failed after writing a complete-looking export
    assert _tree_digest(target) == before
    assert _siblings(target) == []  # no half-written or renamed-aside directory left


def test_failed_check_leaves_no_export(micro_model, tmp_path, monkeypatch):
    def failing_check(path, model, atol=1e-4):
        raise RuntimeError("mismatch (simulated)")

    monkeypatch.setattr(saved_model_lib, "check_saved_model", failing_check)
    target = tmp_path / "new_export"
    with pytest.raises(RuntimeError, match="simulated"):
        export_saved_model(micro_model, target, threshold=1.0)
    assert not target.exists() and list(tmp_path.iterdir()) == []


def test_overwrite_replaces_atomically_and_refuses_without_flag(micro_export, micro_model, tmp_path):
    target = tmp_path / "export"
    shutil.copytree(micro_export, target)
    with pytest.raises(FileExistsError, match="overwrite"):
        export_saved_model(micro_model, target, threshold=1.5)
    export_saved_model(micro_model, target, threshold=1.5, overwrite=True)
    assert read_metadata(target)["threshold"]["value"] == pytest.approx(1.5)
    assert tf.saved_model.load(str(target)).threshold.numpy() == pytest.approx(1.5)
    assert _siblings(target) == []


def test_refuses_to_replace_a_directory_that_is_not_an_export(micro_model, tmp_path):
    target = tmp_path / "notes"
    target.mkdir()
    (target / "important.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="not a SavedModel"):
        export_saved_model(micro_model, target, threshold=1.0, overwrite=True)
    assert (target / "important.txt").read_text() == "keep me"


def test_threshold_is_validated():
    with pytest.raises(ValueError, match=r"\[0, 4\]"):
        Threshold(5.0)
    with pytest.raises(ValueError):
        Threshold(float("nan"))
    assert json.dumps(Threshold(1.0).to_dict())


def test_export_refuses_a_model_with_nan_embeddings(micro_model, tmp_path):
    from facenet_tf.export.source import NonFiniteModelError

    broken = nan_weight_model(micro_model)
    with pytest.raises(NonFiniteModelError, match="NaN or infinite embeddings.*1 of its .* weight values"):
        export_saved_model(broken, tmp_path / "export", threshold=1.0)
    assert list(tmp_path.iterdir()) == []  # refused before anything was written


def test_check_saved_model_refuses_non_finite_keras_embeddings(micro_export, micro_model):
    from facenet_tf.export.source import NonFiniteModelError

    assert saved_model_lib.check_saved_model(micro_export, micro_model) < 1e-4
    with pytest.raises(NonFiniteModelError, match="not exported"):
        saved_model_lib.check_saved_model(micro_export, nan_weight_model(micro_model))


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_int8_quantiser_never_maps_non_finite_embeddings_to_a_code(micro_model, value):
    module = saved_model_lib.EmbeddingServingModule(micro_model, threshold=1.0)
    embeddings = np.zeros([2, 16], np.float32)
    embeddings[1, 3] = value
    with pytest.raises(tf.errors.InvalidArgumentError, match="int8 quantisation: embeddings must be finite"):
        module._quantize(tf.constant(embeddings))
    assert module._quantize(tf.constant(embeddings[:1])).numpy().tolist() == [[0] * 16]


def test_next_export_removes_what_a_killed_export_left(micro_export, micro_model, tmp_path):
    target = tmp_path / "export"
    shutil.copytree(micro_export, target)
    stale = tmp_path / ".export.tmp-0badc0de"
    shutil.copytree(micro_export, stale)  # a killed run's half-written export, as big as a real one
    aside = tmp_path / ".export.old-0badc0de"
    aside.mkdir()
    export_saved_model(micro_model, target, threshold=1.2, overwrite=True)
    assert _siblings(target) == []
    assert read_metadata(target)["threshold"]["value"] == pytest.approx(1.2)
