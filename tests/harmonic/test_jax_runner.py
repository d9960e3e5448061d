"""experiments/harmonic_jax.py over facenet_tf.harmonic.packing / stage / jax_runner: what travels to the GPU
machine is what the TensorFlow pipeline would train on (pack), the trained weights come back into a workdir that
loads like any other (unpack), and the code the GPU side imports never imports TensorFlow (the machine has none)."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import textwrap
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
from facenet_tf.models.source import load_model  # noqa: E402
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


#: Makes TensorFlow unimportable in this process: any ``import tensorflow`` raises, as on a machine without it
#: (a finder, not ``sys.modules["tensorflow"] = None``: Keras takes a ``tensorflow`` key there for an imported one).
BLOCK_TENSORFLOW = textwrap.dedent("""
    import importlib.abc, sys
    class NoTensorFlow(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "tensorflow" or name.startswith("tensorflow."):
                raise ModuleNotFoundError(f"{name} is blocked: the GPU side must not import TensorFlow", name=name)
    sys.meta_path.insert(0, NoTensorFlow())
""")
#: ``python -c WITHOUT_TENSORFLOW script args``: the script run with TensorFlow blocked.
WITHOUT_TENSORFLOW = BLOCK_TENSORFLOW + textwrap.dedent("""
    import runpy
    sys.argv = sys.argv[1:]
    runpy.run_path(sys.argv[0], run_name="__main__")
""")


def test_facenet_tf_imports_without_tensorflow(tmp_path):
    """TensorFlow is an extra: ``import facenet_tf`` works without it (and still sets the environment defaults),
    and what needs it says which extra to install: the one-line API on first use, the ``facenet-tf`` command as a
    one-line error. (The GPU side of phase 2 under JAX without TensorFlow: the slow end-to-end test below.)"""
    for name in ("a.jpg", "b.jpg"):
        (tmp_path / name).write_bytes(b"not used: the model is loaded first")
    script = BLOCK_TENSORFLOW + textwrap.dedent(f"""
        import json, os
        import facenet_tf
        try:
            facenet_tf.verify
            error = None
        except ModuleNotFoundError as e:
            error = [e.name, str(e)]
        from facenet_tf.cli import main
        status = main(["verify", {str(tmp_path / "a.jpg")!r}, {str(tmp_path / "b.jpg")!r}])
        print(json.dumps(dict(error=error, status=status, onednn=os.environ.get("TF_ENABLE_ONEDNN_OPTS"),
                              tensorflow=sorted(m for m in sys.modules if m.split(".")[0] == "tensorflow"))))
    """)
    env = {k: v for k, v in os.environ.items() if k not in ("TF_ENABLE_ONEDNN_OPTS", "TF_CPP_MIN_LOG_LEVEL")}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=300,
                            env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["tensorflow"] == [] and out["onednn"] == "1"  # the environment defaults are still set
    assert out["error"][0] == "tensorflow" and "pip install 'facenet-tf[cpu]'" in out["error"][1]
    assert "'facenet-tf[gpu]'" in out["error"][1]
    assert out["status"] == 1
    assert result.stderr.strip().splitlines() == [f"facenet-tf: error: {out['error'][1]}"]


@pytest.fixture()
def jax_python() -> str:
    """The interpreter of --mode=train: $FACENET_TF_JAX_PYTHON, else this one; skipped where it has no jax."""
    python = os.environ.get("FACENET_TF_JAX_PYTHON") or sys.executable
    probe = subprocess.run([python, "-c", "import jax"], capture_output=True, text=True, timeout=300)
    if probe.returncode != 0:
        pytest.skip(f"jax is not installed: pip install 'jax[cpu]' (or set FACENET_TF_JAX_PYTHON to a Python "
                    f"with jax; {python} has none)")
    return python


@pytest.mark.slow
def test_pack_train_unpack_end_to_end_under_jax(jax_python, phase1, tmp_path):
    """The three modes of experiments/harmonic_jax.py as separate processes: pack (TensorFlow) a tiny phase-1 run,
    train it 6 steps under Keras' JAX backend (on CPU here) in a process where TensorFlow cannot be imported,
    unpack (TensorFlow) into a workdir that ``load_model`` reads, with finite embeddings and trained weights.

    ``train`` runs under $FACENET_TF_JAX_PYTHON when set (e.g. a venv with jax, keras, numpy, opencv, absl, h5py
    and no TensorFlow: ``FACENET_TF_JAX_PYTHON=/tmp/jaxvenv/bin/python pytest -m slow -k end_to_end``), else under
    this interpreter if it has jax; skipped otherwise."""
    stage, trained, workdir = tmp_path / "stage", tmp_path / "trained", tmp_path / "p2"
    env = {**os.environ}
    run_script("--mode=pack", f"--runs=T={phase1.workdir}", f"--stage_dir={stage}", env=env)

    # KERAS_BACKEND left unset: --mode=train defaults it to jax. The repository on PYTHONPATH for a venv without it.
    train_env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    train_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    result = subprocess.run(
        [jax_python, "-c", WITHOUT_TENSORFLOW, str(SCRIPT), "--mode=train", f"--stage_dir={stage}", "--run=T",
         "--steps=6", "--log_every=2", "--identities_per_batch=3", "--faces_per_identity=3", "--extra_negatives=2",
         f"--output_dir={trained}"], capture_output=True, text=True, cwd=ROOT, env=train_env, timeout=900)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    train_log = json.loads((trained / "train_log.json").read_text())
    assert train_log["steps_done"] == 6 and [h["step"] for h in train_log["history"]] == [2, 4, 6]
    assert all(np.isfinite(h["loss"]) and h["positives_dropped"] == 0 for h in train_log["history"])
    assert train_log["float16_rounding_min_cosine"] > 0.999 and "seconds_per_step" in train_log

    run_script("--mode=unpack", f"--stage_dir={stage}", "--run=T", f"--trained_dir={trained}",
               f"--workdir={workdir}", env=env)
    config = TrainConfig.load(workdir)
    assert (config.harmonic.phase, config.steps, config.harmonic.init_from) == ("all", 6, phase1.workdir)
    loaded = load_model(str(workdir))
    assert (loaded.kind, loaded.architecture) == ("workdir", "nns2")
    index, _, _ = split_identities(phase1)
    faces = np.stack([load_face(p, (40, 32), 0.8) for p in index.paths]).astype(np.float32)
    embeddings = np.asarray(loaded.model(faces, training=False))
    assert np.isfinite(embeddings).all()
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1.0, atol=1e-5)
    # Phase 2 trained the whole network: every kernel moved from its phase-1 value.
    p1, p2 = load_embedding_model(phase1.workdir), load_embedding_model(workdir)
    assert [w.path for w in p1.weights] == [w.path for w in p2.weights]
    moved = {w.path: float(np.abs(np.asarray(w) - np.asarray(v)).max()) for w, v in zip(p2.weights, p1.weights)}
    assert all(moved[k] > 1e-4 for k in moved if k.endswith("kernel")), moved

    # An existing workdir is refused, and replaced only with --overwrite when unpack wrote it.
    refused = subprocess.run([sys.executable, str(SCRIPT), "--mode=unpack", f"--stage_dir={stage}", "--run=T",
                              f"--trained_dir={trained}", f"--workdir={workdir}"], capture_output=True, text=True,
                             cwd=ROOT, env=env, timeout=600)
    assert refused.returncode != 0 and "exists; pass --overwrite" in refused.stderr
    run_script("--mode=unpack", f"--stage_dir={stage}", "--run=T", f"--trained_dir={trained}",
               f"--workdir={workdir}", "--overwrite", env=env)
    assert TrainConfig.load(workdir).steps == 6


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

