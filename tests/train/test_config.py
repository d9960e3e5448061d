"""TrainConfig: valid plain settings are accepted (and survive config.json), invalid ones are refused naming the
flag, non-finite numbers included."""

import math

import pytest

from facenet_tf.train import TrainConfig


@pytest.mark.parametrize("kw", [
    dict(strategy="batch_all"),
    dict(strategy="batch_all", reduction="mean_over_pairs"),
    dict(validation_identities=2),
    dict(strategy="hardest", fallback="hardest"),
    dict(strategy="random_violating"),
    dict(strategy="semi_hard", fallback="skip", validation_identities=3, validation_steps=3),
    dict(lr_decay_steps=(10, 20), lr_decay_factor=0.5),
])
def test_valid_plain_settings_are_accepted(tmp_path, kw):
    config = TrainConfig(workdir=str(tmp_path), **kw)
    assert all(getattr(config, k) == v for k, v in kw.items())
    assert TrainConfig.from_json(config.to_json()) == config


@pytest.mark.parametrize("flag", ["margin", "learning_rate", "lr_decay_factor", "jitter", "crop_fraction",
                                  "harmonic_ridge", "harmonic_same_image_weight"])
@pytest.mark.parametrize("value", [math.inf, -math.inf, math.nan])
def test_non_finite_numbers_are_refused(tmp_path, flag, value):
    harmonic = dict(harmonic_with="x") if flag.startswith("harmonic") else {}
    with pytest.raises(ValueError, match=f"--{flag}: expected a finite number"):
        TrainConfig(workdir=str(tmp_path), **harmonic, **{flag: value})


@pytest.mark.parametrize("kw,flag", [
    (dict(lr_decay_factor=0.0), "--lr_decay_factor"),
    (dict(validation_identities=1), "--validation_identities"),
    (dict(validation_steps=0), "--validation_steps"),
    (dict(lr_decay_steps=(20, 10)), "--lr_decay_steps"),
    (dict(lr_decay_steps=(0,)), "--lr_decay_steps"),
    (dict(harmonic_phase="embedding_layer"), "--harmonic_phase"),
    (dict(harmonic_with="x", validation_identities=2), "--validation_identities"),
    (dict(harmonic_with="x", strategy="batch_all"), "--strategy"),
])
def test_bad_settings_name_the_flag(tmp_path, kw, flag):
    with pytest.raises(ValueError, match=flag):
        TrainConfig(workdir=str(tmp_path), **kw)
