"""Offline triplet selection in training (``--offline_every``, ``--strategy=offline``): settings refused naming the
flag, subsets and batches drawn from (seed, step), a batch waiting for its selection, the selection saved with the
checkpoint (a run stopped and resumed trains on the same selections and ends with the same weights as one never
stopped), online mining of offline batches, and the per-refresh statistics in summary.json and TensorBoard."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
import threading
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from facenet_tf.losses import select_triplets
from facenet_tf.train import TrainConfig, loop, train
from facenet_tf.train.offline import OfflineSelector
from tests.train.conftest import TINY_FLAGS, eager  # noqa: F401 (eager: a fixture)

REPO = Path(__file__).resolve().parents[2]

# tests/train/conftest.py's tiny run: 8 identities x 4 images, batches of 3 x 3 + 2 = 11 images -> 3 triplets (9).
TINY = dict(model="nns2", input_size=(40, 32), embedding_dim=8, identities_per_batch=3, faces_per_identity=3,
            extra_negatives=2, exclude_pairs=(), jitter=0.1)
OFFLINE = dict(strategy="offline", offline_every=3, offline_subset=16)


def _config(workdir, tree, **kw) -> TrainConfig:
    return TrainConfig(workdir=str(workdir), data_dir=str(tree), **{**TINY, **kw})


@pytest.mark.parametrize("kw,message", [
    (dict(strategy="offline"), "--offline_every: expected a positive number of steps with --strategy=offline"),
    (dict(offline_every=-1), "--offline_every: expected 0 (off) or a positive number of steps"),
    (dict(offline_every=2, offline_subset=10), "--offline_subset: expected at least the batch size P*K+R = 11"),
    (dict(offline_every=2), "--offline_subset: expected at least the batch size"),
    (dict(offline_subset=20), "--offline_subset: expected 0 unless --offline_every is set"),
    (dict(offline_negative="hardest"), "--offline_negative: expected semi_hard (the default) unless"),
    (dict(offline_every=2, offline_subset=20, offline_negative="easy"), "--offline_negative: expected one of"),
    (dict(offline_every=2, offline_subset=20, identities_per_batch=1, faces_per_identity=2, extra_negatives=0),
     "--offline_every: expected 0 with a batch of 2 images"),
    (dict(offline_every=2, offline_subset=20, harmonic_with="x"), "--offline_every: expected 0 with --harmonic_with"),
])
def test_bad_offline_settings_name_the_flag(tmp_path, kw, message):
    with pytest.raises(ValueError, match=f"^{re.escape(message)}"):
        TrainConfig.from_flags(workdir=str(tmp_path), **{**TINY, **kw})


@pytest.mark.parametrize("kw", [OFFLINE, dict(OFFLINE, offline_negative="hardest", reduction="mean_over_active"),
                                dict(offline_every=5, offline_subset=11, strategy="batch_all")])
def test_valid_offline_settings_read_back(tmp_path, kw):
    config = TrainConfig(workdir=str(tmp_path), **{**TINY, **kw})
    assert TrainConfig.from_json(config.to_json()) == config and config.offline_triplets_per_batch == 3


def test_subsets_batches_and_a_batch_waiting_for_its_selection(tiny_tree, tmp_path):
    config = _config(tmp_path / "run", tiny_tree, **OFFLINE)
    index = loop.split_identities(config)[0]
    model = loop.build_model(config)
    selector = OfflineSelector(config, index)
    subset = selector.subsets.batch(3)
    assert subset.size == 16 and np.array_equal(subset, OfflineSelector(config, index).subsets.batch(3))
    assert not np.array_equal(subset, selector.subsets.batch(6))

    drawn = {}
    waiting = threading.Thread(target=lambda: drawn.update(batch=selector.batch(2)))
    waiting.start()
    waiting.join(0.3)
    assert waiting.is_alive()  # step 2 trains on the selection of step 0, not made yet
    record = selector.refresh(model, 0)
    waiting.join(10)
    batch = drawn["batch"]
    anchors, positives, negatives = batch.reshape(3, -1)
    labels = index.labels
    assert batch.size == 9 and np.all(labels[anchors] == labels[positives]) and np.all(anchors != positives)
    assert np.all(labels[anchors] != labels[negatives])
    assert np.array_equal(selector.batch(2), batch) and not np.array_equal(selector.batch(1), batch)

    # The stored selection is select_triplets of the subset's embeddings, in image indices.
    images, used = selector.subset(0)
    expected = select_triplets(model(images, training=False).numpy(), labels[used])
    step, triplets = selector.state.get()
    assert step == 0 and record["num_triplets"] == len(triplets) == len(expected) > 0
    np.testing.assert_array_equal(triplets, np.stack([used[expected.anchors], used[expected.positives],
                                                      used[expected.negatives]], axis=1))
    assert {tuple(t) for t in batch.reshape(3, -1).T} <= {tuple(t) for t in triplets}

    # Validation batches (identity-balanced, no offline layout) are mined semi-hard: every pair is a triplet.
    model.run_eagerly = True
    images = np.random.default_rng(0).uniform(0, 255, (6, 40, 32, 3)).astype(np.float32)
    logs = model.test_on_batch(images, np.array([0, 0, 1, 1, 2, 2]), return_dict=True)
    assert logs["num_triplets"] == 6

    failed = []
    later = threading.Thread(target=lambda: failed.append(pytest.raises(RuntimeError, selector.batch, 3)))
    later.start()
    selector.close()  # training stopped: the input thread is released
    later.join(10)
    assert not later.is_alive() and failed


def _selection_in(checkpoint: str) -> tuple[int, np.ndarray]:
    reader = tf.train.load_checkpoint(checkpoint)
    value = lambda name: reader.get_tensor(f"offline/{name}/.ATTRIBUTES/VARIABLE_VALUE")  # noqa: E731
    return int(value("step")), value("triplets")[:int(value("count"))]


@pytest.mark.usefixtures("eager")
def test_resumed_run_trains_on_the_same_selections(tiny_tree, tmp_path):
    """3 steps, a checkpoint after every step, a selection every 2 (steps 0 and 2): one call, against 1 step and a
    second call resuming at step 1, mid-period (it must train on the selection of step 0, made with the initial
    weights, which it reads from the checkpoint). Same selections, same statistics, same final weights."""
    def run(workdir, steps):
        keras.utils.set_random_seed(0)
        return train(_config(workdir, tiny_tree, steps=steps, checkpoint_every=1, strategy="offline", offline_every=2,
                             offline_subset=16), verbose=0)

    whole = run(tmp_path / "whole", 3)
    first, second = run(tmp_path / "resumed", 1), run(tmp_path / "resumed", 3)
    assert [r["step"] for r in whole["offline"]] == [0, 2]
    assert [r["step"] for r in first["offline"]] == [0] and second["start_step"] == 1
    assert [r["step"] for r in second["offline"]] == [2]  # step 0's selection came from the checkpoint
    for a, b in zip(whole["offline"], first["offline"] + second["offline"]):
        assert {k: v for k, v in a.items() if k != "seconds"} == pytest.approx(
            {k: v for k, v in b.items() if k != "seconds"}, rel=1e-5)
    for name, step in (("ckpt-1", 0), ("ckpt-2", 2), ("ckpt-3", 2)):
        (step_a, a), (step_b, b) = (_selection_in(str(tmp_path / run / "checkpoints" / name))
                                    for run in ("whole", "resumed"))
        assert step_a == step_b == step
        np.testing.assert_array_equal(a, b)
    weights = [loop.load_embedding_model(tmp_path / run).get_weights() for run in ("whole", "resumed")]
    for a, b in zip(*weights):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert np.isfinite(whole["history"]["loss"]).all() and whole["history"]["num_triplets"][-1] == 3

    # The per-refresh statistics are in the TensorBoard stream of the run.
    tags = set()
    for path in (tmp_path / "whole" / "logs" / "train").glob("events.out.tfevents.*"):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            tags |= {value.tag for value in event.summary.value}
    assert {"offline/num_triplets", "offline/mean_d_ap", "offline/mean_d_an", "offline/semi_hard_fraction"} <= tags


@pytest.mark.usefixtures("eager")
def test_offline_batches_mined_online(tiny_tree, tmp_path):
    """The paper's combination: batches of offline triplets, mined semi-hard online (every pair of the batch)."""
    keras.utils.set_random_seed(0)
    summary = train(_config(tmp_path / "run", tiny_tree, steps=2, checkpoint_every=2, offline_every=1,
                            offline_subset=16, offline_negative="hardest"), verbose=0)
    assert [r["step"] for r in summary["offline"]] == [0, 1]
    assert np.isfinite(summary["history"]["loss"]).all()
    assert summary["history"]["num_triplets"][-1] >= 3  # all anchor-positive pairs of the 9 images, not 3 triplets


