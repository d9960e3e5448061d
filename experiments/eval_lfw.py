"""Evaluates a model on LFW with the paper's protocol (paper "Evaluation"; README "Evaluation").

    .venv/bin/python experiments/eval_lfw.py --model=msceleb --pairs=view2 --output_dir=runs/lfw/msceleb

Defaults: the recipe selected on View 1 (``verification.SELECTED_RECIPE``: flip mean, cosine, training-fold mean
subtracted; results/lfw_recipes.md) and, for registered weights, their selected MTCNN margin
(``WeightsEntry.lfw_margin``: 0.2 for msceleb). ``--flip`` alone scores the paper's way (squared L2, mirror image
averaged in or not); ``--recipe`` says every part.

--model is a zoo name (with --weights), a training workdir, a .keras file or an exported SavedModel directory.
Select models on --pairs=view1; report --pairs=view2 once. Prints the table; writes results.json and roc.png.
A --pairs file path is scored on the image tree beside it (or under --data_dir when given); results.json records
the image root and the pairs files' SHA-256.

Expected failures (an unwritable --output_dir, a bad pairs file, a missing tree or image, an unreadable image, a
model that cannot be loaded or yields NaN/inf embeddings) print one line, "eval_lfw.py: error: ...", and exit 1
(2 for a wrong combination of flags); --output_dir and the pairs are checked before the model is loaded.
"""

import os
import sys

os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

F = flags.FLAGS
flags.DEFINE_string("model", None, "Zoo name, training workdir, .keras file or SavedModel directory. Required.")
flags.DEFINE_string("weights", None, "For a zoo name: 'msceleb' (inception_resnet_v1) or a weights file.")
flags.DEFINE_enum("alignment", "detect", ["center", "detect", "landmarks"], "center: fixed centre crop of the "
                  "thumbnail; detect: MTCNN box + margin (centre crop where no face is found).")
flags.DEFINE_string("pairs", "view2", "view1 (DevTrain thresholds -> DevTest), view2 (pairs.txt, 10 folds) or "
                    "a pairs file path.")
flags.DEFINE_bool("flip", False, "The paper's scoring (squared L2) with or without the mirror image's embedding "
                  "averaged in; without --flip or --recipe, the selected recipe is used.")
flags.DEFINE_string("output_dir", None, "Where results.json and roc.png go.")
flags.DEFINE_string("data_dir", None, "LFW root (default: $FACENET_TF_LFW_DIR, then ../shared/data/lfw).")
flags.DEFINE_integer("subset", None, "Keep only the first N same and N different pairs of each fold.")
flags.DEFINE_float("margin", None, "detect: fraction of the face size added around the box (default 0.3).")
flags.DEFINE_integer("crop_size", None, "center (and fallback): crop side in thumbnail pixels (default 160).")
flags.DEFINE_float("margin_pixels", None, "detect: a margin in image pixels instead of --margin (davidsandberg: 44).")
flags.DEFINE_integer("prepared_size", None, "detect: resize the face region to this square side, then keep its "
                     "centre at the model's input size (davidsandberg: 182, then the centre 160).")
flags.DEFINE_string("recipe", None, "How pairs are scored: 'flip=none|mean|concat,distance=squared_l2|cosine,"
                    "subtract_mean=true|false' (omitted keys: none / squared_l2 / false). Default: the recipe "
                    "selected on View 1 (flip=mean,distance=cosine,subtract_mean=true), or --flip's when given.")
flags.DEFINE_string("test_time_crops", "none", "Test-time crops averaged per image (none, shift5, scale3; detect).")
flags.DEFINE_integer("batch_size", 64, "Embedding batch size.")
flags.DEFINE_bool("at_init", False, "With a training workdir: evaluate its network before training (same seed).")
flags.DEFINE_bool("cache", True, "Cache aligned crops on disk ($FACENET_TF_CACHE_DIR, default ./cache).")
flags.DEFINE_string("cross_model", None, "Harmonic embeddings: a second model source (as --model); each image of a "
                    "pair is embedded by each model (own input size and crop). Reports --model alone, --cross_model "
                    "alone, model->cross_model, cross_model->model and both orders pooled.")
flags.DEFINE_string("cross_weights", None, "For a zoo --cross_model: its weights.")

PROG = os.path.basename(__file__)


class ModelLoadError(Exception):
    """--model or --cross_model could not be loaded; the message names the flag."""


def fail(error: BaseException | str, code: int = 1) -> None:
    """Prints one line naming what is wrong and exits with ``code`` (1: an expected failure, 2: usage)."""
    message = " ".join(line.strip() for line in str(error).splitlines() if line.strip())
    print(f"{PROG}: error: {message}", file=sys.stderr)
    sys.exit(code)


def load_model(flag: str, source: str, weights: str | None, at_init: bool = False):
    """(embedder, registered weights name or None) of a model source."""
    from facenet_tf.evaluation.embed import keras_embedder
    from facenet_tf.models.source import load_model as load

    try:
        loaded = load(source, weights, at_init=at_init, inference=True)
        return keras_embedder(loaded.model, loaded.name), loaded.weights
    except (ValueError, OSError) as error:
        message = str(error)
        raise ModelLoadError(message if message.startswith(flag) else f"{flag} '{source}': {message}") from error


