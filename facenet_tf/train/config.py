"""``TrainConfig``: every setting of a training run, frozen, validated once, written as JSON into the workdir.

Flags -> ``TrainConfig`` (``TrainConfig.from_flags``) -> ``facenet_tf.train.loop.train`` (configuration flows one
way). The harmonic settings are one nested ``HarmonicConfig`` (None: plain training), which ``facenet_tf.harmonic``
acts on through ``loop.train``'s hook; a flat ``config.json`` of earlier versions (``harmonic_*`` keys) still reads.
Defaults are the paper's where it gives one (AdaGrad, learning rate 0.05, margin 0.2, 128-D, semi-hard mining, ~40
faces per identity); ``batch_norm=True`` is ours (the paper's networks predate batch norm; it makes short runs from
scratch train reliably).
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

from facenet_tf.data.tfds_source import is_tfds_source
from facenet_tf.data.tfrecord import is_tfrecord_dir
from facenet_tf.models import get_spec

STRATEGIES = ("semi_hard", "hardest", "batch_all", "random_violating", "offline")  # offline: no online mining
OFFLINE_NEGATIVES = ("semi_hard", "hardest")  # facenet_tf.losses.offline.NEGATIVES
FALLBACKS = ("farthest", "hardest", "skip")
REDUCTIONS = ("auto", "mean_over_pairs", "mean_over_active")  # auto: mean over pairs; batch_all: over active
OPTIMIZERS = ("adagrad", "sgd", "momentum", "adam", "rmsprop")
HARMONIC_PHASES = ("embedding_layer", "all")
HARMONIC_OLD_EMBEDDINGS = ("precomputed", "in_step")
HARMONIC_CANDIDATES = ("both", "old", "other")
HARMONIC_ANCHORS = ("new", "both")
HARMONIC_SOLVERS = ("triplet", "least_squares")
FIT_ALIGNMENTS = ("center", "detect", "landmarks")  # facenet_tf.align modes


def _fail(flag, expected, value):
    raise ValueError(f"--{flag}: expected {expected}, got {value!r}.")


def _check_finite(config) -> None:
    """Every float field of a config dataclass is finite (inf and nan pass range checks that compare with >=)."""
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        if field.type == "float" and not (isinstance(value, (int, float)) and math.isfinite(value)):
            _fail(flag_of(field.name) if isinstance(config, HarmonicConfig) else field.name, "a finite number",
                  value)


@dataclasses.dataclass(frozen=True)
class HarmonicConfig:
    """The harmonic settings of a run (paper appendix; ``facenet_tf.harmonic``): a new model trained against the
    fixed ``old_model``. Each field is a flag of experiments/train.py (``flag_of``: ``old_model`` is
    ``--harmonic_with``, ``init_from`` / ``init_weights`` keep their names, the rest are ``--harmonic_<field>``)."""

    old_model: str                       # zoo name (+ old_weights) or training workdir / .keras
    old_weights: str | None = None       # for a zoo name: e.g. 'msceleb'
    phase: str = "all"                   # embedding_layer: only the final projection trains; all: whole network
    old_embeddings: str = "precomputed"  # precomputed once per image (centre crop) | in_step
    candidates: str = "both"             # positives/negatives: both sets | old only | the other model's
    anchors: str = "new"                 # anchors: the new model's rows | both models' rows
    same_image_weight: float = 0.0       # + w * mean D(new_i, old_i) (ours, not the paper's; 0: off)
    solver: str = "triplet"              # phase 1: the harmonic loss | least_squares (ours: closed form,
    ridge: float = 0.3                   # then `steps` of the harmonic loss, 0 allowed); its ridge strength
    fit_alignment: str | None = None     # fit (solve and steps) on crops aligned like evaluation's (None: centre)
    views: int = 1                       # > 1: fixed augmented views per image, each with its exact old embedding
    init_from: str | None = None         # model initialising this run: workdir | .keras | zoo
    init_weights: str | None = None      # for a zoo init_from: e.g. 'msceleb'

    def __post_init__(self):
        fail = lambda field, expected: _fail(flag_of(field), expected, getattr(self, field))  # noqa: E731
        if not (isinstance(self.old_model, str) and self.old_model):
            fail("old_model", "a model (zoo name, training workdir or .keras file)")
        _check_finite(self)
        if self.solver not in HARMONIC_SOLVERS:
            fail("solver", f"one of {HARMONIC_SOLVERS}")
        if self.solver == "least_squares":
            if self.phase != "embedding_layer":
                fail("solver", "'triplet' unless --harmonic_with is set and --harmonic_phase=embedding_layer "
                     "(least squares solves the final projection only)")
            if self.old_embeddings != "precomputed":
                fail("old_embeddings", "precomputed with --harmonic_solver=least_squares")
        if self.fit_alignment is not None:
            if self.fit_alignment not in FIT_ALIGNMENTS:
                fail("fit_alignment", f"one of {FIT_ALIGNMENTS} or unset")
            if self.old_embeddings != "precomputed":
                fail("fit_alignment", "to be used with --harmonic_with and precomputed old embeddings")
        if not (isinstance(self.views, int) and self.views >= 1):
            fail("views", "an integer >= 1")
        if self.views > 1 and (self.fit_alignment is None or self.solver != "triplet"):
            fail("views", "1 unless --harmonic_fit_alignment is set and --harmonic_solver=triplet (the views are of "
                 "the aligned crops, for training steps)")
        if not self.ridge >= 0:
            fail("ridge", "a number >= 0")
        if self.phase not in HARMONIC_PHASES:
            fail("phase", f"one of {HARMONIC_PHASES}")
        if self.candidates not in HARMONIC_CANDIDATES:
            fail("candidates", f"one of {HARMONIC_CANDIDATES}")
        if self.anchors not in HARMONIC_ANCHORS:
            fail("anchors", f"one of {HARMONIC_ANCHORS}")
        if not self.same_image_weight >= 0:
            fail("same_image_weight", "a number >= 0")
        if self.anchors == "both" and self.candidates == "old":
            fail("candidates", "'other' or 'both' with --harmonic_anchors=both (old anchors with old positives and "
                 "negatives carry no gradient)")
        if self.old_embeddings not in HARMONIC_OLD_EMBEDDINGS:
            fail("old_embeddings", f"one of {HARMONIC_OLD_EMBEDDINGS}")
        if self.init_weights is not None and self.init_from is None:
            fail("init_weights", "to be used with --init_from (a zoo model name)")
        if self.phase == "embedding_layer" and self.init_from is None:
            fail("init_from", "the workdir of an independently trained new model with --harmonic_phase=embedding_layer")

    @classmethod
    def from_flags(cls, values: dict) -> "HarmonicConfig | None":
        """The harmonic settings of flag-named ``values`` (``harmonic_with``, ``harmonic_phase``, ..., ``init_from``,
        ``init_weights``; absent ones take their defaults): None without ``harmonic_with``, where every other of
        them must keep its default (``harmonic_weights`` alone is ignored: it only qualifies ``harmonic_with``)."""
        fields = {name: values[flag] for name, flag in HARMONIC_FLAGS.items() if flag in values}
        if fields.get("old_model") is not None:
            return cls(**fields)
        defaults = {f.name: f.default for f in dataclasses.fields(cls)}
        for name in ("init_weights", "init_from", "phase", "same_image_weight", "anchors", "candidates", "solver",
                     "fit_alignment", "views", "ridge", "old_embeddings"):
            if name in fields and fields[name] != defaults[name]:
                if name == "init_weights" and fields.get("init_from") is None:
                    _fail("init_weights", "to be used with --init_from (a zoo model name)", fields[name])
                _fail(flag_of(name), "to be used with --harmonic_with", fields[name])
        return None


#: HarmonicConfig field -> the experiments/train.py flag (and the key of a flat config.json written before the
#: settings were nested) that sets it.
HARMONIC_FLAGS = {f.name: {"old_model": "harmonic_with", "old_weights": "harmonic_weights", "init_from": "init_from",
                           "init_weights": "init_weights"}.get(f.name, f"harmonic_{f.name}")
                  for f in dataclasses.fields(HarmonicConfig)}


def flag_of(field: str) -> str:
    """The flag of a ``HarmonicConfig`` field (``old_model`` -> ``harmonic_with``)."""
    return HARMONIC_FLAGS[field]


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    workdir: str
    model: str = "nns2"
    embedding_dim: int = 128
    input_size: tuple[int, int] | None = None  # (height, width); None: the model's paper size
    batch_norm: bool = True
    data_dir: str | None = None                # LFW root, <identity>/*.jpg tree, TFRecord set or tfds:NAME/SPLIT
    # With data_dir tfds:NAME/SPLIT (facenet_tf.data.tfds_source): where the prepared dataset is (the command
    # resolves it: --tfds_data_dir, $TFDS_DATA_DIR, ~/tensorflow_datasets) and, when ambiguous, its features.
    tfds_data_dir: str | None = None
    tfds_image_feature: str | None = None
    tfds_label_feature: str | None = None
    exclude_pairs: tuple[str, ...] = ("view1_test",)
    identity_fraction: float = 1.0             # train on this seeded, nested share of the identities (Table 6)
    identities_per_batch: int = 45
    faces_per_identity: int = 40
    extra_negatives: int = 0
    complete_groups: bool = False              # the P groups only from identities with >= K images (exactly K)
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
    # Offline triplet selection (paper: every n steps, argmin/argmax on a subset with the latest weights;
    # facenet_tf.train.offline). 0: off. With strategy="offline" each batch is the selected triplets as they are;
    # with an online strategy the selected triplets' images form the batch, mined online as usual.
    offline_every: int = 0                     # steps between selections
    offline_subset: int = 0                    # images embedded per selection (at least a batch)
    offline_negative: str = "semi_hard"        # semi_hard (fallback as online) | hardest (argmin D(a, n))
    # Harmonic embeddings (paper appendix; facenet_tf/harmonic/). None: plain triplet training.
    harmonic: HarmonicConfig | None = None

    def __post_init__(self):
        fail = _fail
        get_spec(self.model)
        _check_finite(self)
        harmonic = self.harmonic
        if harmonic is not None and not isinstance(harmonic, HarmonicConfig):
            fail("harmonic_with", "a HarmonicConfig (facenet_tf.train.config)", harmonic)
        if self.strategy not in STRATEGIES:
            fail("strategy", f"one of {STRATEGIES}", self.strategy)
        if self.fallback not in FALLBACKS:
            fail("fallback", f"one of {FALLBACKS}", self.fallback)
        if self.reduction not in REDUCTIONS:
            fail("reduction", f"one of {REDUCTIONS}", self.reduction)
        if self.optimizer not in OPTIMIZERS:
            fail("optimizer", f"one of {OPTIMIZERS}", self.optimizer)
        least_squares = harmonic is not None and harmonic.solver == "least_squares"
        if self.steps < (0 if least_squares else 1):
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
        self._check_offline()
        self._check_identity_choice()
        if not is_tfds_source(self.data_dir):
            for flag in ("tfds_data_dir", "tfds_image_feature", "tfds_label_feature"):
                if getattr(self, flag) is not None:
                    fail(flag, "to be used with --data_dir=tfds:NAME/SPLIT", getattr(self, flag))
        if self.streamed:
            if self.validation_identities:
                fail("validation_identities", "0 with a TFRecord or tfds --data_dir (validation batches need an "
                     "image tree)", self.validation_identities)
            if harmonic is not None and harmonic.old_embeddings == "precomputed":
                fail("harmonic_old_embeddings", "in_step with a TFRecord or tfds --data_dir (precomputed old "
                     "embeddings are indexed by the files of an image tree)", harmonic.old_embeddings)
        if harmonic is not None:
            if self.mixed_precision:
                fail("mixed_precision", "off with --harmonic_with (the old and initial models are loaded float32)",
                     self.mixed_precision)
            if self.strategy == "batch_all":
                fail("strategy", "semi_hard, hardest or random_violating with --harmonic_with", self.strategy)
            if self.validation_identities:
                fail("validation_identities", "0 with --harmonic_with", self.validation_identities)

    def _check_offline(self) -> None:
        """The offline-selection settings: all at their defaults when off, consistent with the rest when on."""
        if not isinstance(self.offline_every, int) or self.offline_every < 0:
            _fail("offline_every", "0 (off) or a positive number of steps", self.offline_every)
        if self.offline_negative not in OFFLINE_NEGATIVES:
            _fail("offline_negative", f"one of {OFFLINE_NEGATIVES}", self.offline_negative)
        if not self.offline_every:
            if self.strategy == "offline":
                _fail("offline_every", "a positive number of steps with --strategy=offline", self.offline_every)
            if self.offline_subset:
                _fail("offline_subset", "0 unless --offline_every is set", self.offline_subset)
            if self.offline_negative != "semi_hard":
                _fail("offline_negative", "semi_hard (the default) unless --offline_every is set",
                      self.offline_negative)
            return
        batch = self.identities_per_batch * self.faces_per_identity + self.extra_negatives
        if batch < 3:
            _fail("offline_every", f"0 with a batch of {batch} images (P*K+R): a batch of triplets needs 3",
                  self.offline_every)
        if not isinstance(self.offline_subset, int) or self.offline_subset < batch:
            _fail("offline_subset", f"at least the batch size P*K+R = {batch} images with --offline_every",
                  self.offline_subset)
        if self.streamed:
            _fail("offline_every", "0 with a TFRecord or tfds --data_dir (the offline subset is drawn from an image "
                  "tree)", self.offline_every)
        if self.harmonic is not None:
            _fail("offline_every", "0 with --harmonic_with", self.offline_every)

    @property
    def streamed(self) -> bool:
        """Whether the data is a TFRecord set or a tfds split (streamed by their readers) rather than an image
        tree."""
        return is_tfrecord_dir(self.data_dir) or is_tfds_source(self.data_dir)

    def _check_identity_choice(self) -> None:
        """``identity_fraction`` and ``complete_groups`` choose among the identities of an image tree."""
        if not 0 < self.identity_fraction <= 1:
            _fail("identity_fraction", "a fraction in (0, 1]", self.identity_fraction)
        if self.complete_groups and self.offline_every:
            _fail("complete_groups", "off with --offline_every (each batch is the offline selection's triplets)",
                  self.complete_groups)
        if is_tfrecord_dir(self.data_dir):
            for flag, default in (("identity_fraction", 1.0), ("complete_groups", False)):
                if getattr(self, flag) != default:
                    _fail(flag, f"{default} with a TFRecord --data_dir (its reader draws the batches from every "
                          "identity)", getattr(self, flag))

    @property
    def offline_triplets_per_batch(self) -> int:
        """Triplets per batch under offline selection: a third of P*K+R (the batch holds 3x that many images)."""
        return (self.identities_per_batch * self.faces_per_identity + self.extra_negatives) // 3

    @classmethod
    def from_flags(cls, **values) -> "TrainConfig":
        """The config of experiments/train.py's flag values: every ``TrainConfig`` field by its name, the harmonic
        settings flat, by their flags (``harmonic_with``, ``harmonic_phase``, ..., ``init_from``, ``init_weights``;
        ``HarmonicConfig.from_flags``). Also reads the flat ``config.json`` of workdirs written before the harmonic
        settings were nested."""
        flat = set(HARMONIC_FLAGS.values())
        harmonic = HarmonicConfig.from_flags({k: v for k, v in values.items() if k in flat})
        return cls(**{k: v for k, v in values.items() if k not in flat}, harmonic=harmonic)

    def flags(self) -> dict:
        """The flag values of this config (the inverse of ``from_flags``): the harmonic settings flat, their
        defaults without ``harmonic``."""
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "harmonic"}
        defaults = {f.name: None if f.default is dataclasses.MISSING else f.default
                    for f in dataclasses.fields(HarmonicConfig)}
        harmonic = defaults if self.harmonic is None else dataclasses.asdict(self.harmonic)
        return {**values, **{HARMONIC_FLAGS[name]: value for name, value in harmonic.items()}}

    def with_flags(self, **changes) -> "TrainConfig":
        """This config with some flag values changed (``from_flags`` names), checked again."""
        return TrainConfig.from_flags(**{**self.flags(), **changes})

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
        if "harmonic" not in raw:  # written before the harmonic settings were nested: flat harmonic_* keys
            return cls.from_flags(**raw)
        harmonic = raw.pop("harmonic")
        return cls(**raw, harmonic=None if harmonic is None else HarmonicConfig(**harmonic))

    @classmethod
    def load(cls, workdir: str | Path) -> "TrainConfig":
        path = Path(workdir) / "config.json"
        if not path.is_file():
            raise FileNotFoundError(f"'{path}' not found: not a training workdir.")
        return cls.from_json(path.read_text())
