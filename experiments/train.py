"""Trains a zoo model with the triplet loss and online mining, or offline selection (``--offline_every``,
``--strategy=offline``) (paper, "Triplet loss and selection").

    .venv/bin/python experiments/train.py --model=nns2 --workdir=runs/nns2 --steps=600 \
        --identities_per_batch=30 --faces_per_identity=6 --extra_negatives=20

Running the same command again resumes from the latest checkpoint (also after kill -9). Multi-worker: set
TF_CONFIG on every worker and pass --distribute=multi_worker (see README, "Training on several machines").

Expected failures end with one line on stderr, ``train.py: error: <message>`` (naming the flag, file or step), and
exit status 2 for bad flags, 1 otherwise (missing data, a diverged run, a full disk); never a traceback.
"""

import os
import sys
from pathlib import Path
from typing import NoReturn

os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags, logging  # noqa: E402

F = flags.FLAGS
flags.DEFINE_string("workdir", None, "Run directory (config, checkpoints, logs, final model). Required.")
flags.DEFINE_string("model", "nns2", "Zoo model name.")
flags.DEFINE_integer("embedding_dim", 128, "Embedding size (paper: 128).")
flags.DEFINE_list("input_size", None, "height,width (default: the model's paper input size).")
flags.DEFINE_bool("batch_norm", True, "Batch norm after each conv (the paper's nets have none; easier training).")
flags.DEFINE_string("data_dir", None, "LFW root, any <identity>/*.jpg tree, a TFRecord set written by "
                    "experiments/make_tfrecords.py, or tfds:NAME/SPLIT, a prepared tensorflow-datasets split with an "
                    "image and an identity label, e.g. tfds:lfw_local/train_view1 (facenet_tf/data/tfds_source.py) "
                    "(default: $FACENET_TF_LFW_DIR, then ../shared/data/lfw).")
flags.DEFINE_string("tfds_data_dir", None, "With --data_dir=tfds:NAME/SPLIT: where the prepared dataset is (default: "
                    "$TFDS_DATA_DIR, then ~/tensorflow_datasets); never downloaded.")
flags.DEFINE_string("tfds_image_feature", None, "With --data_dir=tfds:...: the image feature, when the dataset has "
                    "several (default: the only Image feature, else the supervised input).")
flags.DEFINE_string("tfds_label_feature", None, "With --data_dir=tfds:...: the identity feature, a ClassLabel, integer "
                    "or text feature (default: the supervised target, else the only ClassLabel, else the only "
                    "label-like feature). --exclude_pairs matches ClassLabel names or text labels.")
flags.DEFINE_list("exclude_pairs", ["view1_test"], "Pairs files whose identities are never trained on: "
                  "view1_train, view1_test, view2 or paths. Empty to train on everything.")
flags.DEFINE_float("identity_fraction", 1.0, "Train on this share of the identities left after --exclude_pairs: "
                   "a subset drawn from --seed, nested (a smaller share's identities are inside a larger one's; "
                   "paper Table 6: training-set size). 1: all.")
flags.DEFINE_integer("identities_per_batch", 45, "P: identities per batch.")
flags.DEFINE_integer("faces_per_identity", 40, "K: faces per identity (paper: ~40).")
flags.DEFINE_integer("extra_negatives", 0, "R: random faces of other identities added as negatives.")
flags.DEFINE_bool("complete_groups", False, "Draw the P identity groups only from identities with >= K images, so "
                  "every group is K faces (off: a short identity gives all its images and more identities fill the "
                  "slots; on LFW a nominal 15x12 batch then holds ~46 identities of ~4 faces).")
flags.DEFINE_float("crop_fraction", 1.0, "Centred crop (fraction of the shorter side) taken before resizing.")
flags.DEFINE_float("jitter", 0.1, "Random-crop augmentation: load at (1+jitter) x input size, crop back.")
flags.DEFINE_bool("flip", True, "Random horizontal flips.")
flags.DEFINE_float("margin", 0.2, "Triplet margin alpha (paper: 0.2).")
flags.DEFINE_enum("strategy", "semi_hard", ["semi_hard", "hardest", "batch_all", "random_violating", "offline"],
                  "Mining inside each batch; offline: none, each batch is the triplets of the offline selection as "
                  "they are (needs --offline_every).")
flags.DEFINE_integer("offline_every", 0, "Offline triplet selection (paper): every N steps the latest weights embed "
                     "--offline_subset training images and each anchor gets its hard positive (argmax D(a,p)) and a "
                     "--offline_negative; the next N steps train on (P*K+R)//3 of those triplets per batch, mined online "
                     "again by --strategy unless --strategy=offline. 0: off (batches of P identities x K faces + R).")
flags.DEFINE_integer("offline_subset", 0, "With --offline_every: images embedded per selection (at least a batch, "
                     "P*K+R), drawn like a batch (K faces per identity, the same share of extra negatives) from the "
                     "seed and the step.")
