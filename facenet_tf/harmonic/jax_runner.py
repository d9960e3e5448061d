"""Harmonic phase 2 (the whole new network) under Keras 3 on JAX, on a GPU machine without TensorFlow: no
TensorFlow import, here or in what this imports (the zoo models, ``facenet_tf.portable.losses``, the sampler).

The training is ``experiments/train.py --harmonic_with=... --harmonic_phase=all`` with precomputed old embeddings:
identity-balanced batches (``IdentityBalancedSampler``), the harmonic triplet loss with semi-hard negatives
(``facenet_tf.portable.losses``, tested equal to the TensorFlow loss), batch norm in training mode. Differences, all
forced by moving bytes to a machine the data does not live on (``facenet_tf.harmonic.stage``): the centred crops
travel as JPEG at their native resolution and are resized there as ``load_face`` does; the random crop is at
whole-pixel offsets (TensorFlow: ``crop_and_resize`` at sub-pixel ones); weights travel as float16 for large arrays
in both directions, so the returned model is the trained one rounded to float16 (the log reports the embedding
change this rounding makes).
"""

from __future__ import annotations

import dataclasses
import json
import queue
import threading
import time
from pathlib import Path

import numpy as np

from facenet_tf.data.sampling import BatchComposition, IdentityBalancedSampler
from facenet_tf.harmonic.stage import (assign_arrays, augment_batch, build_run_model, decode_images, load_parts,
                                       read_manifest, save_parts, weights_to_arrays)
from facenet_tf.models import create_model

OPTIMIZERS = ("adam", "adagrad")
CANDIDATES = ("both", "old")


@dataclasses.dataclass(frozen=True)
class PhaseTwoSettings:
    """The settings of a phase-2 run (flags of ``experiments/harmonic_jax.py --mode=train``); ``LOGGED`` travel
    back in ``train_log.json`` and become the unpacked workdir's config."""

    steps: int = 2000
    optimizer: str = "adam"
    learning_rate: float = 1e-3
    lr_decay_steps: tuple[int, ...] = ()
    lr_decay_factor: float = 0.1
    candidates: str = "old"
    same_image_weight: float = 1.0
    margin: float = 0.2
    identities_per_batch: int = 30
    faces_per_identity: int = 4
    extra_negatives: int = 60
    seed: int = 0
    time_budget_s: float = 0.0  # stop (and save) once this many seconds have passed (0: none)
    log_every: int = 50         # steps per logged mean

    LOGGED = ("steps", "optimizer", "learning_rate", "lr_decay_steps", "lr_decay_factor", "candidates",
              "same_image_weight", "margin", "identities_per_batch", "faces_per_identity", "extra_negatives", "seed")

    def __post_init__(self):
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"--optimizer: expected one of {OPTIMIZERS}, got {self.optimizer!r}.")
        if self.candidates not in CANDIDATES:
            raise ValueError(f"--candidates: expected one of {CANDIDATES}, got {self.candidates!r}.")
        for name in ("steps", "log_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name}: expected a positive integer, got {getattr(self, name)!r}.")

    def logged(self) -> dict:
        """The ``flags`` of ``train_log.json`` (decay steps as strings, as the flag gave them)."""
        values = {name: getattr(self, name) for name in self.LOGGED}
        return {**values, "lr_decay_steps": [str(s) for s in self.lr_decay_steps]}


def _seconds_per_step(step_times: list[tuple[int, float]]) -> dict:
    """Steady-state step time from the ``(steps done, time)`` of each logged window, leaving out the first window
    (compilation); {} with under 3 windows."""
    if len(step_times) < 3:
        return {}
    (first_step, first), (last_step, last) = step_times[0], step_times[-1]
    return {"seconds_per_step": round((last - first) / (last_step - first_step), 4)}


