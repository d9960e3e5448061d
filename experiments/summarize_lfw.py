"""One markdown table from several `experiments/eval_lfw.py` results (each row with the command that made it),
optionally with the training runs' summaries.

    .venv/bin/python experiments/summarize_lfw.py --title="nns2 on LFW View 1" \
        --results=before=runs/eval_init/results.json,after=runs/eval_trained/results.json \
        --workdirs=runs/nns2_lfw_view1 --output=results/training_nns2_lfw.md
"""

import json
import sys
from pathlib import Path

from absl import app, flags

F = flags.FLAGS
flags.DEFINE_list("results", None, "label=path/to/results.json entries. Required.")
flags.DEFINE_list("workdirs", [], "Training workdirs whose config and summary.json to include.")
flags.DEFINE_string("title", "LFW results", "Heading.")
flags.DEFINE_string("output", None, "Markdown file to write (printed either way).")
flags.DEFINE_string("baseline", None, "The label of --results whose fold accuracies every k-fold row's paired "
                    "fold-by-fold difference is taken against (mean ± SE, folds higher/equal/lower).")
flags.mark_flag_as_required("results")


def recipe_text(report: dict) -> str:
    recipe = report.get("recipe") or {"flip": "mean" if report["flip"] else "none"}
    return ", ".join([f"flip {recipe['flip']}", recipe.get("distance", "squared_l2")]
                     + (["mean subtracted"] if recipe.get("subtract_mean") else []))


def main(argv):
    del argv
    from facenet_tf.evaluation.verification import paired_fold_difference

    lines = [f"# {F.title}", "", f"Written by `{' '.join(['python'] + sys.argv)}`.", "",
             "| run | model | pairs | alignment | recipe | accuracy (± SE) | VAL @ FAR=1e-3 | AUC | EER | paired vs "
             "baseline (points, folds +/=/-) |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    commands = []
    reports = {entry.partition("=")[0]: json.loads(Path(entry.partition("=")[2]).read_text()) for entry in F.results}
    if F.baseline is not None and F.baseline not in reports:
        raise app.UsageError(f"--baseline: no --results entry is labelled {F.baseline!r}")
    for label, report in reports.items():
        m = report["metrics"]
        paired = "n/a"
        if F.baseline is not None and label != F.baseline and m.get("n_folds", 1) >= 2:
            d = paired_fold_difference(m["folds"], reports[F.baseline]["metrics"]["folds"])
            paired = f"{d['mean'] * 100:+.2f} ± {d['sem'] * 100:.2f} ({d['higher']}/{d['equal']}/{d['lower']})"
        sem = m.get("accuracy_sem")
        acc = f"{m['accuracy_mean'] * 100:.2f}%" + ("" if sem is None else f" ± {sem * 100:.2f}")
        alignment = report["alignment"]
        align = alignment["mode"] + ("" if alignment["mode"] != "detect" else (
            f", margin {alignment['margin']}" if alignment.get("margin_pixels") is None else
            f", margin {alignment['margin_pixels']:g} px" + (f" -> {alignment['prepared_size']} -> centre"
                                                             if alignment.get("prepared_size") else "")))
        lines.append(f"| {label} | {report['model']} | {report['pairs']} ({report['n_pairs']}) | {align} | "
                     f"{recipe_text(report)} | {acc} | {m['val_mean'] * 100:.2f}% | {m['auc']:.4f} | "
                     f"{m['eer']:.4f} | {paired} |")
        commands.append(f"- {label}: `{report.get('command', '(command not recorded)')}`")
    lines += ["", "Commands:", *commands]
    for workdir in F.workdirs:
        summary = json.loads((Path(workdir) / "summary.json").read_text())
        config = json.loads((Path(workdir) / "config.json").read_text())
        hist = summary.get("history", {})
        lines += ["", f"Training run `{workdir}`: steps {summary['start_step']} -> {summary['end_step']}, "
                      f"{summary.get('seconds', 'n/a')} s of training in this invocation, data: "
                      f"{summary['data']['identities']} identities / {summary['data']['images']} images "
                      f"(excluded pairs files: {summary['data']['excluded_pairs']})."]
        batch = config["identities_per_batch"] * config["faces_per_identity"] + config["extra_negatives"]
        if summary.get("seconds"):
            images = (summary["end_step"] - summary["start_step"]) * batch
            lines.append(f"Batch {batch} images; {images} images in {summary['seconds']} s = "
                         f"{images / summary['seconds']:.1f} images/s on average (tracing and checkpoints included).")
        if hist.get("loss"):
            lines.append("Loss per checkpoint interval: " + ", ".join(f"{v:.4f}" for v in hist["loss"]) + ".")
        lines.append("Config: `" + json.dumps({k: config[k] for k in sorted(config)}) + "`")
    text = "\n".join(lines) + "\n"
    print(text)
    if F.output:
        from facenet_tf.atomic import write_text_atomically

        write_text_atomically(F.output, text)


if __name__ == "__main__":
    app.run(main)
