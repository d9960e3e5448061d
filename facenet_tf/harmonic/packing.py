"""The TensorFlow side of harmonic phase 2 on a JAX GPU machine (``facenet_tf.harmonic.jax_runner``): ``pack``
stages phase-1 runs (training crops, labels, precomputed old embeddings, initial weights;
``facenet_tf.harmonic.stage``), ``unpack`` turns the trained weights that come back into a training workdir that
evaluation reads like any other."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import cv2
import numpy as np

from facenet_tf.atomic import check_replaceable, write_directory_atomically
from facenet_tf.data.images import read_image
from facenet_tf.data.pipeline import center_crop_box, load_face
from facenet_tf.harmonic.old_embeddings import precompute_old_embeddings
from facenet_tf.harmonic.stage import (assign_arrays, build_run_model, load_parts, read_manifest, save_parts,
                                       weights_to_arrays)
from facenet_tf.train.config import TrainConfig
from facenet_tf.train.loop import load_embedding_model, save_embedding_model, split_identities


def _stage_runs(runs: dict[str, str], stage: Path, log, lfw_root: str | os.PathLike | None = None
                ) -> tuple[dict, dict, dict]:
    """Each run's entry (labels, sizes, config, data), its old embeddings (``old_<name>.npy``) and model."""
    entries, all_paths, models = {}, {}, {}
    for name, workdir in runs.items():
        config = TrainConfig.load(workdir)
        if config.harmonic is None:
            raise ValueError(f"--runs: '{workdir}' is not a harmonic run (config.json has no harmonic_with).")
        index, _, info = split_identities(config, lfw_root)
        old = precompute_old_embeddings(config, index)
        h, w = config.image_size
        load_size = (round(h * (1 + config.jitter)), round(w * (1 + config.jitter)))
        for path in index.paths:
            all_paths.setdefault(path, len(all_paths))
        entries[name] = dict(workdir=workdir, config=json.loads(config.to_json()), load_size=list(load_size),
                             image_size=[h, w], crop_fraction=config.crop_fraction, data=info,
                             image_ids=[all_paths[p] for p in index.paths], labels=np.asarray(index.labels).tolist(),
                             names=list(index.names),
                             model_config=dict(zoo=config.model, batch_norm=config.batch_norm))
        np.save(stage / f"old_{name}.npy", old.astype(np.float32))
        models[name] = load_embedding_model(workdir)
        log(f"run {name}: {len(index.paths)} images, old embeddings {old.shape}")
    return entries, all_paths, models


def _stage_images(paths: list[str], load_size, crop_fraction: float, jpeg_quality: int, parts: int, stage: Path,
                  log) -> dict:
    """The training crops (the centred box at its native resolution, as JPEG: the GPU side resizes it as
    ``load_face`` does) in ``parts`` files, and what JPEG costs against ``load_face`` on up to 500 images."""
    encoded = []
    for k, path in enumerate(paths):
        image = read_image(path)
        top, left, box_h, box_w = center_crop_box(*image.shape[:2], *load_size, crop_fraction)
        ok, data = cv2.imencode(".jpg", image[top:top + box_h, left:left + box_w][:, :, ::-1],
                                [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality])
        if not ok:
            raise RuntimeError(f"{path}: JPEG encoding failed")
        encoded.append(data.reshape(-1))
        if k % 2000 == 0:
            log(f"encoded {k} / {len(paths)}")
    probe = range(min(500, len(paths)))  # decoded crops against load_face's, in 0-255 levels
    errors = np.concatenate([np.abs(cv2.resize(cv2.imdecode(encoded[k], cv2.IMREAD_COLOR)[:, :, ::-1],
                                               (load_size[1], load_size[0]), interpolation=cv2.INTER_AREA)
                                    .astype(int) - load_face(paths[k], load_size, crop_fraction)).ravel()
                             for k in probe])
    jpeg_error = {"images": len(probe), "mean_abs": round(float(errors.mean()), 3),
                  "p99_abs": float(np.percentile(errors, 99))}
    log(f"JPEG q{jpeg_quality} against load_face on {len(probe)} images: mean |diff| {jpeg_error['mean_abs']} "
        f"(99th percentile {jpeg_error['p99_abs']:.0f}) levels of 255")
    names = []
    bounds = np.linspace(0, len(paths), parts + 1).astype(int)
    for part, (lo, hi) in enumerate(zip(bounds[:-1], bounds[1:])):
        chunk = encoded[lo:hi]
        offsets = np.cumsum([0] + [c.size for c in chunk]).astype(np.int64)
        names.append(f"images_{part}.npz")
        np.savez(stage / names[-1], data=np.concatenate(chunk), offsets=offsets, first=np.int64(lo),
                 paths=np.array(paths[lo:hi]))
    return dict(images=names, num_images=len(paths), load_size=list(load_size), crop_fraction=crop_fraction,
                jpeg_quality=jpeg_quality, jpeg_error=jpeg_error)