def synthetic_data(model_name: str):
    """``(model, images, labels, old)`` for timing a step: random initial weights of the zoo ``model_name``, 3,000
    random images (10 per identity, at 1.1 times the input size) and random unit old embeddings."""
    rng = np.random.default_rng(0)
    model = create_model(model_name)
    h, w = model.input.shape[1:3]
    labels = np.repeat(np.arange(300, dtype=np.int32), 10)
    images = rng.integers(0, 256, (labels.size, round(h * 1.1), round(w * 1.1), 3), dtype=np.uint8)
    old = rng.normal(size=(labels.size, model.output.shape[-1])).astype(np.float32)
    return model, images, labels, old / np.linalg.norm(old, axis=1, keepdims=True)


def staged_data(stage: Path, run_name: str):
    """``(model with the run's initial weights, crops at the load size, labels, old embeddings)`` of a packed run."""
    manifest, run = read_manifest(stage, run_name)
    images = decode_images(stage, manifest, run["image_ids"])
    model = build_run_model(run)
    arrays = load_parts([Path(stage) / n for n in manifest["base_weights"]])
    arrays.update(load_parts([Path(stage) / n for n in run["weights"]]))
    assign_arrays(model, arrays, f"{stage} run {run_name}")
    return model, images, np.asarray(run["labels"], np.int32), np.load(Path(stage) / f"old_{run_name}.npy")


def fit(model, images, labels, old, settings: PhaseTwoSettings, started: float, log=print) -> dict:
    """Trains ``model`` in place for ``settings.steps`` steps (or until ``time_budget_s`` after ``started``):
    batches drawn by a producer thread, one jitted step each; returns ``steps_done``, ``train_seconds``,
    ``history`` (the means of every ``log_every`` steps) and the steady-state ``seconds_per_step``."""
    import jax
    import keras

    from facenet_tf.portable import losses

    if keras.backend.backend() != "jax":
        raise ValueError("--mode=train needs KERAS_BACKEND=jax.")
    h, w = model.input.shape[1:3]
    lr = settings.learning_rate
    if settings.lr_decay_steps:
        steps = list(settings.lr_decay_steps)
        lr = keras.optimizers.schedules.PiecewiseConstantDecay(
            steps, [settings.learning_rate * settings.lr_decay_factor ** k for k in range(len(steps) + 1)])
    optimizer = keras.optimizers.Adam(lr) if settings.optimizer == "adam" else keras.optimizers.Adagrad(lr)
    optimizer.build(model.trainable_variables)
    composition = BatchComposition(settings.identities_per_batch, settings.faces_per_identity,
                                   settings.extra_negatives)
    sampler = IdentityBalancedSampler(labels, composition, settings.seed)
    slots = losses.max_positives_needed(max(settings.faces_per_identity, settings.extra_negatives),
                                        settings.candidates)

    def loss_fn(trainable, non_trainable, x, old_batch, label_batch):
        embeddings, non_trainable = model.stateless_call(trainable, non_trainable, x, training=True)
        metrics = losses.harmonic_triplet_loss_with_metrics(
            label_batch, embeddings, old_batch, slots, margin=settings.margin, candidates=settings.candidates,
            same_image_weight=settings.same_image_weight)
        return metrics["loss"], (non_trainable, metrics)

    grad_fn = jax.value_and_grad(loss_fn, has_aux=True)

    @jax.jit
    def train_step(state, x, old_batch, label_batch):
        trainable, non_trainable, opt_vars = state
        (_, (non_trainable, metrics)), grads = grad_fn(trainable, non_trainable, x, old_batch, label_batch)
        trainable, opt_vars = optimizer.stateless_apply(opt_vars, grads, trainable)
        return (trainable, non_trainable, opt_vars), metrics

    state = ([v.value for v in model.trainable_variables], [v.value for v in model.non_trainable_variables],
             [v.value for v in optimizer.variables])
    batches: queue.Queue = queue.Queue(maxsize=6)

    def producer():
        try:
            for step in range(settings.steps):
                idx = sampler.batch(step)
                batches.put((augment_batch(images[idx], settings.seed, step, (h, w)), old[idx], labels[idx]))
        except BaseException as error:  # noqa: BLE001 - handed to the training loop, which raises it
            batches.put(error)

    threading.Thread(target=producer, daemon=True).start()
    history, window, step_times = [], [], []
    t_train = time.perf_counter()
    done = 0
    for step in range(settings.steps):
        batch = batches.get()
        if isinstance(batch, BaseException):
            raise RuntimeError(f"making the batch of step {step} failed: {batch!r}") from batch
        state, metrics = train_step(state, *batch)
        window.append(metrics)
        done = step + 1
        over_budget = bool(settings.time_budget_s) and time.perf_counter() - started > settings.time_budget_s
        if done % settings.log_every == 0 or done == settings.steps or over_budget:
            means = {k: float(np.mean([float(m[k]) for m in window])) for k in window[0]}
            now = time.perf_counter()
            step_times.append((done, now))
            history.append({"step": done, "seconds": round(now - t_train, 1), **means})
            log(json.dumps(history[-1]))
            window = []
            if means["positives_dropped"]:
                raise RuntimeError(f"{means['positives_dropped']} positives per batch did not fit the slots")
        if over_budget:
            log(f"time budget reached after {done} steps")
            break
    jax.block_until_ready(state)
    seconds = time.perf_counter() - t_train
    trainable, non_trainable, _ = state
    for variable, value in zip(model.trainable_variables, trainable):
        variable.assign(value)
    for variable, value in zip(model.non_trainable_variables, non_trainable):
        variable.assign(value)
    return {"steps_done": done, "train_seconds": round(seconds, 1), "history": history,
            **_seconds_per_step(step_times)}


