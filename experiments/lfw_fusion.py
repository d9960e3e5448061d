"""Several models as one on LFW: each member embeds with its own alignment and flip mode (as selected for it
alone on View 1), the unit embeddings are concatenated, and each scoring recipe is applied to the joint vectors.

    .venv/bin/python experiments/lfw_fusion.py --pairs=view1 --output_dir=runs/lfw_fusion_view1 \\
        --member="inception_resnet_v1@msceleb;margin=0.2;flip=mean" \\
        --member="casia_webface;margin=0.3;flip=mean"

A member is ``SOURCE[;key=value...]``: SOURCE as ``eval_lfw.py --model`` takes it (``zoo@weights`` included);
keys ``alignment`` (center/detect/landmarks, default detect), ``margin``, ``margin_pixels``, ``prepared_size``,
``crop_size`` and ``flip`` (none/mean/concat). ``--baseline_results``: a results.json of the same pairs (e.g. the
single-model baseline) whose fold accuracies each row's paired fold-by-fold difference is taken against.
"""

import os

os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import dataclasses  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

from absl import app, flags  # noqa: E402

F = flags.FLAGS
flags.DEFINE_multi_string("member", None, "A model of the fusion (repeat, at least twice): 'SOURCE;key=value;...'.")
flags.DEFINE_string("pairs", "view1", "view1, view2 or a pairs file.")
flags.DEFINE_multi_string("recipe", None, "Scoring recipes of the joint vectors (flip=none): 'distance=cosine,"
                          "subtract_mean=true'; default: squared L2, and cosine with the training-fold mean.")
flags.DEFINE_string("baseline_results", None, "results.json of the same pairs to take paired differences against.")
flags.DEFINE_integer("subset", None, "First N same and N different pairs of each fold only.")
flags.DEFINE_string("data_dir", None, "LFW root.")
flags.DEFINE_string("output_dir", None, "Where report.md and the per-recipe results go. Required.")
flags.mark_flags_as_required(["member", "output_dir"])

ALIGN_KEYS = {"margin": float, "margin_pixels": float, "prepared_size": int, "crop_size": int}


def parse_member(text: str):
    """``(source, alignment mode, align overrides, flip)`` of one ``--member``."""
    source, *items = [part.strip() for part in text.split(";")]
    mode, flip, overrides = "detect", "none", {}
    for item in items:
        key, _, value = item.partition("=")
        if key == "alignment":
            mode = value
        elif key == "flip":
            flip = value
        elif key in ALIGN_KEYS and value:
            overrides[key] = ALIGN_KEYS[key](value)
        else:
            raise ValueError(f"--member {text!r}: unknown or empty setting {item!r}; expected alignment, flip, "
                             f"{', '.join(ALIGN_KEYS)}")
    return source, mode, overrides, flip


def main(argv):
    del argv
    from facenet_tf import paths
    from facenet_tf.align import AlignConfig
    from facenet_tf.atomic import write_text_atomically
    from facenet_tf.evaluation.embed import load_embedder
    from facenet_tf.evaluation.lfw import FusionMember, evaluate_lfw_fusion, write_report
    from facenet_tf.evaluation.verification import Recipe, paired_fold_difference

    try:
        specs = [parse_member(text) for text in F.member]
        recipes = tuple(Recipe.parse(t) for t in F.recipe) if F.recipe else (Recipe(), Recipe("none", "cosine", True))
        baseline = json.loads(Path(F.baseline_results).read_text()) if F.baseline_results else None
        root = paths.command_lfw_root(F.data_dir, F.pairs)
    except (ValueError, OSError) as error:
        raise app.UsageError(str(error))
    members = []
    for source, mode, overrides, flip in specs:
        embedder = dataclasses.replace(load_embedder(source), name=source)  # named as given: two may share a net
        members.append(FusionMember(embedder, AlignConfig(mode=mode, output_size=embedder.input_size, **overrides),
                                    flip))
    reports = evaluate_lfw_fusion(members, F.pairs, root, F.subset, recipes)
    out = Path(F.output_dir)
    rows = ["| recipe | accuracy ± SE | VAL @ FAR=1e-3 (± std) | AUC | EER | paired vs baseline (points, folds +/=/-) |",
            "| --- | --- | --- | --- | --- | --- |"]
    for recipe, report in zip(recipes, reports):
        report["command"] = " ".join(["python"] + sys.argv)
        write_report(report, out / recipe.name.replace("=", "-").replace(",", "_"))
        r = report["_result"]
        paired = "n/a"
        if baseline is not None and r.n_folds >= 2:
            d = paired_fold_difference(r.folds, baseline["metrics"]["folds"])
            paired = f"{d['mean'] * 100:+.2f} ± {d['sem'] * 100:.2f} ({d['higher']}/{d['equal']}/{d['lower']})"
        sem = "" if r.n_folds < 2 else f" ± {r.accuracy_sem * 100:.2f}"
        std = "" if r.n_folds < 2 else f" ± {r.val_std * 100:.2f}"
        rows.append(f"| {recipe.name} | {r.accuracy_mean * 100:.2f}%{sem} | {r.val_mean * 100:.2f}%{std} | "
                    f"{r.roc.auc:.5f} | {r.roc.eer:.4f} | {paired} |")
        print(rows[-1], flush=True)
    text = (f"# LFW {F.pairs}: fusion of {reports[0]['model']}\n\nCommand: `{' '.join(['python'] + sys.argv)}`\n\n"
            + "\n".join(f"- {m['model']}: {m['alignment']['mode']}, flip {m['flip']}, fallbacks {m['fallbacks']} / "
                        f"{m['images']}" for m in reports[0]["members"]) + "\n\n" + "\n".join(rows) + "\n")
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomically(out / "report.md", text)
    print(text)


if __name__ == "__main__":
    app.run(main)