def pack(runs: dict[str, str], stage_dir: str | Path, jpeg_quality: int = 93, image_parts: int = 2,
         log=print, lfw_root: str | os.PathLike | None = None) -> dict:
    """Stages the phase-1 harmonic ``runs`` ({name: workdir}, precomputed old embeddings) in ``stage_dir``;
    returns the manifest (also ``manifest.json``). Weights equal in every run go once (large ones float16), the
    others per run in float32; each run records the smallest cosine between its staged and its own model's
    embeddings of 64 centre crops (``float16_staging_min_cosine``). ``lfw_root``: the LFW root the command
    resolved, the training images of runs whose ``config.json`` names no ``data_dir``."""
    if not runs:
        raise ValueError("--runs: give NAME=workdir pairs of phase-1 harmonic runs.")
    stage = Path(stage_dir)
    stage.mkdir(parents=True, exist_ok=True)
    entries, all_paths, models = _stage_runs(runs, stage, log, lfw_root)
    values = {name: {v.path: np.asarray(v.numpy()) for v in m.weights} for name, m in models.items()}
    first = next(iter(values.values()))
    shared = {k for k in first if all(k in v and np.array_equal(v[k], first[k]) for v in values.values())}
    manifest = {"base_weights": save_parts(weights_to_arrays(next(iter(models.values())), shared), stage,
                                           "weights_base"), "runs": entries}
    for name in models:
        own = {k: v.astype(np.float32) for k, v in values[name].items() if k not in shared}
        entries[name]["weights"] = save_parts(own, stage, f"weights_{name}")
    crops = {(tuple(r["load_size"]), r["crop_fraction"]) for r in entries.values()}
    if len(crops) != 1:
        raise ValueError("--runs: all runs must share the input size, jitter and crop_fraction.")
    (load_size, crop_fraction), = crops
    paths = sorted(all_paths, key=all_paths.get)
    manifest.update(_stage_images(paths, load_size, crop_fraction, jpeg_quality, image_parts, stage, log))
    for name, run in entries.items():  # what the float16 staging costs
        staged = build_run_model(run)
        assign_arrays(staged, load_parts([stage / n for n in manifest["base_weights"] + run["weights"]]), name)
        crops = np.stack([load_face(paths[i], tuple(run["image_size"]), crop_fraction)
                          for i in run["image_ids"][:64]]).astype(np.float32)
        cosine = np.sum(np.asarray(staged(crops)) * np.asarray(models[name](crops)), axis=1)
        run["float16_staging_min_cosine"] = float(cosine.min())
        log(f"run {name}: staged weights vs the model, min cosine {cosine.min():.7f} on {len(crops)} crops")
    (stage / "manifest.json").write_text(json.dumps(manifest))
    for file in sorted(stage.iterdir()):
        log(f"{file.name}: {file.stat().st_size / 2**20:.1f} MiB")
    return manifest


TRAINED_WITH = "experiments/harmonic_jax.py --mode=train (Keras 3 on JAX)"


def _unpacked_workdir(folder: Path) -> bool:
    """Whether ``folder`` is a workdir that :func:`unpack` wrote (what ``--overwrite`` may replace)."""
    try:
        return json.loads((folder / "summary.json").read_text()).get("trained_with") == TRAINED_WITH
    except (OSError, ValueError, AttributeError):
        return False


def unpack(stage_dir: str | Path, run_name: str, trained_dir: str | Path, workdir: str | Path, log=print,
           overwrite: bool = False) -> Path:
    """The training workdir of run ``run_name`` trained by ``jax_runner`` (``trained_dir``: its output): the
    phase-1 run's config with phase ``all``, ``init_from`` = the phase-1 workdir and the phase-2 settings of
    ``train_log.json``; ``embedding_model.keras`` with the trained weights; ``summary.json``. The workdir is
    written whole or not at all; an existing one is refused (``FileExistsError``) unless ``overwrite`` and it is
    an earlier output of ``unpack``."""
    stage, trained, workdir = Path(stage_dir), Path(trained_dir), Path(workdir)
    check_replaceable(workdir, overwrite, _unpacked_workdir, "a workdir written by --mode=unpack")
    _, run = read_manifest(stage, run_name)
    log_file = trained / "train_log.json"
    if not log_file.is_file():
        raise FileNotFoundError(f"--trained_dir: '{log_file}' not found; it must hold the output of --mode=train")
    train_log = json.loads(log_file.read_text())
    model = build_run_model(run)
    assign_arrays(model, load_parts([trained / f for f in train_log["files"]]), str(trained))
    used = train_log["flags"]
    steps = train_log["steps_done"]
    config = TrainConfig.from_json(json.dumps(run["config"])).with_flags(
        workdir=str(workdir), init_from=run["workdir"], init_weights=None, harmonic_phase="all", steps=steps,
        checkpoint_every=math.gcd(steps, run["config"]["checkpoint_every"]), optimizer=used["optimizer"],
        learning_rate=used["learning_rate"], lr_decay_steps=tuple(int(s) for s in used["lr_decay_steps"]),
        lr_decay_factor=used["lr_decay_factor"], harmonic_candidates=used["candidates"],
        harmonic_same_image_weight=used["same_image_weight"], margin=used["margin"],
        identities_per_batch=used["identities_per_batch"], faces_per_identity=used["faces_per_identity"],
        extra_negatives=used["extra_negatives"], seed=used["seed"])
    summary = {"trained_with": TRAINED_WITH, "data": run["data"],
               **{k: v for k, v in train_log.items() if k != "files"}}

    def write(folder: Path) -> None:
        folder.mkdir()
        (folder / "config.json").write_text(config.to_json())
        save_embedding_model(model, folder / "embedding_model.keras")
        (folder / "summary.json").write_text(json.dumps(summary, indent=2))

    write_directory_atomically(workdir, write, overwrite, _unpacked_workdir, "a workdir written by --mode=unpack")
    log(f"{workdir}: {steps} steps, float16 rounding min cosine {train_log['float16_rounding_min_cosine']:.6f}")
    return workdir
