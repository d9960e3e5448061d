"""The one way to get "a model": :func:`load_model` resolves every spelling a binary, the CLI or the Python API
accepts into a Keras embedding model and what is known about it.

Spellings (``source``, with an optional ``weights``):

- a zoo name, with ``weights`` a registered name (``facenet_tf.models.weights``), a weights file, or None (random
  initialisation); or both in one string, ``inception_resnet_v1@msceleb``;
- a weights-registry name alone (``msceleb``, ``casia_webface``): its architecture with those weights;
- a training workdir (a folder holding ``config.json``): its final ``embedding_model.keras``, else the weights of its
  latest checkpoint in the network rebuilt from ``config.json`` (``at_init=True``: that network before its first
  step, seeded as the run was);
- a ``.keras`` file (loaded with Keras' safe mode: no Python code inside it runs);
- a SavedModel folder exported by facenet-tf (its ``embed_images`` signature, wrapped as a Keras layer; a
  SavedModel runs its own graph: load only models you trust);
- a TensorFlow 1 frozen graph ``.pb``, checkpoint folder or ``.meta`` file of davidsandberg/facenet's
  Inception-ResNet-v1 (``facenet_tf.models.tf1_import``).

A training workdir's layout is owned here (``WORKDIR_CONFIG``, ``CHECKPOINTS_DIR``, ``FINAL_MODEL``) so that every
layer reads workdirs the same way without reaching up into the trainer, which writes them.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import keras

from facenet_tf.models.registry import create_model, get_spec, list_models

WORKDIR_CONFIG = "config.json"
CHECKPOINTS_DIR = "checkpoints"
FINAL_MODEL = "embedding_model.keras"
TF1_SUFFIXES = (".pb", ".meta")


class ModelLoadError(ValueError):
    """``source`` names no model that can be loaded; the message says what was expected."""


@dataclasses.dataclass(frozen=True, eq=False)
class LoadedModel:
    """A Keras embedding model (float32 RGB 0-255 in, L2-normalised embeddings out) and what is known about it.

    ``kind``: ``zoo``, ``workdir``, ``keras_file``, ``saved_model`` or ``tf1``; ``architecture``: the zoo name when
    known; ``preprocessing``: ``prewhiten``, ``scale``, ``fixed`` or ``unknown`` (always inside the model);
    ``thresholds``: squared-distance thresholds known for it (e.g. a SavedModel's calibrated one), else empty."""

    model: keras.Model
    name: str
    kind: str
    architecture: str | None = None
    location: str | None = None
    weights: str | None = None
    preprocessing: str = "unknown"
    thresholds: dict[str, float] = dataclasses.field(default_factory=dict)
    metadata: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def input_size(self) -> tuple[int, int]:
        shape = self.model.input.shape
        return int(shape[1]), int(shape[2])

    @property
    def embedding_dim(self) -> int:
        return int(self.model.output.shape[-1])


def is_workdir(path: str | os.PathLike) -> bool:
    return (Path(path) / WORKDIR_CONFIG).is_file()


def split_source(source: str | os.PathLike, weights: str | None = None) -> tuple[str, str | None]:
    """``("zoo", "weights")`` from ``zoo@weights`` (a given ``weights`` wins), else ``(source, weights)``."""
    text = os.fspath(source)
    name, at, suffix = text.partition("@")
    if at and name in list_models() and not Path(text).exists():
        if weights not in (None, suffix):
            raise ModelLoadError(f"'{text}' names weights '{suffix}' and --weights '{weights}': give one")
        return name, suffix
    return text, weights


def load_model(source: str | os.PathLike, weights: str | None = None, *, at_init: bool = False,
               inference: bool = False, **overrides: Any) -> LoadedModel:
    """The model named by ``source`` (see the module docstring). ``inference``: the model with every batch norm
    folded into the layer before it (``facenet_tf.models.folding``; same embeddings to ~1e-6, faster), for callers
    that only embed. ``overrides`` (``embedding_dim``, ``input_shape``, ``batch_norm``) apply to zoo builds only.
    ModelLoadError names the source when it is none of the spellings; FileNotFoundError (weights that cannot be
    had) and Keras' own errors pass through."""
    loaded = _load(source, weights, at_init, overrides)
    if inference:
        from facenet_tf.models.folding import find_folds, fold_batch_norm

        if find_folds(loaded.model):  # (a SavedModel's layer has none, and cannot be cloned in safe mode)
            loaded = dataclasses.replace(loaded, model=fold_batch_norm(loaded.model))
    return loaded


def _load(source: str | os.PathLike, weights: str | None, at_init: bool, overrides: dict[str, Any]) -> LoadedModel:
    from facenet_tf.models.weights import REGISTRY

    text, weights = split_source(source, weights)
    path = Path(text).expanduser()
    if at_init and not is_workdir(path):
        raise ModelLoadError(f"at_init needs a training workdir (with {WORKDIR_CONFIG}); '{text}' is not one")
    if text in REGISTRY and weights is None and text not in list_models():
        weights, text = text, REGISTRY[text].architecture
    if text in list_models():
        if weights is not None and weights not in REGISTRY and not Path(weights).expanduser().is_file():
            raise FileNotFoundError(f"weights file '{weights}' for zoo model '{text}' does not exist (registered "
                                    f"weights: {', '.join(sorted(REGISTRY))})")
        entry = REGISTRY.get(weights or "")
        if entry is not None and entry.architecture == text:  # build the network these weights were trained as
            overrides.setdefault("embedding_dim", entry.embedding_dim)
            if entry.preprocessing != get_spec(text).preprocessing:
                overrides.setdefault("preprocessing", entry.preprocessing)
        model = create_model(text, weights=weights, **overrides)
        return LoadedModel(model, text, "zoo", architecture=text,
                           weights=weights, preprocessing=entry.preprocessing if entry else infer_preprocessing(model))
    if overrides:
        raise ModelLoadError(f"{sorted(overrides)} apply to zoo models only; '{text}' is not one")
    if weights is not None:
        raise ModelLoadError(f"weights '{weights}' are for zoo models; '{text}' is not one "
                             f"({', '.join(list_models())})")
    if is_workdir(path):
        model, architecture = load_workdir(path, at_init)
        suffix = " (untrained, step 0)" if at_init else ""
        return LoadedModel(model, f"workdir:{path}{suffix}", "workdir", architecture=architecture, location=str(path),
                           preprocessing=infer_preprocessing(model))
    if path.suffix == ".keras":
        if not path.is_file():
            raise ModelLoadError(f".keras file '{path}' does not exist")
        import facenet_tf.models.layers  # noqa: F401  (registers the custom layers)

        model = keras.saving.load_model(path)  # safe_mode: a Lambda layer's code is refused, not run
        return LoadedModel(model, str(path), "keras_file", location=str(path), preprocessing=infer_preprocessing(model))
    if path.is_dir() and (path / "saved_model.pb").is_file():
        return _load_saved_model(path)
    if path.suffix in TF1_SUFFIXES or (path.is_dir() and _has_tf1_checkpoint(path)):
        from facenet_tf.models.tf1_import import load_tf1_model

        model, metadata, _ = load_tf1_model(path)
        return LoadedModel(model, str(path), "tf1", architecture="inception_resnet_v1", location=str(path),
                           preprocessing=str(metadata.get("preprocessing", "unknown")), metadata=dict(metadata))
    raise ModelLoadError(
        f"'{text}' is neither a zoo model ({', '.join(list_models())}), registered weights "
        f"({', '.join(sorted(REGISTRY))}), a training workdir (with {WORKDIR_CONFIG}), a .keras file, a SavedModel "
        "folder (with saved_model.pb) nor a TensorFlow 1 graph (.pb) or checkpoint (.meta, or a folder with one)")


def _has_tf1_checkpoint(path: Path) -> bool:
    return any(path.glob("*.meta")) or (path / "checkpoint").is_file() and not (path / WORKDIR_CONFIG).exists()


def infer_preprocessing(model: keras.Model) -> str:
    """The zoo's convention: the first layer after the input is the preprocessing (``prewhiten``, ``scale`` to
    [-1, 1], ``fixed`` (x - 127.5) / 128), else ``unknown``."""
    from facenet_tf.models.layers import Prewhiten

    for layer in model.layers[1:2]:
        if isinstance(layer, Prewhiten):
            return "prewhiten"
        if isinstance(layer, keras.layers.Rescaling):
            scale, offset = float(layer.scale), float(layer.offset)
            if abs(scale - 1 / 127.5) < 1e-9 and abs(offset + 1) < 1e-9:
                return "scale"
            if abs(scale - 1 / 128) < 1e-9 and abs(offset + 127.5 / 128) < 1e-9:
                return "fixed"
    return "unknown"


def read_workdir_config(workdir: str | os.PathLike) -> dict[str, Any]:
    """The ``config.json`` of a training workdir as a dict; ModelLoadError naming the file when unreadable."""
    path = Path(workdir) / WORKDIR_CONFIG
    try:
        config = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise ModelLoadError(f"'{path}' is not a readable training config: {error}") from None
    if not isinstance(config, dict) or "model" not in config:
        raise ModelLoadError(f"'{path}' is not a training config (no 'model')")
    return config


def build_workdir_network(config: dict[str, Any]) -> keras.Model:
    """The embedding network a run with this ``config.json`` trains (random initialisation)."""
    input_size = config.get("input_size") or get_spec(config["model"]).input_shape[:2]
    height, width = (int(v) for v in input_size)
    return create_model(config["model"], embedding_dim=int(config.get("embedding_dim", 128)),
                        input_shape=(height, width, 3), batch_norm=config.get("batch_norm"))


def load_workdir(workdir: str | os.PathLike, at_init: bool = False) -> tuple[keras.Model, str]:
    """``(embedding model, architecture)`` of a training workdir: ``embedding_model.keras`` when the run has
    finished, else the latest checkpoint's weights in the network rebuilt from ``config.json``; ``at_init``: that
    network as the run's seed initialised it, before its first step."""
    workdir = Path(workdir)
    config = read_workdir_config(workdir)
    if at_init:
        keras.utils.set_random_seed(int(config.get("seed", 0)))
        return build_workdir_network(config), config["model"]
    final = workdir / FINAL_MODEL
    if final.is_file():
        import facenet_tf.models.layers  # noqa: F401

        return keras.saving.load_model(final), config["model"]
    import tensorflow as tf

    latest = tf.train.latest_checkpoint(str(workdir / CHECKPOINTS_DIR))
    if latest is None:
        raise ModelLoadError(f"'{workdir}' has neither {FINAL_MODEL} nor a checkpoint in {CHECKPOINTS_DIR}/")
    model = build_workdir_network(config)
    # The trainer checkpoints tf.train.Checkpoint(model=<triplet model>, optimizer=...), the triplet model holding
    # the network as `embedding_model`: the same path restores the network alone.
    status = tf.train.Checkpoint(model=tf.train.Checkpoint(embedding_model=model)).restore(latest)
    status.expect_partial().assert_existing_objects_matched()
    return model, config["model"]


def _load_saved_model(path: Path) -> LoadedModel:
    metadata_file = path / "assets" / "metadata.json"
    metadata = json.loads(metadata_file.read_text()) if metadata_file.is_file() else {}
    layer = keras.layers.TFSMLayer(str(path), call_endpoint="embed_images")
    height = int(metadata.get("input", {}).get("height", 0))
    width = int(metadata.get("input", {}).get("width", 0))
    if not (height and width):
        import tensorflow as tf

        shape = tf.saved_model.load(str(path)).signatures["embed_images"].structured_input_signature[1]["images"].shape
        height, width = int(shape[1]), int(shape[2])
    inputs = keras.Input((height, width, 3), name="images")
    outputs = layer(inputs)
    if isinstance(outputs, dict):
        outputs = outputs["embeddings"]
    thresholds = {}
    threshold = metadata.get("threshold")
    if isinstance(threshold, dict) and "value" in threshold:
        thresholds["verify"] = float(threshold["value"])
    elif isinstance(threshold, (int, float)):
        thresholds["verify"] = float(threshold)
    preprocessing = metadata.get("preprocessing", {})
    return LoadedModel(keras.Model(inputs, outputs, name="saved_model"), f"saved_model:{path}", "saved_model",
                       architecture=metadata.get("model"), location=str(path),
                       preprocessing=preprocessing.get("name", "unknown") if isinstance(preprocessing, dict)
                       else "unknown", thresholds=thresholds, metadata=metadata)
