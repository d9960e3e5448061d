"""Harmonic phase 2 (the whole new network) on a GPU machine that has JAX but no TensorFlow.

Three modes; ``pack`` and ``unpack`` run here (TensorFlow), ``train`` runs there (``KERAS_BACKEND=jax``, no
TensorFlow import: the zoo models and ``facenet_tf.portable.losses`` are plain Keras 3):

    # 1. stage the data of phase-1 runs: training crops (JPEG), labels, precomputed old embeddings, initial weights
    .venv/bin/python experiments/harmonic_jax.py --mode=pack --runs=A=runs/v2A_flip_p1,B=runs/v2B_flip_p1 \\
        --stage_dir=.device_stage
    # 2. on the GPU machine, for each run
    KERAS_BACKEND=jax python3 experiments/harmonic_jax.py --mode=train --stage_dir=.device_stage --run=A \\
        --steps=2000 --output_dir=$OUT/A
    # 3. back here: a training workdir that harmonic_report.py / eval_lfw.py read like any other
    .venv/bin/python experiments/harmonic_jax.py --mode=unpack --stage_dir=.device_stage --run=A \\
        --trained_dir=<files of step 2> --workdir=runs/v2A_flip_p2_gpu

The training is the same as ``experiments/train.py --harmonic_with=... --harmonic_phase=all`` with
``--harmonic_old_embeddings=precomputed``: identity-balanced batches (``IdentityBalancedSampler``), the harmonic
triplet loss with semi-hard negatives (``facenet_tf.portable.losses``, tested equal to the TensorFlow loss), batch
norm in training mode. Differences, all forced by moving bytes to a machine the data does not live on: the
centred crops travel as JPEG (quality ``--jpeg_quality``) at their native resolution and are resized there as
``load_face`` does; the random crop is at whole-pixel offsets (TensorFlow: ``crop_and_resize`` at sub-pixel ones);
weights travel as float16 for arrays of >= 4,096 values (float32 below: biases, batch-norm statistics) in both
directions, so the returned model is the trained one rounded to float16 (``train`` reports the embedding change
this rounding makes).
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from pathlib import Path

from absl import app, flags

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

F = flags.FLAGS
flags.DEFINE_enum("mode", None, ["pack", "train", "unpack"], "pack (here), train (GPU machine, JAX), unpack (here).")
flags.DEFINE_string("stage_dir", ".device_stage", "Folder the staged data is written to / read from.")
flags.DEFINE_list("runs", [], "pack: NAME=phase-1 workdir pairs (harmonic runs with precomputed old embeddings).")
flags.DEFINE_integer("jpeg_quality", 93, "pack: JPEG quality of the staged crops.")
flags.DEFINE_integer("image_parts", 2, "pack: number of files the images are split into (to travel in pieces).")
flags.DEFINE_string("run", None, "train / unpack: the NAME of a packed run.")
flags.DEFINE_integer("steps", 2000, "train: steps.")
flags.DEFINE_enum("optimizer", "adam", ["adam", "adagrad"], "train: optimizer.")
flags.DEFINE_float("learning_rate", 1e-3, "train: learning rate.")
flags.DEFINE_list("lr_decay_steps", [], "train: steps at which the rate is multiplied by --lr_decay_factor.")
flags.DEFINE_float("lr_decay_factor", 0.1, "train: factor of each decay.")
flags.DEFINE_enum("candidates", "old", ["both", "old"], "train: where positives and negatives come from.")
flags.DEFINE_float("same_image_weight", 1.0, "train: weight of the same-image pull (0: the paper's loss alone).")
flags.DEFINE_float("margin", 0.2, "train: triplet margin.")
flags.DEFINE_integer("identities_per_batch", 30, "train: P.")
flags.DEFINE_integer("faces_per_identity", 4, "train: K.")
flags.DEFINE_integer("extra_negatives", 60, "train: R.")
flags.DEFINE_integer("seed", 0, "train: seed of batches and augmentation.")
flags.DEFINE_float("time_budget_s", 0.0, "train: stop (and save) once this many seconds have passed (0: none).")
flags.DEFINE_integer("log_every", 50, "train: steps per logged mean.")
flags.DEFINE_bool("synthetic", False, "train: time the step on random images, labels and old embeddings (3,000 "
                  "images of 300 identities, random initial weights of --model); no stage needed.")
flags.DEFINE_string("model", "inception_resnet_v1", "train --synthetic: the zoo model.")
flags.DEFINE_string("output_dir", None, "train: where the trained weights and the log are written.")
flags.DEFINE_string("trained_dir", None, "unpack: the folder with train's output files.")
flags.DEFINE_string("workdir", None, "unpack: the training workdir to create.")

FP16_MIN_SIZE = 4096
PART_BYTES = 15 * 2**20


# --------------------------------------------------------------------------------------------------- weights
def weights_to_arrays(model, keys=None) -> dict:
    """{variable path: array} of ``model``'s weights, large arrays as float16 (``keys``: only those)."""
    import numpy as np

    out = {}
    for variable in model.weights:
        if keys is not None and variable.path not in keys:
            continue
        value = np.asarray(variable.numpy() if hasattr(variable, "numpy") else variable.value, np.float32)
        out[variable.path] = value.astype(np.float16) if value.size >= FP16_MIN_SIZE else value
    return out