def run_phase_two(settings: PhaseTwoSettings, output_dir: str | Path, stage_dir: str | Path | None = None,
                  run: str | None = None, synthetic_model: str | None = None, log=print) -> dict:
    """``--mode=train``: phase 2 of the packed ``run`` of ``stage_dir`` (or, with ``synthetic_model``, a timed run
    on random data); writes the trained weights as parts (``trained_<k>.npz``) and ``train_log.json`` (or
    ``synthetic_log.json``) into ``output_dir``, and returns the log."""
    if (run is None) == (synthetic_model is None):
        raise ValueError("--mode=train needs --run (or --synthetic).")
    import jax
    started = time.perf_counter()
    out_dir = Path(output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    log(f"devices: {jax.devices()}")
    model, images, labels, old = (synthetic_data(synthetic_model) if synthetic_model
                                  else staged_data(Path(stage_dir), run))
    data_seconds = time.perf_counter() - started
    log(f"{len(images)} images {images.shape[1:]} and the model ready in {data_seconds:.1f} s")
    result = fit(model, images, labels, old, settings, started, log)
    history = result.pop("history")
    if synthetic_model:
        summary = {"model": synthetic_model, **result, "device": str(jax.devices()[0])}
        (out_dir / "synthetic_log.json").write_text(json.dumps({**summary, "history": history}, indent=1))
        log(json.dumps(summary))
        return {**summary, "history": history}
    h, w = model.input.shape[1:3]
    probe = augment_batch(images[:64], settings.seed, 10**9, (h, w))  # a step no batch uses
    exact = np.asarray(model(probe, training=False))
    files = save_parts(weights_to_arrays(model), out_dir, "trained")
    assign_arrays(model, load_parts([out_dir / f for f in files]), "rounded weights")
    cosine = np.sum(exact * np.asarray(model(probe, training=False)), axis=1)
    summary = {"run": run, "steps_done": result["steps_done"], "train_seconds": result["train_seconds"],
               "data_seconds": round(data_seconds, 1), "files": files, "device": str(jax.devices()[0]),
               "float16_rounding_min_cosine": float(cosine.min()), "flags": settings.logged(),
               **{k: v for k, v in result.items() if k == "seconds_per_step"}}
    (out_dir / "train_log.json").write_text(json.dumps({**summary, "history": history}, indent=1))
    log(json.dumps(summary))
    return {**summary, "history": history}