def test_binary_refuses_bad_offline_flags_on_one_line(tiny_tree, tmp_path):
    """Before any work: exit status 2 and one line naming the flag; nothing written."""
    proc = subprocess.run([sys.executable, "experiments/train.py", f"--workdir={tmp_path / 'run'}",
                           f"--data_dir={tiny_tree}", *TINY_FLAGS, "--strategy=offline", "--offline_every=2",
                           "--offline_subset=5"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    errors = [line for line in proc.stderr.splitlines() if "error:" in line]
    assert errors == ["train.py: error: --offline_subset: expected at least the batch size P*K+R = 11 images with "
                      "--offline_every, got 5."]
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("quick", [False, True])
def test_named_offline_config_is_valid_and_compares_with_the_semi_hard_one(quick):
    """nns2_lfw_view1_offline is nns2_lfw_view1 with offline selection and nothing else changed."""
    spec = importlib.util.spec_from_file_location("configs", REPO / "experiments" / "configs.py")
    configs = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(configs)

    def flags(name):
        values = dict(configs.CONFIGS[name])
        extra = values.pop("quick")
        return {**values, **(extra if quick else {})}

    offline, online = flags("nns2_lfw_view1_offline"), flags("nns2_lfw_view1")
    assert {k: v for k, v in offline.items() if not (k.startswith("offline_") or k == "strategy")} == online
    config = TrainConfig.from_flags(workdir="w", **{k: tuple(v) if isinstance(v, list) else v
                                                    for k, v in offline.items()})
    assert config.strategy == "offline" and config.offline_every and config.offline_triplets_per_batch == 60
