"""A tiny synthetic face tree for training tests: each identity is a distinct random pattern, each image a noisy,
shifted copy, so a small network can learn to tell identities apart in a few steps."""

import cv2
import numpy as np
import pytest


def make_tree(root, identities=8, images=4, size=(48, 40), seed=0):
    rng = np.random.default_rng(seed)
    for i in range(identities):
        base = rng.integers(0, 256, size=(size[0] // 4, size[1] // 4, 3)).astype(np.uint8)
        base = cv2.resize(base, (size[1], size[0]), interpolation=cv2.INTER_NEAREST)
        person = root / f"id_{i:02d}"
        person.mkdir(parents=True)
        for j in range(images):
            noisy = np.clip(base.astype(int) + rng.integers(-20, 21, base.shape), 0, 255).astype(np.uint8)
            cv2.imwrite(str(person / f"id_{i:02d}_{j:04d}.png"), np.roll(noisy, j, axis=1))
    return root


@pytest.fixture()
def tiny_tree(tmp_path):
    return make_tree(tmp_path / "faces")


TINY_FLAGS = ["--model=nns2", "--input_size=40,32", "--embedding_dim=8", "--identities_per_batch=3",
              "--faces_per_identity=3", "--extra_negatives=2", "--exclude_pairs=", "--jitter=0.1"]


@pytest.fixture()
def env(tiny_tree, tmp_path, monkeypatch):
    """The tiny tree, with the cache (aligned crops, precomputed old embeddings) in this test's own folder."""
    monkeypatch.setenv("FACENET_TF_CACHE_DIR", str(tmp_path / "cache"))
    return tiny_tree


@pytest.fixture()
def old_keras(tmp_path):
    """A small random 'old' model for harmonic tests (8-D, 36x36 input: another size than the new model's)."""
    from facenet_tf.models import create_model

    path = tmp_path / "old.keras"
    create_model("nns1", embedding_dim=8, input_shape=(36, 36, 3), batch_norm=True).save(path)
    return str(path)


@pytest.fixture()
def eager(monkeypatch):
    """In-process ``train`` runs build their model to run eagerly: a few steps eagerly cost less than tracing the
    train step (whose own checks tests/train/test_model.py runs traced)."""
    from facenet_tf.train import loop

    build = loop.build_model

    def build_eager(config):
        model = build(config)
        model.run_eagerly = True
        return model

    monkeypatch.setattr(loop, "build_model", build_eager)
