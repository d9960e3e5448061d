"""experiments/harmonic_jax.py over facenet_tf.harmonic.packing / stage / jax_runner: what travels to the GPU
machine is what the TensorFlow pipeline would train on (pack), the trained weights come back into a workdir that
loads like any other (unpack), and the code the GPU side imports never imports TensorFlow (the machine has none)."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

from facenet_tf.data.pipeline import load_face  # noqa: E402
from facenet_tf.models import create_model  # noqa: E402
from facenet_tf.harmonic import stage as harmonic_stage  # noqa: E402
from facenet_tf.harmonic.jax_runner import PhaseTwoSettings, staged_data  # noqa: E402
from facenet_tf.harmonic.old_embeddings import precompute_old_embeddings  # noqa: E402
from facenet_tf.harmonic.training import train  # noqa: E402
from facenet_tf.train import TrainConfig, load_embedding_model  # noqa: E402
from facenet_tf.train.loop import split_identities  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "experiments" / "harmonic_jax.py"

from tests.train.conftest import make_tree  # noqa: E402

TINY = dict(model="nns2", input_size=(40, 32), embedding_dim=8, identities_per_batch=3, faces_per_identity=3,
            extra_negatives=2, exclude_pairs=(), jitter=0.1, crop_fraction=0.8)


def run_script(*args, env=None):
    result = subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, cwd=ROOT,
                            env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


@pytest.fixture()
def phase1(tmp_path, monkeypatch):
    """A tiny harmonic phase-1 run (2 steps) against a random old model."""
    tiny_tree = make_tree(tmp_path / "faces")
    monkeypatch.setenv("FACENET_TF_CACHE_DIR", str(tmp_path / "cache"))
    old = tmp_path / "old.keras"
    create_model("nns1", embedding_dim=8, input_shape=(36, 36, 3), batch_norm=True).save(old)
    config = TrainConfig.from_flags(workdir=str(tmp_path / "p1"), data_dir=str(tiny_tree), steps=2, checkpoint_every=2,
                         harmonic_with=str(old), harmonic_phase="embedding_layer", init_from="nns2", **TINY)
    train(config, verbose=0)
    return config


def test_pack_then_unpack_round_trip(phase1, tmp_path):
    stage = tmp_path / "stage"
    env = {**os.environ}
    run_script("--mode=pack", f"--runs=T={phase1.workdir}", f"--stage_dir={stage}", "--jpeg_quality=100",
               "--image_parts=2", env=env)
    manifest = json.loads((stage / "manifest.json").read_text())
    run = manifest["runs"]["T"]
    index, _, _ = split_identities(phase1)
    assert run["labels"] == index.labels.tolist() and run["load_size"] == [44, 35]
    assert manifest["jpeg_error"]["images"] == len(index.paths)
    np.testing.assert_allclose(np.load(stage / "old_T.npy"), precompute_old_embeddings(phase1, index), atol=1e-6)

    # The staged crops decode to what load_face gives the TensorFlow pipeline, up to JPEG rounding: compared in
    # luma, since JPEG halves the chroma resolution (large errors on these random colour patterns, not on faces).
    images = harmonic_stage.decode_images(stage, manifest, run["image_ids"])
    direct = np.stack([load_face(p, (44, 35), 0.8) for p in index.paths])
    luma = np.array([0.299, 0.587, 0.114])
    assert images.shape == direct.shape and np.abs(images @ luma - direct @ luma).mean() < 2.0

    # The staged weights are the phase-1 model's (large arrays rounded to float16).
    model = create_model("nns2", embedding_dim=8, input_shape=(40, 32, 3), batch_norm=True)
    arrays = harmonic_stage.load_parts([stage / n for n in manifest["base_weights"] + run["weights"]])
    harmonic_stage.assign_arrays(model, arrays, "stage")
    p1 = load_embedding_model(phase1.workdir)
    for a, b in zip(model.get_weights(), p1.get_weights()):
        np.testing.assert_allclose(a, b, rtol=2e-3, atol=1e-4)
    # What --mode=train starts from on the GPU machine: the same crops, labels, old embeddings and weights.
    gpu_model, gpu_images, gpu_labels, gpu_old = staged_data(stage, "T")
    np.testing.assert_array_equal(gpu_images, images)
    np.testing.assert_array_equal(gpu_labels, index.labels)
    np.testing.assert_array_equal(gpu_old, np.load(stage / "old_T.npy"))
    for a, b in zip(gpu_model.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="--run=U: the stage has runs"):
        staged_data(stage, "U")

    # What train writes: weight parts + log; unpack turns them into a workdir with a phase-2 config.
    trained = tmp_path / "trained"
    trained.mkdir()
    for w in model.weights:
        if w.path.endswith("kernel"):
            w.assign(w.numpy() * 0.5)
    files = harmonic_stage.save_parts(harmonic_stage.weights_to_arrays(model), trained, "trained")
    flags = PhaseTwoSettings(steps=30, optimizer="adam", learning_rate=1e-4, lr_decay_steps=(20,),
                             lr_decay_factor=0.1, candidates="old", same_image_weight=1.0, margin=0.2,
                             identities_per_batch=3, faces_per_identity=3, extra_negatives=2, seed=0).logged()
    assert flags["lr_decay_steps"] == ["20"] and "log_every" not in flags  # as --mode=train logs them
    (trained / "train_log.json").write_text(json.dumps(
        {"files": files, "steps_done": 30, "flags": flags, "float16_rounding_min_cosine": 1.0, "history": []}))
    run_script("--mode=unpack", f"--stage_dir={stage}", "--run=T", f"--trained_dir={trained}",
               f"--workdir={tmp_path / 'p2'}", env=env)
    config = TrainConfig.load(tmp_path / "p2")
    assert (config.harmonic.phase, config.optimizer, config.steps, config.lr_decay_steps) == ("all", "adam", 30, (20,))
    assert config.harmonic.init_from == phase1.workdir and config.harmonic.old_model == phase1.harmonic.old_model
    assert (config.harmonic.candidates, config.harmonic.same_image_weight) == ("old", 1.0)
    for a, b in zip(load_embedding_model(tmp_path / "p2").get_weights(), model.get_weights()):
        np.testing.assert_allclose(a, b, rtol=2e-3, atol=1e-4)


def test_weight_parts_split_by_size_and_name_missing_weights(tmp_path, monkeypatch):
    monkeypatch.setattr(harmonic_stage, "PART_BYTES", 20_000)
    model = create_model("nns2", embedding_dim=8, input_shape=(40, 32, 3))
    arrays = harmonic_stage.weights_to_arrays(model)
    assert all(a.dtype == (np.float16 if a.size >= harmonic_stage.FP16_MIN_SIZE else np.float32)
               for a in arrays.values())
    files = harmonic_stage.save_parts(arrays, tmp_path, "w")
    assert len(files) > 1
    back = harmonic_stage.load_parts([tmp_path / f for f in files])
    assert back.keys() == arrays.keys()
    del back[model.weights[0].path]
    with pytest.raises(ValueError, match="no value for 1 weights"):
        harmonic_stage.assign_arrays(model, back, "parts")


def test_augment_batch_is_a_seeded_crop_and_flip():
    images = np.random.default_rng(0).integers(0, 256, (6, 44, 35, 3), dtype=np.uint8)
    a = harmonic_stage.augment_batch(images, 0, 3, (40, 32))
    np.testing.assert_array_equal(a, harmonic_stage.augment_batch(images, 0, 3, (40, 32)))
    assert a.shape == (6, 40, 32, 3) and a.dtype == np.float32
    assert not np.array_equal(a, harmonic_stage.augment_batch(images, 0, 4, (40, 32)))
    for k in range(6):  # each output is a window of its image, maybe mirrored
        found = any(np.array_equal(a[k], w) or np.array_equal(a[k], w[:, ::-1])
                    for t in range(5) for l in range(4) for w in [images[k, t:t + 40, l:l + 32].astype(np.float32)])
        assert found


def _top_level_imports(path: Path) -> set[str]:
    names = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_gpu_side_modules_do_not_import_tensorflow():
    """harmonic_jax --mode=train imports these; a module-level TensorFlow import would fail on the GPU machine."""
    files = [SCRIPT, *(ROOT / "facenet_tf" / "harmonic" / f"{name}.py" for name in ("__init__", "stage", "jax_runner")),
             *sorted((ROOT / "facenet_tf" / "models").glob("*.py")),
             *sorted((ROOT / "facenet_tf" / "portable").glob("*.py")), ROOT / "facenet_tf" / "__init__.py",
             ROOT / "facenet_tf" / "paths.py", ROOT / "facenet_tf" / "data" / "__init__.py",
             ROOT / "facenet_tf" / "data" / "sampling.py"]
    for file in files:
        assert "tensorflow" not in _top_level_imports(file), file


def test_phase_two_settings_name_the_flag():
    with pytest.raises(ValueError, match="--optimizer: expected one of"):
        PhaseTwoSettings(optimizer="sgd")
    with pytest.raises(ValueError, match="--log_every: expected a positive integer"):
        PhaseTwoSettings(log_every=0)
    assert set(PhaseTwoSettings().logged()) == set(PhaseTwoSettings.LOGGED)

