"""TFLite variants of a tiny model: conversion, running in ai_edge_litert, parity with Keras, int8 in/out,
metadata (facenet_tf.export.tflite)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from facenet_tf.export.calibration import Threshold
from facenet_tf.export.metadata import read_embedded_metadata, read_metadata
from facenet_tf.export.source import from_keras_model
from facenet_tf.export.tflite import (VARIANTS, TFLiteEmbeddingModel, check_variants, convert_model,
                                      embed_metadata, embedding_parity, export_tflite, tflite_embedder)

from .conftest import TINY_DIM, nan_weight_model, smooth_images

# Smallest / mean cosine to the Keras embedding each variant must reach on the test images (the seeded
# random-weight tiny model; over other seeds int8's smallest cosine went down to 0.979, its mean stays > 0.99).
MIN_COSINE = {"float32": 0.99999, "float16": 0.9999, "dynamic_int8": 0.995, "int8": 0.97}
MEAN_COSINE = {"float32": 0.99999, "float16": 0.9999, "dynamic_int8": 0.999, "int8": 0.99}


@pytest.fixture(scope="module")
def exports(tiny_model, tmp_path_factory):
    representative = smooth_images(48, seed=1)
    out = tmp_path_factory.mktemp("tflite") / "export"
    return export_tflite(from_keras_model(tiny_model, "nns2"), out, representative_images=representative,
                         threshold=Threshold(1.1))


@pytest.fixture(scope="module")
def test_images():
    return smooth_images(8, seed=99)  # not among the representative images


def test_all_variants_written(exports):
    assert list(exports) == list(VARIANTS)
    for variant, export in exports.items():
        assert export.path.name == f"nns2_{variant}.tflite" and export.path.is_file()
        assert export.metadata_path == export.path.with_suffix(".json") and export.metadata_path.is_file()
        assert export.size_bytes == export.path.stat().st_size


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_variant_matches_keras(exports, variant, tiny_model, test_images):
    runner = TFLiteEmbeddingModel(exports[variant].path, num_threads=1)
    assert runner.input_size == (64, 64) and runner.embedding_size == TINY_DIM
    out = runner(test_images)
    assert out.shape == (len(test_images), TINY_DIM) and out.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    parity = embedding_parity(tiny_model(test_images, training=False).numpy(), out)
    assert parity["min_cosine"] >= MIN_COSINE[variant], parity
    assert parity["mean_cosine"] >= MEAN_COSINE[variant], parity
    if variant == "float32":
        assert parity["max_abs_difference"] < 1e-4


def test_int8_variant_has_int8_input_and_output(exports):
    runner = TFLiteEmbeddingModel(exports["int8"].path)
    assert runner.input_dtype == np.int8 and runner.output_dtype == np.int8
    scale, zero_point = runner.input_quantization
    # representative images span 0..255 -> pixel p is fed as p - 128, exactly
    assert scale == pytest.approx(1.0, abs=1e-6) and zero_point == -128
    pixels = np.arange(256, dtype=np.float32).reshape(1, 1, 256, 1)
    np.testing.assert_array_equal(runner.quantize_input(pixels), (np.arange(256) - 128).reshape(1, 1, 256, 1))
    out_scale, out_zero = runner.output_quantization
    assert out_scale > 0 and out_zero == 0
    raw = runner.run(smooth_images(2, seed=5))
    assert raw.dtype == np.int8 and raw.shape == (2, TINY_DIM)
    for variant in ("float32", "float16", "dynamic_int8"):
        other = TFLiteEmbeddingModel(exports[variant].path)
        assert other.input_dtype == np.float32 and other.output_dtype == np.float32


def test_sizes_shrink(exports):
    size = {variant: export.size_bytes for variant, export in exports.items()}
    assert size["float16"] < 0.6 * size["float32"]
    assert size["dynamic_int8"] < 0.35 * size["float32"]
    assert size["int8"] < 0.35 * size["float32"]


def test_dynamic_batch_gives_the_same_embeddings(exports, test_images):
    runner = TFLiteEmbeddingModel(exports["float32"].path)
    together = runner(test_images[:3])
    one_by_one = np.concatenate([runner(test_images[i:i + 1]) for i in range(3)])
    np.testing.assert_allclose(together, one_by_one, atol=1e-6)


def test_metadata_beside_and_inside(exports):
    for variant, export in exports.items():
        beside = json.loads(export.metadata_path.read_text())
        inside = read_embedded_metadata(export.path)
        assert beside == inside == export.metadata == read_metadata(export.path)
        assert beside["format"] == "tflite" and beside["variant"]["name"] == variant
        assert beside["model"] == "nns2" and beside["embedding_size"] == TINY_DIM
        assert beside["input"]["height"] == 64 and beside["threshold"]["value"] == pytest.approx(1.1)
    int8 = exports["int8"].metadata
    assert int8["tensors"]["input"]["dtype"] == "int8" and int8["tensors"]["input"]["zero_point"] == -128
    assert int8["calibration"]["images"] == 48 and int8["calibration"]["per_channel"] is True
    assert exports["float32"].metadata["tensors"]["output"]["dtype"] == "float32"


def test_embed_metadata_replaces_an_existing_entry(exports):
    data = exports["float32"].path.read_bytes()
    updated = embed_metadata(data, {"hello": "world"})
    assert read_embedded_metadata(updated) == {"hello": "world"}
    runner = TFLiteEmbeddingModel(updated)  # still a valid model
    assert runner.embedding_size == TINY_DIM


def test_embedder_wrapper(exports, test_images):
    from facenet_tf.evaluation.embed import embed

    embedder = tflite_embedder(exports["float16"].path, num_threads=2)
    assert embedder.input_size == (64, 64) and "float16" in embedder.name
    out = embed(embedder, test_images.astype(np.uint8), batch_size=3, progress=False)
    assert out.shape == (len(test_images), TINY_DIM)


def test_wrong_input_shape_is_rejected(exports):
    runner = TFLiteEmbeddingModel(exports["float32"].path)
    with pytest.raises(ValueError, match=r"\(N, 64, 64, 3\)"):
        runner(np.zeros((1, 32, 32, 3), np.float32))


def test_variant_names_are_checked():
    assert check_variants(["int8", "float32", "int8"]) == ["int8", "float32"]
    with pytest.raises(ValueError, match="float16"):
        check_variants(["int4"])


def test_int8_needs_representative_images(micro_model):
    with pytest.raises(ValueError, match="representative"):
        convert_model(micro_model, "int8")


def test_per_tensor_option(micro_model):
    images = smooth_images(8, seed=3)
    per_channel = TFLiteEmbeddingModel(convert_model(micro_model, "int8", images))
    per_tensor = TFLiteEmbeddingModel(convert_model(micro_model, "int8", images, per_channel=False))
    reference = micro_model(images, training=False).numpy()
    for runner in (per_channel, per_tensor):
        assert embedding_parity(reference, runner(images))["min_cosine"] > 0.95


def test_parity_metric():
    a = np.array([[1.0, 0.0], [0.0, 1.0]])
    b = np.array([[1.0, 0.0], [0.6, 0.8]])
    parity = embedding_parity(a, b)
    assert parity["min_cosine"] == pytest.approx(0.8) and parity["mean_cosine"] == pytest.approx(0.9)
    assert parity["max_abs_difference"] == pytest.approx(0.6) and parity["n"] == 2
    with pytest.raises(ValueError):
        embedding_parity(a, b[:1])


def test_int8_with_float_nodes_keeps_int8_io(micro_model):
    images = smooth_images(8, seed=4)
    flatbuffer = convert_model(micro_model, "int8", images, float_nodes=["dense"])
    runner = TFLiteEmbeddingModel(flatbuffer)
    assert runner.input_dtype == np.int8 and runner.output_dtype == np.int8
    ops = {detail["op_name"] for detail in runner.interpreter._get_ops_details()}
    assert "FULLY_CONNECTED" in ops and "DEQUANTIZE" in ops  # the dense layer runs in float between (de)quantize
    reference = micro_model(images, training=False).numpy()
    assert embedding_parity(reference, runner(images))["min_cosine"] > 0.95
    with pytest.raises(ValueError, match="no tensor name matches"):
        convert_model(micro_model, "int8", images, float_nodes=["no_such_layer"])
    with pytest.raises(ValueError, match="only applies"):
        convert_model(micro_model, "float16", images, float_nodes=["dense"])


# ------------------------------------------------------------------------------------------ the output folder


@pytest.fixture()
def float_export(micro_model, tmp_path):
    target = tmp_path / "export"
    export_tflite(micro_model, target, ["float32", "float16"], threshold=Threshold(1.0))
    return target


def _digest(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_existing_folder_needs_overwrite_and_is_replaced_as_a_whole(float_export, micro_model):
    before = _digest(float_export)
    assert sorted(before) == ["micro_float16.json", "micro_float16.tflite", "micro_float32.json",
                              "micro_float32.tflite"]
    with pytest.raises(FileExistsError, match="--overwrite"):
        export_tflite(micro_model, float_export, ["float32"])
    assert _digest(float_export) == before
    exports = export_tflite(micro_model, float_export, ["dynamic_int8"], threshold=Threshold(1.3), overwrite=True)
    # the folder is the new export only: no float16 model of the previous run left beside it
    assert sorted(p.name for p in float_export.iterdir()) == ["micro_dynamic_int8.json", "micro_dynamic_int8.tflite"]
    assert exports["dynamic_int8"].path == float_export / "micro_dynamic_int8.tflite"
    assert read_metadata(exports["dynamic_int8"].path)["threshold"]["value"] == pytest.approx(1.3)
    assert sorted(p.name for p in float_export.parent.iterdir()) == ["export"]


def test_overwrite_refuses_a_folder_that_is_not_a_tflite_export(float_export, micro_model):
    from facenet_tf.export.tflite import is_tflite_export

    assert is_tflite_export(float_export)
    (float_export / "notes.txt").write_text("keep me")
    assert not is_tflite_export(float_export)
    with pytest.raises(FileExistsError, match="not a TFLite export"):
        export_tflite(micro_model, float_export, ["float32"], overwrite=True)
    assert (float_export / "notes.txt").read_text() == "keep me"
    (float_export / "notes.txt").unlink()
    (float_export / "micro_float16.json").write_text(json.dumps({"format": "saved_model"}))
    assert not is_tflite_export(float_export)


def test_failure_in_a_later_variant_leaves_the_previous_export_intact(float_export, micro_model, monkeypatch):
    import facenet_tf.export.tflite as tflite_lib

    before = _digest(float_export)
    real_convert = tflite_lib.convert_saved_model
    done = []

    def convert_then_fail(saved, variant, *args, **kwargs):
        if done:
            raise RuntimeError("converter crashed (simulated)")
        done.append(variant)
        return real_convert(saved, variant, *args, **kwargs)

    monkeypatch.setattr(tflite_lib, "convert_saved_model", convert_then_fail)
    with pytest.raises(RuntimeError, match="simulated"):
        export_tflite(micro_model, float_export, ["float32", "float16"], threshold=Threshold(1.3), overwrite=True)
    assert done == ["float32"]  # one variant was converted before the failure
    assert _digest(float_export) == before
    assert sorted(p.name for p in float_export.parent.iterdir()) == ["export"]


def test_next_export_removes_what_a_killed_export_left(float_export, micro_model):
    stale = float_export.parent / ".export.tmp-0badc0de"
    stale.mkdir()
    (stale / "micro_float32.tflite").write_bytes(b"half a model")
    export_tflite(micro_model, float_export, ["float32"], overwrite=True)
    assert sorted(p.name for p in float_export.parent.iterdir()) == ["export"]


def test_export_refuses_a_model_with_nan_embeddings(micro_model, tmp_path):
    from facenet_tf.export.source import NonFiniteModelError

    with pytest.raises(NonFiniteModelError, match="NaN or infinite embeddings"):
        export_tflite(nan_weight_model(micro_model), tmp_path / "export", ["float32"])
    assert list(tmp_path.iterdir()) == []
