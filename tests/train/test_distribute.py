"""Mining sees the global batch under tf.distribute: MirroredStrategy over two logical CPU devices gives the same
loss and the same update as one device on the same global batch; two MultiWorkerMirroredStrategy workers on
localhost train a tiny model. Each runs in its own process (logical devices and collectives must be configured
before TensorFlow starts)."""

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.train.conftest import TINY_FLAGS

REPO = Path(__file__).resolve().parents[2]

MIRRORED_SCRIPT = textwrap.dedent("""
    import json, os
    os.environ["TF_ENABLE_ONEDNN_OPTS"] = "1"
    import numpy as np, tensorflow as tf, keras
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from facenet_tf.models import create_model
    from facenet_tf.train import TripletModel

    rng = np.random.default_rng(0)
    bases = rng.uniform(0, 255, size=(4, 40, 32, 3))
    # interleave identities so that each replica's half holds every identity only partly
    images = np.concatenate([np.clip(b + rng.normal(0, 20, (4, 40, 32, 3)), 0, 255) for b in bases])
    labels = np.repeat(np.arange(4), 4).astype(np.int32)
    order = rng.permutation(16)
    images, labels = images[order].astype("float32"), labels[order]

    def build(batch_norm):
        keras.utils.set_random_seed(1)
        m = TripletModel(create_model("nns2", embedding_dim=8, input_shape=(40, 32, 3), batch_norm=batch_norm))
        m.compile(optimizer=keras.optimizers.SGD(0.1), jit_compile=False)
        return m

    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    one_batch = tf.data.Dataset.from_tensors((images, labels))
    results = {}
    for batch_norm in (False, True):
        single = build(batch_norm)
        with strategy.scope():
            mirrored = build(batch_norm)
        mirrored.set_weights(single.get_weights())
        initial = [w.numpy().copy() for w in single.trainable_weights]
        # the test step (validation) differs from the train step's forward pass only through batch norm
        e1 = single.evaluate(one_batch, verbose=0, return_dict=True) if batch_norm else None
        e2 = mirrored.evaluate(one_batch, verbose=0, return_dict=True) if batch_norm else None
        # fit on a dataset (as the trainer does): Keras splits each global batch over the replicas
        t1 = {k: v[-1] for k, v in single.fit(one_batch, epochs=1, verbose=0).history.items()}
        t2 = {k: v[-1] for k, v in mirrored.fit(one_batch, epochs=1, verbose=0).history.items()}
        trained = [(w1.numpy(), w2.numpy(), w0) for w1, w2, w0 in zip(single.trainable_weights,
                                                                      mirrored.trainable_weights, initial)]
        results[f"bn={batch_norm}"] = {
            "eval_single": e1, "eval_mirrored": e2, "train_single": t1, "train_mirrored": t2,
            "weight_diff": max(float(np.abs(a - b).max()) for a, b, _ in trained),
            "weight_change": max(float(np.abs(a - w0).max()) for a, _, w0 in trained)}
    print("RESULT " + json.dumps({"replicas": strategy.num_replicas_in_sync, **results}, default=float))
""")


def _run(script_or_args, env=None, timeout=600):
    args = [sys.executable, "-c", script_or_args] if isinstance(script_or_args, str) else script_or_args
    proc = subprocess.run(args, cwd=REPO, env={**os.environ, **(env or {})}, capture_output=True, text=True,
                          timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def test_mirrored_two_devices_equals_one_device():
    """The same global batch gives the same loss, mining statistics and update on 1 device and on 2 replicas.

    Without batch norm the updated weights agree to float32 round-off. With (synchronized) batch norm the losses and
    statistics agree, but Keras computes the synchronized variance as E[x^2] - E[x]^2 instead of the two-pass
    formula of one device; that round-off difference can flip a semi-hard choice between near-tied negatives, so
    the weights there are only compared loosely.
    """
    result = json.loads(_run(MIRRORED_SCRIPT).stdout.split("RESULT ", 1)[1])
    assert result["replicas"] == 2
    for variant in ("bn=False", "bn=True"):
        r = result[variant]
        for key in ("loss", "num_triplets", "mean_d_ap", "mean_d_an", "active_fraction", "semi_hard_fraction"):
            if variant == "bn=True":  # the validation step (moving statistics; without batch norm the train step's)
                assert r["eval_mirrored"][key] == pytest.approx(r["eval_single"][key], rel=1e-4, abs=1e-5), (variant,
                                                                                                          key)
            assert r["train_mirrored"][key] == pytest.approx(r["train_single"][key], rel=1e-4, abs=1e-5), (variant,
                                                                                                            key)
        assert r["weight_change"] > 1e-4, "the step moved the weights"
    exact = result["bn=False"]
    assert exact["weight_diff"] < 1e-4 * exact["weight_change"] + 1e-7
    loose = result["bn=True"]
    assert loose["weight_diff"] < 0.05 * loose["weight_change"]


def _free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def test_multi_worker_two_processes_on_localhost(tiny_tree, tmp_path):
    workers = [f"127.0.0.1:{p}" for p in _free_ports(2)]
    workdir = tmp_path / "run"
    procs, logs = [], []
    for index in range(2):
        tf_config = json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}})
        args = [sys.executable, "experiments/train.py", f"--workdir={workdir}", f"--data_dir={tiny_tree}",
                "--steps=4", "--checkpoint_every=2", "--distribute=multi_worker", *TINY_FLAGS,
                "--extra_negatives=3"]  # a global batch of 3*3+3 = 12 splits over 2 workers
        # Each worker writes to its own file: with pipes, a worker blocked on a full pipe would stall the other
        # inside a collective.
        logs.append(open(tmp_path / f"worker{index}.log", "w"))
        procs.append(subprocess.Popen(args, cwd=REPO, env={**os.environ, "TF_CONFIG": tf_config},
                                      stdout=logs[-1], stderr=subprocess.STDOUT))
    try:
        for proc in procs:
            proc.wait(timeout=600)
    finally:
        for proc, log in zip(procs, logs):
            proc.kill()
            log.close()
    for index, proc in enumerate(procs):
        assert proc.returncode == 0, (tmp_path / f"worker{index}.log").read_text()[-3000:]
    summary = json.loads((workdir / "summary.json").read_text())
    assert summary["end_step"] == 4 and summary["replicas"] == 2
    assert (workdir / "embedding_model.keras").is_file()