def save_parts(arrays: dict, folder: Path, prefix: str) -> list[str]:
    """Writes ``arrays`` into ``prefix_<k>.npz`` files of at most ~PART_BYTES each; returns the file names."""
    import numpy as np

    names, part, size = [], {}, 0
    for key in sorted(arrays):
        if part and size + arrays[key].nbytes > PART_BYTES:
            names.append(_write_npz(folder, f"{prefix}_{len(names)}.npz", part))
            part, size = {}, 0
        part[key] = arrays[key]
        size += arrays[key].nbytes
    if part or not names:
        names.append(_write_npz(folder, f"{prefix}_{len(names)}.npz", part))
    return names


def _write_npz(folder: Path, name: str, arrays: dict) -> str:
    import numpy as np

    tmp = folder / f".{name}.tmp.npz"
    np.savez(tmp, **{key.replace("/", "|"): value for key, value in arrays.items()})
    os.replace(tmp, folder / name)
    return name


def load_parts(files) -> dict:
    import numpy as np

    arrays = {}
    for file in files:
        with np.load(file, allow_pickle=False) as data:
            arrays.update({key.replace("|", "/"): data[key] for key in data.files})
    return arrays


def assign_arrays(model, arrays: dict, source: str) -> None:
    """Sets every weight of ``model`` from ``arrays`` (float32); errors name the missing or mis-shaped weight."""
    import numpy as np

    missing = [v.path for v in model.weights if v.path not in arrays]
    if missing:
        raise ValueError(f"{source}: no value for {len(missing)} weights of the model, e.g. {missing[:3]}")
    for variable in model.weights:
        value = arrays[variable.path]
        if tuple(value.shape) != tuple(variable.shape):
            raise ValueError(f"{source}: '{variable.path}' has shape {value.shape}, the model {variable.shape}")
        variable.assign(value.astype(np.float32))


