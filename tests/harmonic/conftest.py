"""The training tests' fixtures (tests/train/conftest.py: the tiny face tree, its cache folder, a small old model)
and an Inception-ResNet-v1 phase 1 (its final projection is ``Bottleneck`` + its batch norm, no ``embedding_fc``)."""

import pytest

from tests.train.conftest import eager, env, old_keras, tiny_tree  # noqa: F401


@pytest.fixture()
def irv1_phase1(tmp_path):
    """``(source, flags)``: a random Inception-ResNet-v1 saved as ``.keras`` (80x80, 8-D) and the flags of a phase 1
    initialised from it against a random nns2 old model."""
    from facenet_tf.models import create_model

    source = tmp_path / "irv1.keras"
    create_model("inception_resnet_v1", embedding_dim=8, input_shape=(80, 80, 3)).save(source)
    old = tmp_path / "old.keras"
    create_model("nns2", embedding_dim=8, input_shape=(40, 32, 3)).save(old)
    return source, dict(model="inception_resnet_v1", input_size=(80, 80), harmonic_with=str(old),
                        harmonic_phase="embedding_layer", init_from=str(source))


@pytest.fixture()
def harmonic_eager(monkeypatch):
    """In-process harmonic ``train`` runs build their model to run eagerly: a few steps eagerly cost less than
    tracing the harmonic train step (traced in tests/harmonic/test_training.py's other tests and the binaries')."""
    from facenet_tf.harmonic.training import HarmonicHook

    build = HarmonicHook.build_model

    def build_eager(self, config):
        model = build(self, config)
        model.run_eagerly = True
        return model

    monkeypatch.setattr(HarmonicHook, "build_model", build_eager)