def main(argv):
    if len(argv) > 1:
        fail(f"unexpected arguments {argv[1:]}; every input is a flag (see --help)", 2)
    if F.model is None:
        fail("--model is required: a zoo name, a training workdir, a .keras file or a SavedModel directory", 2)
    if (F.flip or F.recipe) and F.cross_model is not None:
        fail("--flip and --recipe are not supported with --cross_model", 2)
    from facenet_tf.atomic import OutputError, check_output
    from facenet_tf.data.images import ImageReadError
    from facenet_tf.data.lfw import PairsError, PairsFileError
    from facenet_tf.evaluation.embed import NonFiniteEmbeddingError

    try:
        if F.output_dir:
            check_output(F.output_dir, overwrite=True, flag="--output_dir", kind="folder")
            # an existing --output_dir must itself be writable: checked through the file written into it
            check_output(os.path.join(F.output_dir, "results.json"), overwrite=True, flag="--output_dir")
        run()
    except (OutputError, PairsError, OSError, ImageReadError, NonFiniteEmbeddingError, ModelLoadError) as error:
        named = not isinstance(error, PairsError) or isinstance(error, PairsFileError)  # the latter names its file
        fail(error if named else f"--pairs: {error}")


def run():
    from facenet_tf import paths
    from facenet_tf.evaluation.lfw import evaluate_lfw, load_pair_sets

    from facenet_tf.evaluation.lfw import TEST_TIME_CROPS
    from facenet_tf.evaluation.verification import SELECTED_RECIPE, Recipe

    try:
        recipe = None if F.recipe is None else Recipe.parse(F.recipe)
    except ValueError as error:
        fail(f"--recipe: {error}", 2)
    if recipe is not None and F["flip"].present:
        fail("--flip and --recipe both say how to use the mirror image: give one (--recipe=flip=mean)", 2)
    if F.test_time_crops not in TEST_TIME_CROPS:
        fail(f"--test_time_crops: expected one of {sorted(TEST_TIME_CROPS)}, got {F.test_time_crops!r}", 2)
    if recipe is None:
        recipe = Recipe(flip="mean" if F.flip else "none") if F["flip"].present else SELECTED_RECIPE
    root = paths.command_lfw_root(F.data_dir, F.pairs)  # the LFW root, resolved once
    sets = load_pair_sets(F.pairs, root, F.subset)  # every image checked to exist, before the model loads
    embedder, weights = load_model("--model", F.model, F.weights, at_init=F.at_init)
    from facenet_tf.models.weights import REGISTRY

    margin = F.margin
    if margin is None and F.margin_pixels is None and weights in REGISTRY:
        margin = REGISTRY[weights].lfw_margin  # selected on View 1 for these weights
    overrides = {k: v for k, v in (("margin", margin), ("crop_size", F.crop_size),
                                   ("margin_pixels", F.margin_pixels), ("prepared_size", F.prepared_size))
                 if v is not None}
    if F.cross_model is not None:
        return cross_main(embedder, overrides, sets, root)
    try:
        report = evaluate_lfw(embedder, pairs=F.pairs, root=root, alignment=F.alignment, subset=F.subset,
                              output_dir=F.output_dir, align_overrides=overrides, batch_size=F.batch_size,
                              cache=F.cache, extra={"command": " ".join(["python"] + sys.argv)}, pair_sets=sets,
                              recipe=recipe, crops=F.test_time_crops)
    except ValueError as error:
        if "test-time crops" not in str(error):
            raise
        fail(f"--test_time_crops: {error}", 2)
    print(f"model {report['model']} | pairs {report['pairs']} ({report['n_pairs']}) | alignment {F.alignment} | "
          f"recipe {Recipe(**report['recipe']).name} | margin {report['alignment']['margin']} | test-time crops "
          f"{report['test_time_crops']}")
    print(f"images {report['image_root']} | " + ", ".join(f"{f['path']} sha256 {f['sha256']}"
                                                        for f in report["pairs_files"]))
    print(report['alignment_summary'])
    print(report["table"])
    for path in report.get("files", []):
        print("wrote", path)


def cross_main(embedder, overrides, sets, root):
    from facenet_tf.evaluation.lfw import write_results
    from facenet_tf.harmonic.cross_model import evaluate_lfw_cross

    other, _ = load_model("--cross_model", F.cross_model, F.cross_weights)
    reports = evaluate_lfw_cross(embedder, other, pairs=F.pairs, root=root, alignment=F.alignment,
                                 subset=F.subset, align_overrides=overrides, batch_size=F.batch_size, cache=F.cache,
                                 pair_sets=sets)
    labels = {"a-a": f"A-A ({embedder.name})", "b-b": f"B-B ({other.name})", "a-b": "A-B", "b-a": "B-A",
              "cross": "A-B, both orders"}
    print(f"A = {embedder.name} | B = {other.name} | pairs {F.pairs} | alignment {F.alignment}")
    for name, report in reports.items():
        m = report["metrics"]
        print(f"{labels[name]:>40}: accuracy {m['accuracy_mean']:.4f}  VAL@FAR=1e-3 {m['val_mean']:.4f}")
    if F.output_dir:
        written = write_results(reports, {labels[k]: reports[k]["_result"].roc for k in ("a-a", "b-b", "cross")},
                                F.output_dir, title=f"LFW {F.pairs}: cross-model ROC")
        print("wrote", *written)


if __name__ == "__main__":
    app.run(main)
