"""The one model loader: every spelling resolves to a Keras embedding model with its metadata."""

import json

import keras
import numpy as np
import pytest

from facenet_tf.models import create_model
from facenet_tf.models.source import ModelLoadError, load_model, split_source
from tests.train.conftest import eager, make_tree  # noqa: F401 (eager: a fixture)


def images(size=(40, 32), n=3, seed=0):
    return np.random.default_rng(seed).uniform(0, 255, (n, *size, 3)).astype(np.float32)


def test_zoo_spellings_agree():
    keras.utils.set_random_seed(0)
    plain = load_model("nns2", embedding_dim=8, input_shape=(40, 32, 3))
    assert (plain.kind, plain.architecture, plain.name, plain.weights) == ("zoo", "nns2", "nns2", None)
    assert plain.input_size == (40, 32) and plain.embedding_dim == 8 and plain.preprocessing == "scale"
    assert split_source("inception_resnet_v1@msceleb") == ("inception_resnet_v1", "msceleb")
    assert split_source("inception_resnet_v1", "msceleb") == ("inception_resnet_v1", "msceleb")
    with pytest.raises(ModelLoadError, match="give one"):
        split_source("inception_resnet_v1@msceleb", "other")


def test_registered_weights_by_name_alone(pretrained_weights_file):
    by_name = load_model("msceleb")
    spelled = load_model("inception_resnet_v1@msceleb")
    assert by_name.architecture == spelled.architecture == "inception_resnet_v1"
    assert by_name.preprocessing == "prewhiten" and by_name.embedding_dim == 128 and by_name.input_size == (160, 160)
    x = images((160, 160), 1)
    np.testing.assert_array_equal(by_name.model.predict(x, verbose=0), spelled.model.predict(x, verbose=0))


def test_the_inference_form_folds_batch_norm_and_embeds_the_same(tmp_path):
    model = create_model("nns2", embedding_dim=8, input_shape=(40, 32, 3), batch_norm=True)
    model.save(tmp_path / "m.keras")
    folded = load_model(tmp_path / "m.keras", inference=True).model
    assert not any(isinstance(layer, keras.layers.BatchNormalization) for layer in folded.layers)
    np.testing.assert_allclose(folded.predict(images(), verbose=0), model.predict(images(), verbose=0), atol=1e-5)


def test_keras_file_and_unknown_spellings(tmp_path):
    model = create_model("nns2", embedding_dim=8, input_shape=(40, 32, 3))
    model.save(tmp_path / "m.keras")
    loaded = load_model(tmp_path / "m.keras")
    assert loaded.kind == "keras_file" and loaded.preprocessing == "scale"
    np.testing.assert_allclose(loaded.model.predict(images(), verbose=0), model.predict(images(), verbose=0),
                               atol=1e-6)
    with pytest.raises(ModelLoadError, match="neither a zoo model"):
        load_model(tmp_path / "nothing_here")
    with pytest.raises(ModelLoadError, match="does not exist"):
        load_model(tmp_path / "missing.keras")
    with pytest.raises(ModelLoadError, match="are for zoo models"):
        load_model(tmp_path / "m.keras", weights="msceleb")
    with pytest.raises(ModelLoadError, match="zoo models only"):
        load_model(tmp_path / "m.keras", embedding_dim=4)
    with pytest.raises(ModelLoadError, match="at_init needs a training workdir"):
        load_model("nns2", at_init=True)


@pytest.mark.usefixtures("eager")  # one step, eagerly: cheaper than tracing it
def test_a_workdir_loads_from_its_checkpoint_its_final_model_and_at_init(tmp_path, monkeypatch):
    from facenet_tf.train import TrainConfig, train
    from facenet_tf.train.loop import build_model

    tree = make_tree(tmp_path / "faces")
    monkeypatch.setenv("FACENET_TF_CACHE_DIR", str(tmp_path / "cache"))
    config = TrainConfig(workdir=str(tmp_path / "run"), model="nns2", input_size=(40, 32), embedding_dim=8,
                         data_dir=str(tree), exclude_pairs=(), identities_per_batch=3, faces_per_identity=3,
                         extra_negatives=2, steps=1, checkpoint_every=1, seed=3)
    keras.utils.set_random_seed(config.seed)
    initial = build_model(config).embedding_model.predict(images(), verbose=0)
    keras.utils.set_random_seed(config.seed)
    train(config, verbose=0)
    final = load_model(tmp_path / "run")
    assert final.kind == "workdir" and final.architecture == "nns2" and final.input_size == (40, 32)
    expected = final.model.predict(images(), verbose=0)
    (tmp_path / "run" / "embedding_model.keras").unlink()  # as during training: only checkpoints
    from_checkpoint = load_model(tmp_path / "run").model.predict(images(), verbose=0)
    np.testing.assert_allclose(from_checkpoint, expected, atol=1e-6)
    at_init = load_model(tmp_path / "run", at_init=True).model.predict(images(), verbose=0)
    np.testing.assert_allclose(at_init, initial, atol=1e-6)
    assert np.abs(at_init - expected).max() > 1e-3  # training moved the weights: the two are told apart
    (tmp_path / "run" / "config.json").write_text(json.dumps({"no": "model"}))
    with pytest.raises(ModelLoadError, match="not a training config"):
        load_model(tmp_path / "run")


def test_a_saved_model_export_loads_with_its_threshold(tmp_path):
    from facenet_tf.export import export_saved_model, from_keras_model

    model = create_model("nns2", embedding_dim=8, input_shape=(40, 32, 3))
    export_saved_model(from_keras_model(model, "nns2", "model"), tmp_path / "export", threshold=1.1)
    loaded = load_model(tmp_path / "export")
    assert loaded.kind == "saved_model" and loaded.input_size == (40, 32) and loaded.embedding_dim == 8
    assert loaded.thresholds == {"verify": pytest.approx(1.1)}
    np.testing.assert_allclose(np.asarray(loaded.model(images())), model.predict(images(), verbose=0), atol=1e-5)