flags.DEFINE_enum("offline_negative", "semi_hard", ["semi_hard", "hardest"], "With --offline_every: each anchor's "
                  "negative: semi_hard, the closest one farther than its hard positive (else --fallback), or hardest, "
                  "argmin D(a,n).")
flags.DEFINE_enum("fallback", "farthest", ["farthest", "hardest", "skip"], "Semi-hard: pairs with no semi-hard "
                  "negative use the farthest / hardest negative, or are skipped.")
flags.DEFINE_enum("reduction", "auto", ["auto", "mean_over_pairs", "mean_over_active"], "Loss averaging (auto: "
                  "over all anchor-positive pairs; batch_all: over active triplets).")
flags.DEFINE_enum("optimizer", "adagrad", ["adagrad", "sgd", "momentum", "adam", "rmsprop"], "Paper: AdaGrad.")
flags.DEFINE_float("learning_rate", 0.05, "Paper: 0.05.")
flags.DEFINE_list("lr_decay_steps", [], "Steps at which the learning rate is multiplied by --lr_decay_factor.")
flags.DEFINE_float("lr_decay_factor", 0.1, "Learning-rate multiplier at each --lr_decay_steps step.")
flags.DEFINE_integer("steps", 1000, "Total training steps (a multiple of --checkpoint_every).")
flags.DEFINE_integer("checkpoint_every", 100, "Steps between checkpoints (and progress-bar epochs).")
flags.DEFINE_integer("validation_identities", 0, "Identities held out of training for validation batches.")
flags.DEFINE_integer("seed", 0, "Seed of the data order, augmentation and weights.")
flags.DEFINE_bool("mixed_precision", False, "keras mixed_float16 policy: float16 compute, float32 variables; "
                  "embeddings, distances and the loss in float32, the loss scaled dynamically (for GPUs with tensor "
                  "cores; on CPU it is slower). Not with --harmonic_with.")
flags.DEFINE_enum("distribute", "none", ["none", "mirrored", "multi_worker"], "tf.distribute strategy.")
flags.DEFINE_string("config", None, "A named configuration from experiments/configs.py; explicit flags override it.")
flags.DEFINE_bool("quick", False, "With --config: its quick (smoke-test) variant.")
flags.DEFINE_string("harmonic_with", None, "Harmonic embeddings (paper appendix): the fixed old model, a zoo name "
                    "(with --harmonic_weights) or a training workdir. Unset: plain triplet training.")
flags.DEFINE_string("harmonic_weights", None, "For a zoo --harmonic_with: its weights, e.g. 'msceleb'.")
flags.DEFINE_enum("harmonic_phase", "all", ["embedding_layer", "all"], "embedding_layer: train only the final "
                  "Dense ('embedding_fc', re-initialised) of the --init_from model; all: the whole network.")
flags.DEFINE_enum("harmonic_old_embeddings", "precomputed", ["precomputed", "in_step"], "Old embeddings computed "
                  "once per training image (centre crop, cached) or by the old model inside every step.")
flags.DEFINE_enum("harmonic_candidates", "both", ["both", "old", "other"], "Positives and negatives of each "
                  "anchor: from both models' embeddings, from the old model's only (every triplet new-old-old), or "
                  "from the other model than the anchor's (with --harmonic_anchors=both: new-old-old and old-new-new).")
flags.DEFINE_enum("harmonic_anchors", "new", ["new", "both"], "Anchors of the harmonic loss: the new model's "
                  "embeddings only, or the old model's too.")
flags.DEFINE_float("harmonic_same_image_weight", 0.0, "Adds w * mean D(new_i, old_i) to the harmonic loss (ours, "
                   "not in the paper): pulls each image's new embedding onto its old one. 0: the paper's loss.",
                   lower_bound=0.0)
flags.DEFINE_enum("harmonic_solver", "triplet", ["triplet", "least_squares"], "Phase 1 "
                  "(--harmonic_phase=embedding_layer): train the final projection with the harmonic loss (paper) or "
                  "solve it in closed form, ridge regression onto the precomputed old embeddings (ours); --steps then "
                  "counts harmonic-loss steps after the solve (0: none).")
flags.DEFINE_float("harmonic_ridge", 0.3, "--harmonic_solver=least_squares: ridge strength relative to the "
                   "standardised features' Gram diagonal (0.3: selected on LFW View 1, results/harmonic_view2.md).")
flags.DEFINE_enum("harmonic_fit_alignment", None, ["center", "detect", "landmarks"], "With --harmonic_with: "
                  "fit the new model (the least-squares solve and the training steps) on the training images aligned "
                  "as evaluation aligns them (facenet_tf.align; each model at its own input size; the old embeddings "
                  "are of the old model's aligned crops) instead of the training pipeline's centre crops.")
