"""TrainConfig: valid plain settings are accepted (and survive config.json), invalid ones are refused naming the
flag, non-finite numbers included; the harmonic settings are one nested HarmonicConfig, set from the flat flags, and
the flat config.json of earlier workdirs reads back equal."""

import ast
import dataclasses
import json
import math
import re
from pathlib import Path

import pytest

from facenet_tf.train import TrainConfig
from facenet_tf.train.config import HARMONIC_FLAGS, HarmonicConfig


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
        TrainConfig.from_flags(workdir=str(tmp_path), **harmonic, **{flag: value})


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
        TrainConfig.from_flags(workdir=str(tmp_path), **kw)


HARMONIC = dict(harmonic_with="runs/old", harmonic_weights=None, harmonic_phase="embedding_layer",
                harmonic_old_embeddings="precomputed", harmonic_candidates="old", harmonic_anchors="new",
                harmonic_same_image_weight=1.5, harmonic_solver="least_squares", harmonic_ridge=0.01,
                harmonic_fit_alignment="detect", harmonic_views=1, init_from="inception_resnet_v1",
                init_weights="msceleb")


def _flat_json(config: TrainConfig) -> str:
    """config.json as written before the harmonic settings were nested: every flag at the top level."""
    return json.dumps(config.flags(), indent=2, sort_keys=True)


def test_flags_set_one_nested_harmonic_config_and_read_back():
    config = TrainConfig.from_flags(workdir="w", steps=0, **HARMONIC)
    assert config.harmonic == HarmonicConfig(
        old_model="runs/old", phase="embedding_layer", candidates="old", same_image_weight=1.5,
        solver="least_squares", ridge=0.01, fit_alignment="detect", init_from="inception_resnet_v1",
        init_weights="msceleb")
    assert set(HARMONIC) == set(HARMONIC_FLAGS.values())  # one flag per field, every field a flag
    assert {k: config.flags()[k] for k in HARMONIC} == HARMONIC
    assert TrainConfig.from_json(config.to_json()) == config
    assert json.loads(config.to_json())["harmonic"]["old_model"] == "runs/old"
    assert not any(key.startswith("harmonic_") for key in json.loads(config.to_json()))
    changed = config.with_flags(harmonic_ridge=0.5, steps=10, checkpoint_every=10)
    assert changed.harmonic == dataclasses.replace(config.harmonic, ridge=0.5) and changed.steps == 10
    plain = TrainConfig.from_flags(workdir="w", **{k: None for k in ("harmonic_with", "init_from", "init_weights")})
    assert plain.harmonic is None and plain == TrainConfig(workdir="w")
    assert json.loads(plain.to_json())["harmonic"] is None


@pytest.mark.parametrize("flags", [dict(steps=0, **HARMONIC), dict(), dict(harmonic_with="inception_resnet_v1",
                                                                         harmonic_weights="msceleb")])
def test_flat_config_json_of_earlier_workdirs_reads_back_equal(flags):
    config = TrainConfig.from_flags(workdir="w", **flags)
    flat = _flat_json(config)
    assert "harmonic" not in json.loads(flat) and "harmonic_with" in json.loads(flat)
    assert TrainConfig.from_json(flat) == config
    # A config.json of an older version lacks the flags added since: their defaults apply.
    later = {"harmonic_views": 1, "harmonic_fit_alignment": None, "harmonic_ridge": 0.3}
    raw = {k: v for k, v in json.loads(flat).items() if later.get(k, "absent") != v}
    assert len(raw) < len(json.loads(flat)) and TrainConfig.from_json(json.dumps(raw)) == config


@pytest.mark.parametrize("flag,value", [("harmonic_candidates", "old"), ("harmonic_anchors", "both"),
                                        ("harmonic_same_image_weight", 1.0), ("harmonic_solver", "least_squares"),
                                        ("harmonic_ridge", 0.5), ("harmonic_old_embeddings", "in_step"),
                                        ("harmonic_fit_alignment", "detect"), ("harmonic_views", 2),
                                        ("harmonic_phase", "all_layers"), ("init_from", "x")])
def test_harmonic_flags_without_harmonic_with_are_refused(flag, value):
    with pytest.raises(ValueError, match=f"--{flag}: expected to be used with --harmonic_with"):
        TrainConfig.from_flags(workdir="w", **{flag: value})


def test_a_harmonic_config_is_checked_where_it_is_built():
    with pytest.raises(ValueError, match="--harmonic_with: expected a model"):
        HarmonicConfig(old_model="")
    with pytest.raises(ValueError, match="--harmonic_views: expected an integer >= 1"):
        HarmonicConfig(old_model="x", views=0)
    with pytest.raises(ValueError, match="--harmonic_with: expected a HarmonicConfig"):
        TrainConfig(workdir="w", harmonic={"old_model": "x"})



@pytest.mark.parametrize("kw,message", [
    (dict(identity_fraction=0.0), "--identity_fraction: expected a fraction in (0, 1]"),
    (dict(identity_fraction=1.5), "--identity_fraction: expected a fraction in (0, 1]"),
    (dict(identity_fraction=math.nan), "--identity_fraction: expected a finite number"),
    (dict(complete_groups=True, strategy="offline", offline_every=5, offline_subset=2000),
     "--complete_groups: expected off with --offline_every"),
])
def test_identity_choice_is_checked(kw, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        TrainConfig.from_flags(workdir="w", **kw)


def _train_py_defaults() -> dict:
    """Every flag experiments/train.py defines with a literal default, read from its source."""
    tree = ast.parse((Path(__file__).resolve().parents[2] / "experiments" / "train.py").read_text())
    found = {}
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and ast.unparse(node.func).startswith("flags.DEFINE_")
                and len(node.args) >= 2 and isinstance(node.args[0], ast.Constant)):
            value = ast.literal_eval(node.args[1])
            found[node.args[0].value] = tuple(value) if isinstance(value, list) else value
    return found


def test_train_py_defaults_are_the_config_defaults():
    """experiments/ablation.py builds each row's TrainConfig in process from the config's values alone: that is
    train.py's config only while the two agree on every default."""
    defaults = TrainConfig.from_flags(workdir="w").flags()
    flags = _train_py_defaults()
    shared = set(defaults) & set(flags) - {"workdir"}
    assert len(shared) >= 40 and "identity_fraction" in shared and "complete_groups" in shared
    assert {k: flags[k] for k in shared} == {k: defaults[k] for k in shared}
