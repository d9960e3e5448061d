"""The LFW table of one model: every alignment x scoring recipe on one pairs file, sharing the alignment and
embedding work, written as markdown + one results.json/roc.png per row.

    .venv/bin/python experiments/lfw_report.py --model=inception_resnet_v1 --weights=msceleb --pairs=view2 \
        --alignments=center,detect --output_dir=results/lfw_view2_inception_resnet_v1
    .venv/bin/python experiments/lfw_report.py --model=inception_resnet_v1 --weights=msceleb --pairs=view1 \
        --alignments=detect --margin=0.2 --recipe=grid --output_dir=runs/lfw_recipes_view1

A recipe (``facenet_tf.evaluation.verification.Recipe``) says how a pair is scored from its embeddings:
``flip=none|mean|concat,distance=squared_l2|cosine,subtract_mean=true|false``; ``--recipe=grid`` is all 12.
Without ``--recipe``, one per ``--flips`` entry (flip mean or none, squared L2). With several folds (View 2), each
row also gives its paired fold-by-fold accuracy difference against ``--baseline`` (mean ± SE, folds higher /
equal / lower), so a gain within noise is called that.
"""

import os

os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import sys  # noqa: E402
from pathlib import Path  # noqa: E402

from absl import app, flags  # noqa: E402

F = flags.FLAGS
flags.DEFINE_string("model", None, "Zoo name, training workdir, .keras file or SavedModel directory. Required.")
flags.DEFINE_string("weights", None, "For a zoo name: 'msceleb' (inception_resnet_v1) or a weights file.")
flags.DEFINE_string("pairs", "view2", "view1, view2 or a pairs file.")
flags.DEFINE_list("alignments", ["center", "detect"], "Alignment modes to evaluate.")
flags.DEFINE_list("flips", ["false", "true"], "Test-time flip settings to evaluate (without --recipe).")
flags.DEFINE_multi_string("recipe", None, "Scoring recipes (repeatable): 'flip=mean,distance=cosine,"
                          "subtract_mean=true' (omitted keys: none / squared_l2 / false), or 'grid' for all 12.")
flags.DEFINE_string("baseline", "flip=mean", "The recipe the paired fold-by-fold differences are taken against.")
flags.DEFINE_float("margin", None, "detect: margin (fraction of the face size).")
flags.DEFINE_integer("crop_size", None, "center: crop side in thumbnail pixels.")
flags.DEFINE_float("margin_pixels", None, "detect: a margin in image pixels instead of --margin (davidsandberg: 44).")
flags.DEFINE_integer("prepared_size", None, "detect: resize the face region to this square side, then keep its "
                     "centre at the model's input size (davidsandberg: 182).")
flags.DEFINE_list("test_time_crops", ["none"], "Test-time crops to evaluate (facenet_tf.evaluation.lfw."
                  "TEST_TIME_CROPS: none, shift5, scale3); the paired differences are against the baseline recipe "
                  "with the first entry.")
flags.DEFINE_integer("subset", None, "First N same and N different pairs of each fold only.")
flags.DEFINE_string("output_dir", None, "Where report.md and the per-row results go. Required.")
flags.DEFINE_string("data_dir", None, "LFW root.")
flags.mark_flags_as_required(["model", "output_dir"])


def recipes_from_flags():
    from facenet_tf.evaluation.verification import DISTANCE_METRICS, FLIP_MODES, Recipe

    if not F.recipe:
        return tuple(Recipe(flip="mean" if v.lower() in ("true", "1", "yes") else "none") for v in F.flips)
    if F.recipe == ["grid"]:
        return tuple(Recipe(flip, distance, mean) for flip in FLIP_MODES for distance in DISTANCE_METRICS
                     for mean in (False, True))
    return tuple(Recipe.parse(text) for text in F.recipe)


def main(argv):
    del argv
    from facenet_tf import paths
    from facenet_tf.atomic import write_text_atomically
    from facenet_tf.evaluation.embed import load_embedder
    from facenet_tf.evaluation.lfw import evaluate_lfw_variants, write_report
    from facenet_tf.evaluation.verification import Recipe, paired_fold_difference

    try:
        recipes, baseline = recipes_from_flags(), Recipe.parse(F.baseline)
    except (ValueError, TypeError) as error:
        raise app.UsageError(f"--recipe/--baseline: {error}")
    try:
        root = paths.command_lfw_root(F.data_dir, F.pairs)
    except FileNotFoundError as error:
        raise app.UsageError(str(error)) from None
    if baseline not in recipes:
        recipes += (baseline,)
    embedder = load_embedder(F.model, F.weights)
    overrides = {k: v for k, v in (("margin", F.margin), ("crop_size", F.crop_size),
                                   ("margin_pixels", F.margin_pixels), ("prepared_size", F.prepared_size))
                 if v is not None}
    out = Path(F.output_dir)
    rows = ["| alignment | crops | recipe | accuracy ± SE | VAL @ FAR=1e-3 (± std) | mean FAR | AUC | EER | threshold(s) | "
            "fallbacks | paired vs baseline (points, folds +/=/-) |", "| --- " * 11 + "|"]
    for alignment, crops in [(a, c) for a in F.alignments for c in F.test_time_crops]:
        try:
            reports = evaluate_lfw_variants(embedder, F.pairs, root, alignment, (), F.subset, overrides,
                                            recipes=recipes, crops=crops)
        except ValueError as error:
            raise app.UsageError(f"--test_time_crops: {error}") from None
        if crops == F.test_time_crops[0]:
            base = reports[recipes.index(baseline)]["_result"]
        for recipe, report in zip(recipes, reports):
            report["command"] = " ".join(["python"] + sys.argv)
            name = recipe.name.replace('=', '-').replace(',', '_') + ("" if crops == "none" else f"_crops-{crops}")
            write_report(report, out / f"{alignment}_{name}")
            r = report["_result"]
            thresholds = sorted({round(float(t), 3) for t in r.accuracy_thresholds})
            std = "" if r.n_folds < 2 else f" ± {r.val_std * 100:.2f}"
            sem = "" if r.n_folds < 2 else f" ± {r.accuracy_sem * 100:.2f}"
            paired = "n/a (one fold)"
            if r.n_folds >= 2:
                d = paired_fold_difference(r.folds, base.folds)
                paired = f"{d['mean'] * 100:+.2f} ± {d['sem'] * 100:.2f} ({d['higher']}/{d['equal']}/{d['lower']})"
            is_base = recipe == baseline and crops == F.test_time_crops[0]
            rows.append(f"| {alignment} | {crops} | {recipe.name}{' (baseline)' if is_base else ''} | "
                        f"{r.accuracy_mean * 100:.2f}%{sem} | {r.val_mean * 100:.2f}%{std} | {r.far_mean:.5f} | "
                        f"{r.roc.auc:.5f} | {r.roc.eer:.4f} | {', '.join(map(str, thresholds))} | "
                        f"{report['fallbacks']} / {report['images']} | {paired} |")
            print(rows[-1], flush=True)
    align_note = ", ".join(f"{k}={v}" for k, v in overrides.items()) or "defaults (detect margin 0.3, centre crop 160)"
    text = (f"# LFW {F.pairs}: {embedder.name}\n\nCommand: `{' '.join(['python'] + sys.argv)}`\n\n"
            f"Pairs: {report['n_pairs']}; alignment settings: {align_note}; output {embedder.input_size}. VAL at the "
            "largest training-fold threshold with FAR <= 1e-3 (no interpolation).\n\n" + "\n".join(rows) + "\n")
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomically(out / "report.md", text)
    print(text)


if __name__ == "__main__":
    app.run(main)