# --------------------------------------------------------------------------------------------------- pack
def pack() -> None:
    import cv2
    import numpy as np

    from facenet_tf.data.images import read_image
    from facenet_tf.data.pipeline import center_crop_box
    from facenet_tf.train.config import TrainConfig
    from facenet_tf.train.harmonic import precompute_old_embeddings
    from facenet_tf.train.loop import load_embedding_model, split_identities

    if not F.runs:
        raise app.UsageError("--runs: give NAME=workdir pairs of phase-1 harmonic runs.")
    stage = Path(F.stage_dir)
    stage.mkdir(parents=True, exist_ok=True)
    runs, all_paths, models = {}, {}, {}
    for item in F.runs:
        name, _, workdir = item.partition("=")
        if not name or not workdir:
            raise app.UsageError(f"--runs: '{item}' is not NAME=workdir.")
        config = TrainConfig.load(workdir)
        if config.harmonic_with is None:
            raise app.UsageError(f"--runs: '{workdir}' is not a harmonic run (config.json has no harmonic_with).")
        index, _, info = split_identities(config)
        old = precompute_old_embeddings(config, index)
        h, w = config.image_size
        load_size = (round(h * (1 + config.jitter)), round(w * (1 + config.jitter)))
        for path in index.paths:
            all_paths.setdefault(path, len(all_paths))
        runs[name] = dict(workdir=workdir, config=json.loads(config.to_json()), load_size=list(load_size),
                          image_size=[h, w], crop_fraction=config.crop_fraction, data=info,
                          image_ids=[all_paths[p] for p in index.paths], labels=np.asarray(index.labels).tolist(),
                          names=list(index.names))
        np.save(stage / f"old_{name}.npy", old.astype(np.float32))
        models[name] = load_embedding_model(workdir)
        print(f"run {name}: {len(index.paths)} images, old embeddings {old.shape}", flush=True)

    # Initial weights: arrays equal in every run go once (large ones float16); the others per run in float32.
    first = next(iter(models.values()))
    values = {name: {v.path: np.asarray(v.numpy()) for v in m.weights} for name, m in models.items()}
    shared = {k for k in values[next(iter(values))]
              if all(k in v and np.array_equal(v[k], values[next(iter(values))][k]) for v in values.values())}
    base = weights_to_arrays(first, shared)
    manifest = {"base_weights": save_parts(base, stage, "weights_base"), "runs": runs, "images": []}
    for name, model in models.items():
        own = {k: v.astype(np.float32) for k, v in values[name].items() if k not in shared}
        runs[name]["weights"] = save_parts(own, stage, f"weights_{name}")
        runs[name]["model_config"] = dict(zoo=runs[name]["config"]["model"],
                                          batch_norm=runs[name]["config"]["batch_norm"])

    # The training crops: the centred box at its native resolution, as JPEG (load_face resizes it on the GPU side).
    paths = sorted(all_paths, key=all_paths.get)
    sizes = {tuple(r["load_size"]) for r in runs.values()}
    crops = {tuple(r["load_size"]): r["crop_fraction"] for r in runs.values()}
    if len(sizes) != 1 or len(set(crops.values())) != 1:
        raise app.UsageError("--runs: all runs must share the input size, jitter and crop_fraction.")
    load_size, crop_fraction = next(iter(crops.items()))
    encoded = []
    for k, path in enumerate(paths):
        image = read_image(path)
        top, left, box_h, box_w = center_crop_box(*image.shape[:2], *load_size, crop_fraction)
        ok, data = cv2.imencode(".jpg", image[top:top + box_h, left:left + box_w][:, :, ::-1],
                                [cv2.IMWRITE_JPEG_QUALITY, F.jpeg_quality])
        if not ok:
            raise RuntimeError(f"{path}: JPEG encoding failed")
        encoded.append(data.reshape(-1))
        if k % 2000 == 0:
            print(f"encoded {k} / {len(paths)}", flush=True)
    from facenet_tf.data.pipeline import load_face

    probe = range(min(500, len(paths)))  # what JPEG costs: decoded crops against load_face's, in 0-255 levels
    errors = np.concatenate([np.abs(cv2.resize(cv2.imdecode(encoded[k], cv2.IMREAD_COLOR)[:, :, ::-1],
                                               (load_size[1], load_size[0]), interpolation=cv2.INTER_AREA)
                                    .astype(int) - load_face(paths[k], load_size, crop_fraction)).ravel()
                             for k in probe])
    jpeg_error = {"images": len(probe), "mean_abs": round(float(errors.mean()), 3),
                  "p99_abs": float(np.percentile(errors, 99))}
    print(f"JPEG q{F.jpeg_quality} against load_face on {len(probe)} images: mean |diff| {jpeg_error['mean_abs']} "
          f"(99th percentile {jpeg_error['p99_abs']:.0f}) levels of 255", flush=True)
    bounds = np.linspace(0, len(paths), F.image_parts + 1).astype(int)
    for part, (lo, hi) in enumerate(zip(bounds[:-1], bounds[1:])):
        chunk = encoded[lo:hi]
        offsets = np.cumsum([0] + [c.size for c in chunk]).astype(np.int64)
        name = f"images_{part}.npz"
        np.savez(stage / name, data=np.concatenate(chunk), offsets=offsets, first=np.int64(lo),
                 paths=np.array(paths[lo:hi]))
        manifest["images"].append(name)
    manifest.update(num_images=len(paths), load_size=list(load_size), crop_fraction=crop_fraction,
                    jpeg_quality=F.jpeg_quality, jpeg_error=jpeg_error)

    # What the float16 staging costs: each run's staged weights against its model, on 64 centre crops.
    from facenet_tf.models import create_model

    for name, run in runs.items():
        h, w = run["image_size"]
        staged = create_model(run["model_config"]["zoo"], embedding_dim=run["config"]["embedding_dim"],
                              input_shape=(h, w, 3), batch_norm=run["model_config"]["batch_norm"])
        assign_arrays(staged, load_parts([stage / n for n in manifest["base_weights"] + run["weights"]]), name)
        crops = np.stack([load_face(paths[i], (h, w), crop_fraction) for i in run["image_ids"][:64]])
        crops = crops.astype(np.float32)
        cosine = np.sum(np.asarray(staged(crops)) * np.asarray(models[name](crops)), axis=1)
        run["float16_staging_min_cosine"] = float(cosine.min())
        print(f"run {name}: staged weights vs the model, min cosine {cosine.min():.7f} on {len(crops)} crops")
    (stage / "manifest.json").write_text(json.dumps(manifest))
    for file in sorted(stage.iterdir()):
        print(f"{file.name}: {file.stat().st_size / 2**20:.1f} MiB")


