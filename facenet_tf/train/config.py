"""``TrainConfig``: every setting of a training run, frozen, validated once, written as JSON into the workdir.

Flags -> ``TrainConfig`` -> ``facenet_tf.train.loop.train`` (configuration flows one way). Defaults are the
paper's where it gives one (AdaGrad, learning rate 0.05, margin 0.2, 128-D, semi-hard mining, ~40 faces per
identity); ``batch_norm=True`` is ours (the paper's networks predate batch norm; it makes short runs from
scratch train reliably).
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

from facenet_tf.data.tfrecord import is_tfrecord_dir
from facenet_tf.models import get_spec

STRATEGIES = ("semi_hard", "hardest", "batch_all", "random_violating")
FALLBACKS = ("farthest", "hardest", "skip")
REDUCTIONS = ("auto", "mean_over_pairs", "mean_over_active")  # auto: mean over pairs; batch_all: over active
OPTIMIZERS = ("adagrad", "sgd", "momentum", "adam", "rmsprop")
HARMONIC_PHASES = ("embedding_layer", "all")
HARMONIC_OLD_EMBEDDINGS = ("precomputed", "in_step")
HARMONIC_CANDIDATES = ("both", "old", "other")
HARMONIC_ANCHORS = ("new", "both")
HARMONIC_SOLVERS = ("triplet", "least_squares")
FIT_ALIGNMENTS = ("center", "detect", "landmarks")  # facenet_tf.align modes


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    workdir: str
    model: str = "nns2"
    embedding_dim: int = 128
    input_size: tuple[int, int] | None = None  # (height, width); None: the model's paper size
    batch_norm: bool = True
    data_dir: str | None = None                # LFW root, <identity>/*.jpg tree or TFRecord set
    exclude_pairs: tuple[str, ...] = ("view1_test",)
    identities_per_batch: int = 45
    faces_per_identity: int = 40
    extra_negatives: int = 0
    crop_fraction: float = 1.0
    jitter: float = 0.1
    flip: bool = True
    margin: float = 0.2
    strategy: str = "semi_hard"
    fallback: str = "farthest"
    reduction: str = "auto"
    optimizer: str = "adagrad"
    learning_rate: float = 0.05
    lr_decay_steps: tuple[int, ...] = ()       # steps at which the learning rate is multiplied by lr_decay_factor
    lr_decay_factor: float = 0.1
    steps: int = 1000
    checkpoint_every: int = 100
    keep_checkpoints: int = 3
    validation_identities: int = 0             # identities held out of training for validation batches
    validation_steps: int = 2
    seed: int = 0
    mixed_precision: bool = False              # keras mixed_float16: float16 compute, float32 variables and loss
    # Harmonic embeddings (paper appendix; facenet_tf/train/harmonic.py). None: plain triplet training.
    harmonic_with: str | None = None           # old model: zoo name (+ harmonic_weights) or training workdir
    harmonic_weights: str | None = None        # for a zoo name: e.g. 'msceleb'
    harmonic_phase: str = "all"                # embedding_layer: only the final Dense trains; all: whole network
    harmonic_old_embeddings: str = "precomputed"  # precomputed once per image (centre crop) | in_step
    harmonic_candidates: str = "both"          # positives/negatives: both sets | old only | the other model's
    harmonic_anchors: str = "new"              # anchors: the new model's rows | both models' rows
    harmonic_same_image_weight: float = 0.0    # + w * mean D(new_i, old_i) (ours, not the paper's; 0: off)
    harmonic_solver: str = "triplet"           # phase 1: the harmonic loss | least_squares (ours: closed form,
    harmonic_ridge: float = 0.3                # then `steps` of the harmonic loss, 0 allowed); its ridge strength
    harmonic_fit_alignment: str | None = None  # fit (solve and steps) on crops aligned like evaluation's (None: centre)
    harmonic_views: int = 1                    # > 1: fixed augmented views per image, each with its exact old embedding
    init_from: str | None = None               # model initialising this run (harmonic only): workdir | .keras | zoo
    init_weights: str | None = None            # for a zoo init_from: e.g. 'msceleb'

    def __post_init__(self):
        def fail(flag, expected, value):
            raise ValueError(f"--{flag}: expected {expected}, got {value!r}.")

        get_spec(self.model)
        for field in dataclasses.fields(self):  # inf and nan pass the range checks below that compare with >=
            value = getattr(self, field.name)
            if field.type == "float" and not (isinstance(value, (int, float)) and math.isfinite(value)):
                fail(field.name, "a finite number", value)
        if self.strategy not in STRATEGIES:
            fail("strategy", f"one of {STRATEGIES}", self.strategy)
        if self.fallback not in FALLBACKS:
            fail("fallback", f"one of {FALLBACKS}", self.fallback)
        if self.reduction not in REDUCTIONS:
            fail("reduction", f"one of {REDUCTIONS}", self.reduction)
        if self.optimizer not in OPTIMIZERS:
            fail("optimizer", f"one of {OPTIMIZERS}", self.optimizer)
        if self.harmonic_solver not in HARMONIC_SOLVERS:
            fail("harmonic_solver", f"one of {HARMONIC_SOLVERS}", self.harmonic_solver)
        if self.harmonic_solver == "least_squares":
            if self.harmonic_with is None or self.harmonic_phase != "embedding_layer":
                fail("harmonic_solver", "'triplet' unless --harmonic_with is set and --harmonic_phase=embedding_layer "
                     "(least squares solves the final projection only)", self.harmonic_solver)
            if self.harmonic_old_embeddings != "precomputed":
                fail("harmonic_old_embeddings", "precomputed with --harmonic_solver=least_squares",
                     self.harmonic_old_embeddings)
        if self.harmonic_fit_alignment is not None:
            if self.harmonic_fit_alignment not in FIT_ALIGNMENTS:
                fail("harmonic_fit_alignment", f"one of {FIT_ALIGNMENTS} or unset", self.harmonic_fit_alignment)
            if self.harmonic_with is None or self.harmonic_old_embeddings != "precomputed":
                fail("harmonic_fit_alignment", "to be used with --harmonic_with and precomputed old embeddings",
                     self.harmonic_fit_alignment)
        if not (isinstance(self.harmonic_views, int) and self.harmonic_views >= 1):
            fail("harmonic_views", "an integer >= 1", self.harmonic_views)
        if self.harmonic_views > 1 and (self.harmonic_fit_alignment is None or self.harmonic_solver != "triplet"):
            fail("harmonic_views", "1 unless --harmonic_fit_alignment is set and --harmonic_solver=triplet (the views "
                 "are of the aligned crops, for training steps)", self.harmonic_views)
        if not self.harmonic_ridge >= 0:
            fail("harmonic_ridge", "a number >= 0", self.harmonic_ridge)
        if self.steps < (0 if self.harmonic_solver == "least_squares" else 1):
            fail("steps", "a positive integer (0 only with --harmonic_solver=least_squares)", self.steps)
        if self.validation_identities < 0 or self.validation_identities == 1:
            fail("validation_identities", "0 (none) or at least 2 (a validation batch needs two identities)",
                 self.validation_identities)
        for flag in ("checkpoint_every", "embedding_dim", "identities_per_batch", "keep_checkpoints",
                     "validation_steps"):
            if getattr(self, flag) < 1:
                fail(flag, "a positive integer", getattr(self, flag))
        if self.faces_per_identity < 2:
            fail("faces_per_identity", "an integer >= 2", self.faces_per_identity)
        if self.steps % self.checkpoint_every:
            fail("steps", f"a multiple of --checkpoint_every={self.checkpoint_every}", self.steps)
        if not self.learning_rate > 0:
            fail("learning_rate", "a positive number", self.learning_rate)
        if not self.margin >= 0:
            fail("margin", "a number >= 0", self.margin)
        if not self.lr_decay_factor > 0:
            fail("lr_decay_factor", "a positive number", self.lr_decay_factor)
        if list(self.lr_decay_steps) != sorted(set(self.lr_decay_steps)) or any(s < 1 for s in self.lr_decay_steps):
            fail("lr_decay_steps", "increasing positive steps", self.lr_decay_steps)
        if not 0.1 <= self.crop_fraction <= 1.0:
            fail("crop_fraction", "a fraction in [0.1, 1]", self.crop_fraction)
        if not 0 <= self.jitter <= 0.5:
            fail("jitter", "a fraction in [0, 0.5]", self.jitter)
        if self.input_size is not None and len(self.input_size) != 2:
            fail("input_size", "height,width", self.input_size)
        if self.harmonic_phase not in HARMONIC_PHASES:
            fail("harmonic_phase", f"one of {HARMONIC_PHASES}", self.harmonic_phase)
        if self.harmonic_candidates not in HARMONIC_CANDIDATES:
            fail("harmonic_candidates", f"one of {HARMONIC_CANDIDATES}", self.harmonic_candidates)
        if self.harmonic_anchors not in HARMONIC_ANCHORS:
            fail("harmonic_anchors", f"one of {HARMONIC_ANCHORS}", self.harmonic_anchors)
        if not self.harmonic_same_image_weight >= 0:
            fail("harmonic_same_image_weight", "a number >= 0", self.harmonic_same_image_weight)
        if self.harmonic_anchors == "both" and self.harmonic_candidates == "old":
            fail("harmonic_candidates", "'other' or 'both' with --harmonic_anchors=both (old anchors with old "
                 "positives and negatives carry no gradient)", self.harmonic_candidates)
        if self.harmonic_old_embeddings not in HARMONIC_OLD_EMBEDDINGS:
            fail("harmonic_old_embeddings", f"one of {HARMONIC_OLD_EMBEDDINGS}", self.harmonic_old_embeddings)
        if is_tfrecord_dir(self.data_dir):
            if self.validation_identities:
                fail("validation_identities", "0 with a TFRecord --data_dir (validation batches need an image tree)",
                     self.validation_identities)
            if self.harmonic_with is not None and self.harmonic_old_embeddings == "precomputed":
                fail("harmonic_old_embeddings", "in_step with a TFRecord --data_dir (precomputed old embeddings are "
                     "indexed by the files of an image tree)", self.harmonic_old_embeddings)
        if self.harmonic_with is None:
            if self.harmonic_candidates != "both":
                fail("harmonic_candidates", "to be used with --harmonic_with", self.harmonic_candidates)
            if self.harmonic_anchors != "new":
                fail("harmonic_anchors", "to be used with --harmonic_with", self.harmonic_anchors)
            if self.harmonic_same_image_weight:
                fail("harmonic_same_image_weight", "to be used with --harmonic_with", self.harmonic_same_image_weight)
            if self.init_from is not None:
                fail("init_from", "to be used with --harmonic_with", self.init_from)
            if self.harmonic_phase != "all":
                fail("harmonic_phase", "'all' (the default) without --harmonic_with", self.harmonic_phase)
        if self.mixed_precision and self.harmonic_with is not None:
            fail("mixed_precision", "off with --harmonic_with (the old and initial models are loaded float32)",
                 self.mixed_precision)
        if self.init_weights is not None and self.init_from is None:
            fail("init_weights", "to be used with --init_from (a zoo model name)", self.init_weights)
        if self.harmonic_with is not None:
            if self.harmonic_phase == "embedding_layer" and self.init_from is None:
                fail("init_from", "the workdir of an independently trained new model with "
                     "--harmonic_phase=embedding_layer", self.init_from)
            if self.strategy == "batch_all":
                fail("strategy", "semi_hard, hardest or random_violating with --harmonic_with", self.strategy)
            if self.validation_identities:
                fail("validation_identities", "0 with --harmonic_with", self.validation_identities)

    @property
    def image_size(self) -> tuple[int, int]:
        if self.input_size is not None:
            return tuple(self.input_size)
        return get_spec(self.model).input_shape[:2]

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "TrainConfig":
        raw = json.loads(text)
        for key in ("input_size", "exclude_pairs", "lr_decay_steps"):
            if raw.get(key) is not None:
                raw[key] = tuple(raw[key])
        return cls(**raw)

    @classmethod
    def load(cls, workdir: str | Path) -> "TrainConfig":
        path = Path(workdir) / "config.json"
        if not path.is_file():
            raise FileNotFoundError(f"'{path}' not found: not a training workdir.")
        return cls.from_json(path.read_text())