flags.DEFINE_integer("harmonic_views", 1, "With --harmonic_fit_alignment: the old model embeds this many fixed "
                     "views of each training image (view 0 the aligned crop, view 1 its mirror with --flip, the others "
                     "a zoom-in of up to --jitter, a shift of up to --jitter/2 and, with --flip, a mirror at random) "
                     "and each training step shows the new model one view per image with that view's old embedding: "
                     "exact targets for augmented inputs. 1: the old embedding of the plain crop for every "
                     "augmentation.", lower_bound=1)
flags.DEFINE_string("init_from", None, "With --harmonic_with: the trained new model to start from: a training "
                    "workdir, a .keras file or a zoo name (with --init_weights).")
flags.DEFINE_string("init_weights", None, "For a zoo --init_from: its weights, e.g. 'msceleb'.")
flags.mark_flag_as_required("workdir")

PROG = Path(__file__).name


def fail(error: BaseException | str, status: int) -> NoReturn:
    """Ends the run with ``train.py: error: <message>`` on one line of stderr and ``status``."""
    message = " ".join(str(error).split())  # one line, even for messages that quote a multi-line cause
    print(f"{PROG}: error: {message}", file=sys.stderr, flush=True)
    sys.exit(status)


def apply_config(name: str | None, quick: bool) -> None:
    """Sets every flag of the named config that was not given on the command line."""
    if name is None:
        if quick:
            raise ValueError("--quick needs --config.")
        return
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from configs import CONFIGS

    if name not in CONFIGS:
        raise ValueError(f"--config: unknown '{name}'; known: {', '.join(CONFIGS)}.")
    values = dict(CONFIGS[name])
    quick_values = values.pop("quick", {})
    if quick:
        values.update(quick_values)
    for key, value in values.items():
        if not F[key].present:
            F[key].value = value


def main(argv):
    del argv
    import keras
    import tensorflow as tf

    from facenet_tf import paths
    from facenet_tf.data.tfds_source import is_tfds_source
    from facenet_tf.harmonic.training import train
    from facenet_tf.train import TrainConfig, TrainingDiverged
    from facenet_tf.train.distribute import make_strategy

    try:
        apply_config(F.config, F.quick)
        keras.utils.set_random_seed(F.seed)
        # a tfds split's data dir, resolved once (as tfds resolves it) and kept in config.json
        tfds_data_dir = str(paths.tfds_data_dir(F.tfds_data_dir)) if is_tfds_source(F.data_dir) else F.tfds_data_dir
        config = TrainConfig.from_flags(
            workdir=F.workdir, model=F.model, embedding_dim=F.embedding_dim,
            input_size=tuple(int(v) for v in F.input_size) if F.input_size else None, batch_norm=F.batch_norm,
            data_dir=F.data_dir, tfds_data_dir=tfds_data_dir, tfds_image_feature=F.tfds_image_feature,
            tfds_label_feature=F.tfds_label_feature, exclude_pairs=tuple(F.exclude_pairs),
            identities_per_batch=F.identities_per_batch,
            faces_per_identity=F.faces_per_identity, extra_negatives=F.extra_negatives,
            identity_fraction=F.identity_fraction, complete_groups=F.complete_groups,
            crop_fraction=F.crop_fraction, jitter=F.jitter, flip=F.flip, margin=F.margin, strategy=F.strategy,
            fallback=F.fallback, reduction=F.reduction, optimizer=F.optimizer, learning_rate=F.learning_rate,
            lr_decay_steps=tuple(int(v) for v in F.lr_decay_steps), lr_decay_factor=F.lr_decay_factor,
            steps=F.steps, checkpoint_every=F.checkpoint_every, validation_identities=F.validation_identities,
            seed=F.seed, mixed_precision=F.mixed_precision, offline_every=F.offline_every,
            offline_subset=F.offline_subset, offline_negative=F.offline_negative, harmonic_with=F.harmonic_with,
            harmonic_weights=F.harmonic_weights,
            harmonic_phase=F.harmonic_phase, harmonic_old_embeddings=F.harmonic_old_embeddings,
            harmonic_candidates=F.harmonic_candidates, harmonic_anchors=F.harmonic_anchors,
            harmonic_same_image_weight=F.harmonic_same_image_weight,
            harmonic_solver=F.harmonic_solver, harmonic_ridge=F.harmonic_ridge,
            harmonic_fit_alignment=F.harmonic_fit_alignment, harmonic_views=F.harmonic_views,
            init_from=F.init_from, init_weights=F.init_weights)
    except ValueError as error:
        fail(error, 2)
    try:
        # the LFW root, resolved once: the image tree without --data_dir, and what --exclude_pairs names resolve
        # against with a TFRecord or tfds --data_dir
        summary = train(config, strategy=make_strategy(F.distribute), lfw_root=paths.lfw_dir(required=False))
    except (ValueError, OSError, TrainingDiverged, tf.errors.OpError) as error:
        # OSError: FileNotFoundError (data, pairs files), a read-only --workdir, a full disk (CheckpointWriteError)
        fail(getattr(error, "message", None) or error, 1)
    logging.info("Done: step %d, workdir %s", summary["end_step"], summary["workdir"])


if __name__ == "__main__":
    app.run(main)