# --------------------------------------------------------------------------------------------------- train
def decode_images(stage: Path, manifest: dict, ids) -> "np.ndarray":
    """uint8 (len(ids), h, w, 3) RGB training crops at the load size, decoded and resized as ``load_face``."""
    import concurrent.futures

    import cv2
    import numpy as np

    h, w = manifest["load_size"]
    wanted = {int(i): k for k, i in enumerate(ids)}
    out = np.zeros((len(ids), h, w, 3), np.uint8)
    jobs = []
    for name in manifest["images"]:
        file = stage / name
        if not file.is_file():
            raise FileNotFoundError(f"{file}: staged image file missing (was it carried to this machine?)")
        with np.load(file, allow_pickle=False) as data:
            blob, offsets, first = data["data"], data["offsets"], int(data["first"])
        for j in range(len(offsets) - 1):
            if first + j in wanted:
                jobs.append((wanted[first + j], blob[offsets[j]:offsets[j + 1]]))

    def work(job):
        k, raw = job
        image = cv2.imdecode(raw, cv2.IMREAD_COLOR)[:, :, ::-1]
        out[k] = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA)

    with concurrent.futures.ThreadPoolExecutor(os.cpu_count() or 4) as pool:
        list(pool.map(work, jobs))
    if len(jobs) != len(ids):
        raise ValueError(f"{stage}: {len(ids) - len(jobs)} images of the run are not in the staged files")
    return out


def augment_batch(images, seed: int, step: int, size: tuple[int, int]):
    """Random whole-pixel crop of ``size`` and random horizontal flip per image; float32 0-255."""
    import numpy as np

    rng = np.random.default_rng([seed, step, 7])
    n, in_h, in_w, _ = images.shape
    out_h, out_w = size
    tops = rng.integers(0, in_h - out_h + 1, n)
    lefts = rng.integers(0, in_w - out_w + 1, n)
    flips = rng.random(n) < 0.5
    out = np.empty((n, out_h, out_w, 3), np.float32)
    for k in range(n):
        crop = images[k, tops[k]:tops[k] + out_h, lefts[k]:lefts[k] + out_w]
        out[k] = crop[:, ::-1] if flips[k] else crop
    return out


