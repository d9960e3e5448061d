"""The files that carry harmonic phase 2 to a GPU machine with JAX and no TensorFlow, and back (no TensorFlow
import here: ``jax_runner`` reads them there).

A stage folder holds ``manifest.json`` (the runs: labels, sizes, configs, the files of each), ``images_<k>.npz``
(training crops as JPEG bytes, ``--image_parts`` files), ``old_<run>.npy`` (precomputed old embeddings) and the
initial weights in ``.npz`` parts of at most ``PART_BYTES`` (``weights_base_<k>``: arrays equal in every run;
``weights_<run>_<k>``: the others); the trained weights come back the same way (``trained_<k>.npz``). Arrays of
``FP16_MIN_SIZE`` values or more travel as float16, the smaller ones (biases, batch-norm statistics) as float32.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
from pathlib import Path

import cv2
import numpy as np

from facenet_tf.models import create_model

FP16_MIN_SIZE = 4096
PART_BYTES = 15 * 2**20


def weights_to_arrays(model, keys=None) -> dict:
    """{variable path: array} of ``model``'s weights, large arrays as float16 (``keys``: only those)."""
    out = {}
    for variable in model.weights:
        if keys is not None and variable.path not in keys:
            continue
        value = np.asarray(variable.numpy() if hasattr(variable, "numpy") else variable.value, np.float32)
        out[variable.path] = value.astype(np.float16) if value.size >= FP16_MIN_SIZE else value
    return out


def save_parts(arrays: dict, folder: Path, prefix: str) -> list[str]:
    """Writes ``arrays`` into ``prefix_<k>.npz`` files of at most ~PART_BYTES each; returns the file names."""
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
    tmp = Path(folder) / f".{name}.tmp.npz"
    np.savez(tmp, **{key.replace("/", "|"): value for key, value in arrays.items()})
    os.replace(tmp, Path(folder) / name)
    return name


def load_parts(files) -> dict:
    arrays = {}
    for file in files:
        with np.load(file, allow_pickle=False) as data:
            arrays.update({key.replace("|", "/"): data[key] for key in data.files})
    return arrays


def assign_arrays(model, arrays: dict, source: str) -> None:
    """Sets every weight of ``model`` from ``arrays`` (float32); errors name the missing or mis-shaped weight."""
    missing = [v.path for v in model.weights if v.path not in arrays]
    if missing:
        raise ValueError(f"{source}: no value for {len(missing)} weights of the model, e.g. {missing[:3]}")
    for variable in model.weights:
        value = arrays[variable.path]
        if tuple(value.shape) != tuple(variable.shape):
            raise ValueError(f"{source}: '{variable.path}' has shape {value.shape}, the model {variable.shape}")
        variable.assign(value.astype(np.float32))


def read_manifest(stage: Path, run: str | None = None) -> tuple[dict, dict | None]:
    """``(manifest, the entry of run)`` of a stage folder; errors name the folder (``--stage_dir``) or ``--run``."""
    file = Path(stage) / "manifest.json"
    if not file.is_file():
        raise FileNotFoundError(f"--stage_dir: '{file}' not found: not a folder written by --mode=pack.")
    manifest = json.loads(file.read_text())
    if run is not None and run not in manifest["runs"]:
        raise ValueError(f"--run={run}: the stage has runs {sorted(manifest['runs'])}.")
    return manifest, None if run is None else manifest["runs"][run]


def build_run_model(run: dict):
    """The zoo network of a staged run at its input size (random weights: ``assign_arrays`` sets them)."""
    h, w = run["image_size"]
    return create_model(run["model_config"]["zoo"], embedding_dim=run["config"]["embedding_dim"],
                        input_shape=(h, w, 3), batch_norm=run["model_config"].get("batch_norm", True))


def decode_images(stage: Path, manifest: dict, ids) -> np.ndarray:
    """uint8 (len(ids), h, w, 3) RGB training crops at the load size, decoded and resized as ``load_face``."""
    h, w = manifest["load_size"]
    wanted = {int(i): k for k, i in enumerate(ids)}
    out = np.zeros((len(ids), h, w, 3), np.uint8)
    jobs = []
    for name in manifest["images"]:
        file = Path(stage) / name
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


def augment_batch(images, seed: int, step: int, size: tuple[int, int]) -> np.ndarray:
    """Random whole-pixel crop of ``size`` and random horizontal flip per image; float32 0-255."""
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
