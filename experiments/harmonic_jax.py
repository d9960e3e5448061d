"""Harmonic phase 2 (the whole new network) on a GPU machine that has JAX but no TensorFlow.

Three modes; ``pack`` and ``unpack`` run here (TensorFlow: ``facenet_tf.harmonic.packing``), ``train`` runs there
(``KERAS_BACKEND=jax``, no TensorFlow import: ``facenet_tf.harmonic.jax_runner``, which says how the training
matches ``experiments/train.py --harmonic_phase=all`` and where it differs):

    # 1. stage the data of phase-1 runs: training crops (JPEG), labels, precomputed old embeddings, initial weights
    .venv/bin/python experiments/harmonic_jax.py --mode=pack --runs=A=runs/v2A_flip_p1,B=runs/v2B_flip_p1 \\
        --stage_dir=.device_stage
    # 2. on the GPU machine (pip install "jax[cuda12]" keras==3.15.1 numpy opencv-python-headless absl-py h5py;
    #    no TensorFlow), for each run (KERAS_BACKEND defaults to jax in this mode)
    KERAS_BACKEND=jax python3 experiments/harmonic_jax.py --mode=train --stage_dir=.device_stage --run=A \\
        --steps=2000 --output_dir=$OUT/A
    # 3. back here: a training workdir that harmonic_report.py / eval_lfw.py read like any other
    .venv/bin/python experiments/harmonic_jax.py --mode=unpack --stage_dir=.device_stage --run=A \\
        --trained_dir=<files of step 2> --workdir=runs/v2A_flip_p2_gpu
"""

from __future__ import annotations

import os
import sys
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
flags.DEFINE_bool("overwrite", False, "unpack: replace --workdir when it is an earlier output of --mode=unpack.")


def log(text: str) -> None:
    print(text, flush=True)


def pack() -> None:
    from facenet_tf import paths
    from facenet_tf.harmonic.packing import pack as pack_runs

    runs = {}
    for item in F.runs:
        name, _, workdir = item.partition("=")
        if not name or not workdir:
            raise ValueError(f"--runs: '{item}' is not NAME=workdir.")
        runs[name] = workdir
    pack_runs(runs, F.stage_dir, F.jpeg_quality, F.image_parts, log, lfw_root=paths.lfw_dir(required=False))


def train() -> None:
    os.environ.setdefault("KERAS_BACKEND", "jax")  # before Keras is first imported (a value the user set wins)
    from facenet_tf.harmonic.jax_runner import PhaseTwoSettings, run_phase_two

    if not (F.run or F.synthetic) or not F.output_dir:
        raise ValueError("--mode=train needs --run (or --synthetic) and --output_dir.")
    settings = PhaseTwoSettings(
        steps=F.steps, optimizer=F.optimizer, learning_rate=F.learning_rate,
        lr_decay_steps=tuple(int(s) for s in F.lr_decay_steps), lr_decay_factor=F.lr_decay_factor,
        candidates=F.candidates, same_image_weight=F.same_image_weight, margin=F.margin,
        identities_per_batch=F.identities_per_batch, faces_per_identity=F.faces_per_identity,
        extra_negatives=F.extra_negatives, seed=F.seed, time_budget_s=F.time_budget_s, log_every=F.log_every)
    run_phase_two(settings, F.output_dir, F.stage_dir, None if F.synthetic else F.run,
                  F.model if F.synthetic else None, log)


def unpack() -> None:
    from facenet_tf.harmonic.packing import unpack as unpack_run

    if not (F.run and F.trained_dir and F.workdir):
        raise ValueError("--mode=unpack needs --run, --trained_dir and --workdir.")
    unpack_run(F.stage_dir, F.run, F.trained_dir, F.workdir, log, overwrite=F.overwrite)


def main(argv):
    del argv
    try:
        {"pack": pack, "train": train, "unpack": unpack}[F.mode]()
    except (ValueError, FileNotFoundError, FileExistsError) as error:
        raise app.UsageError(str(error)) from None


if __name__ == "__main__":
    flags.mark_flag_as_required("mode")
    app.run(main)