def train() -> None:
    import queue
    import threading

    import jax
    import keras
    import numpy as np

    from facenet_tf.data.sampling import BatchComposition, IdentityBalancedSampler
    from facenet_tf.models import create_model
    from facenet_tf.portable import losses

    if keras.backend.backend() != "jax":
        raise app.UsageError("--mode=train needs KERAS_BACKEND=jax.")
    if not (F.run or F.synthetic) or not F.output_dir:
        raise app.UsageError("--mode=train needs --run (or --synthetic) and --output_dir.")
    t_start = time.perf_counter()
    out_dir = Path(F.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    print("devices:", jax.devices(), flush=True)
    if F.synthetic:
        rng = np.random.default_rng(0)
        model = create_model(F.model)
        h, w = model.input.shape[1:3]
        labels = np.repeat(np.arange(300, dtype=np.int32), 10)
        images = rng.integers(0, 256, (labels.size, round(h * 1.1), round(w * 1.1), 3), dtype=np.uint8)
        old = rng.normal(size=(labels.size, model.output.shape[-1])).astype(np.float32)
        old /= np.linalg.norm(old, axis=1, keepdims=True)
    else:
        stage = Path(F.stage_dir)
        manifest = json.loads((stage / "manifest.json").read_text())
        if F.run not in manifest["runs"]:
            raise app.UsageError(f"--run={F.run}: the stage has runs {sorted(manifest['runs'])}.")
        run = manifest["runs"][F.run]
        images = decode_images(stage, manifest, run["image_ids"])
        labels = np.asarray(run["labels"], np.int32)
        old = np.load(stage / f"old_{F.run}.npy")
        h, w = run["image_size"]
        model = create_model(run["model_config"]["zoo"], embedding_dim=old.shape[1], input_shape=(h, w, 3),
                             batch_norm=run["model_config"].get("batch_norm", True))
        arrays = load_parts([stage / n for n in manifest["base_weights"]])
        arrays.update(load_parts([stage / n for n in run["weights"]]))
        assign_arrays(model, arrays, f"{stage} run {F.run}")
    t_data = time.perf_counter() - t_start
    print(f"{len(images)} images {images.shape[1:]} and the model ready in {t_data:.1f} s", flush=True)

    lr = F.learning_rate
    if F.lr_decay_steps:
        steps = [int(s) for s in F.lr_decay_steps]
        lr = keras.optimizers.schedules.PiecewiseConstantDecay(
            steps, [F.learning_rate * F.lr_decay_factor ** k for k in range(len(steps) + 1)])
    optimizer = keras.optimizers.Adam(lr) if F.optimizer == "adam" else keras.optimizers.Adagrad(lr)
    optimizer.build(model.trainable_variables)
    composition = BatchComposition(F.identities_per_batch, F.faces_per_identity, F.extra_negatives)
    sampler = IdentityBalancedSampler(labels, composition, F.seed)
    slots = losses.max_positives_needed(max(F.faces_per_identity, F.extra_negatives), F.candidates)

    def loss_fn(trainable, non_trainable, x, old_batch, label_batch):
        embeddings, non_trainable = model.stateless_call(trainable, non_trainable, x, training=True)
        metrics = losses.harmonic_triplet_loss_with_metrics(
            label_batch, embeddings, old_batch, slots, margin=F.margin, candidates=F.candidates,
            same_image_weight=F.same_image_weight)
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
        for step in range(F.steps):
            idx = sampler.batch(step)
            batches.put((augment_batch(images[idx], F.seed, step, (h, w)), old[idx], labels[idx]))

    threading.Thread(target=producer, daemon=True).start()
    history, window, step_times = [], [], []
    t_train = time.perf_counter()
    done = 0
    for step in range(F.steps):
        x, old_batch, label_batch = batches.get()
        state, metrics = train_step(state, x, old_batch, label_batch)
        window.append(metrics)
        done = step + 1
        if done % F.log_every == 0 or done == F.steps:
            means = {k: float(np.mean([float(m[k]) for m in window])) for k in window[0]}
            now = time.perf_counter()
            step_times.append(now)
            history.append({"step": done, "seconds": round(now - t_train, 1), **means})
            print(json.dumps(history[-1]), flush=True)
            window = []
            if means["positives_dropped"]:
                raise RuntimeError(f"{means['positives_dropped']} positives per batch did not fit the slots")
        if F.time_budget_s and time.perf_counter() - t_start > F.time_budget_s:
            print(f"time budget reached after {done} steps", flush=True)
            break
    jax.block_until_ready(state)
    seconds = time.perf_counter() - t_train

    trainable, non_trainable, _ = state
    for variable, value in zip(model.trainable_variables, trainable):
        variable.assign(value)
    for variable, value in zip(model.non_trainable_variables, non_trainable):
        variable.assign(value)
    if F.synthetic:
        log = {"model": F.model, "steps_done": done, "train_seconds": round(seconds, 1),
               "device": str(jax.devices()[0]), "history": history}
        if len(step_times) >= 3:
            log["seconds_per_step"] = round((step_times[-1] - step_times[0]) / (F.log_every * (len(step_times) - 1)), 4)
        (out_dir / "synthetic_log.json").write_text(json.dumps(log, indent=1))
        print(json.dumps({k: v for k, v in log.items() if k != "history"}), flush=True)
        return
    probe = augment_batch(images[:64], F.seed, 10**9, (h, w))  # a step no batch uses
    exact = np.asarray(model(probe, training=False))
    files = save_parts(weights_to_arrays(model), out_dir, "trained")
    assign_arrays(model, load_parts([out_dir / f for f in files]), "rounded weights")
    rounded = np.asarray(model(probe, training=False))
    cosine = np.sum(exact * rounded, axis=1)
    log = {"run": F.run, "steps_done": done, "train_seconds": round(seconds, 1),
           "data_seconds": round(t_data, 1), "files": files, "device": str(jax.devices()[0]),
           "float16_rounding_min_cosine": float(cosine.min()),
           "flags": {k: getattr(F, k) for k in ("steps", "optimizer", "learning_rate", "lr_decay_steps",
                                                "lr_decay_factor", "candidates", "same_image_weight", "margin",
                                                "identities_per_batch", "faces_per_identity", "extra_negatives",
                                                "seed")},
           "history": history}
    if len(step_times) >= 3:  # steady-state step time, leaving out the first window (compilation)
        log["seconds_per_step"] = round((step_times[-1] - step_times[0]) / (F.log_every * (len(step_times) - 1)), 4)
    (out_dir / "train_log.json").write_text(json.dumps(log, indent=1))
    print(json.dumps({k: v for k, v in log.items() if k != "history"}), flush=True)


# --------------------------------------------------------------------------------------------------- unpack
def unpack() -> None:
    import numpy as np

    from facenet_tf.models import create_model
    from facenet_tf.train.config import TrainConfig
    from facenet_tf.train.loop import save_embedding_model

    if not (F.run and F.trained_dir and F.workdir):
        raise app.UsageError("--mode=unpack needs --run, --trained_dir and --workdir.")
    stage, trained = Path(F.stage_dir), Path(F.trained_dir)
    manifest = json.loads((stage / "manifest.json").read_text())
    run = manifest["runs"][F.run]
    log_file = trained / "train_log.json"
    if not log_file.is_file():
        raise FileNotFoundError(f"{log_file}: not found; --trained_dir must hold the output of --mode=train")
    log = json.loads(log_file.read_text())
    h, w = run["image_size"]
    model = create_model(run["model_config"]["zoo"], embedding_dim=run["config"]["embedding_dim"],
                         input_shape=(h, w, 3), batch_norm=run["model_config"].get("batch_norm", True))
    assign_arrays(model, load_parts([trained / f for f in log["files"]]), str(trained))
    workdir = Path(F.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    flags_used = log["flags"]
    config = dict(run["config"], workdir=str(workdir), init_from=run["workdir"], init_weights=None,
                  harmonic_phase="all", steps=log["steps_done"],
                  checkpoint_every=math.gcd(log["steps_done"], run["config"]["checkpoint_every"]), optimizer=flags_used["optimizer"],
                  learning_rate=flags_used["learning_rate"],
                  lr_decay_steps=[int(s) for s in flags_used["lr_decay_steps"]],
                  lr_decay_factor=flags_used["lr_decay_factor"], harmonic_candidates=flags_used["candidates"],
                  harmonic_same_image_weight=flags_used["same_image_weight"], margin=flags_used["margin"],
                  identities_per_batch=flags_used["identities_per_batch"],
                  faces_per_identity=flags_used["faces_per_identity"],
                  extra_negatives=flags_used["extra_negatives"], seed=flags_used["seed"])
    (workdir / "config.json").write_text(TrainConfig.from_json(json.dumps(config)).to_json())  # validated
    save_embedding_model(model, workdir / "embedding_model.keras")
    summary = {"trained_with": "experiments/harmonic_jax.py --mode=train (Keras 3 on JAX)", "data": run["data"],
               **{k: v for k, v in log.items() if k != "files"}}
    (workdir / "summary.json").write_text(json.dumps(summary, indent=2))
    print(f"{workdir}: {log['steps_done']} steps, float16 rounding min cosine "
          f"{log['float16_rounding_min_cosine']:.6f}", flush=True)


def main(argv):
    del argv
    {"pack": pack, "train": train, "unpack": unpack}[F.mode]()


if __name__ == "__main__":
    flags.mark_flag_as_required("mode")
    app.run(main)
