"""The paper's Table 4 with our model: VAL at FAR = 1e-3 and accuracy against JPEG quality and image size, with the
face crop degraded and with the whole photo degraded before detection (``facenet_tf.evaluation.robustness``).

    .venv/bin/python experiments/robustness.py --model=inception_resnet_v1@msceleb --pairs=view2 --margin=0.2 \\
        --recipe=flip=mean --output_dir=results/robustness_inception_resnet_v1

``--quick``: 40 pairs (2 same + 2 different per View 2 fold) and three conditions (none, JPEG 10, 1,600 pixels),
to check the whole path in a few seconds.
"""

import os

os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import json  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

from absl import app, flags  # noqa: E402

F = flags.FLAGS
flags.DEFINE_string("model", None, "Model source (as eval_lfw.py --model; zoo@weights included). Required.")
flags.DEFINE_string("pairs", "view2", "view1, view2 or a pairs file.")
flags.DEFINE_list("places", ["crop", "photo"], "Where images are degraded: crop, photo.")
flags.DEFINE_float("margin", 0.2, "MTCNN margin (fraction of the face size).")
flags.DEFINE_string("recipe", "flip=mean", "Scoring recipe (see eval_lfw.py --recipe).")
flags.DEFINE_bool("quick", False, "40 pairs and three conditions.")
flags.DEFINE_string("data_dir", None, "LFW root.")
flags.DEFINE_string("output_dir", None, "Where table4.md, table4.png and rows.json go. Required.")
flags.DEFINE_bool("overwrite", False, "Replace the files of an earlier run in --output_dir.")
flags.DEFINE_list("from_rows", None, "Write the table and plot from the rows.json of earlier runs (e.g. one per "
                  "--places) instead of evaluating; --model is then not needed.")
flags.mark_flags_as_required(["output_dir"])


def main(argv):
    del argv
    from facenet_tf import paths
    from facenet_tf.align import AlignConfig
    from facenet_tf.atomic import check_output, write_json_atomically, write_text_atomically
    from facenet_tf.evaluation import robustness
    from facenet_tf.evaluation.embed import load_embedder
    from facenet_tf.evaluation.lfw import load_pair_sets
    from facenet_tf.evaluation.verification import Recipe

    out = Path(F.output_dir)
    try:
        recipe = Recipe.parse(F.recipe)
        for name in ("table4.md", "table4.png", "rows.json"):
            check_output(out / name, overwrite=F.overwrite, flag="--output_dir")
        bad = sorted(set(F.places) - set(robustness.PLACES))
        if bad:
            raise ValueError(f"--places: unknown {bad}; expected {robustness.PLACES}")
        if F.from_rows:
            runs = [json.loads(Path(file).read_text()) for file in F.from_rows]
        elif not F.model:
            raise ValueError("--model is required (or --from_rows)")
        else:
            root = paths.command_lfw_root(F.data_dir, F.pairs)
    except (ValueError, OSError, KeyError) as error:
        raise app.UsageError(str(error))
    if F.from_rows:
        rows = [row for run in runs for row in run["rows"]]
        commands = "\n".join(f"    {run['command']}" for run in runs)
        command = " ".join(["python"] + sys.argv)
        text = (f"# Table 4 with {F.model or 'our model'} on LFW {F.pairs}\n\nCommands:\n\n{commands}\n    {command}\n\n"
                f"{rows[0]['images']} images, thresholds from the other folds.\n\n" + robustness.format_table4(rows) + "\n")
        write_text_atomically(out / "table4.md", text)
        write_json_atomically(out / "rows.json", {"command": command, "rows": rows})
        robustness.plot_table4(rows, out / "table4.png", "LFW, Table 4 conditions")
        print(text)
        return
    conditions = robustness.table4_conditions()
    if F.quick:
        conditions = [robustness.Condition(), robustness.Condition("jpeg", 10), robustness.Condition("pixels", 1600)]
    sets = load_pair_sets(F.pairs, root, 2 if F.quick else None)
    # progress survives an interruption: rows.partial.json, resumed by the same command
    partial = out / "rows.partial.json"
    settings = {"model": F.model, "pairs": F.pairs, "margin": F.margin, "recipe": recipe.name, "quick": F.quick}
    done = []
    if partial.is_file():
        saved = json.loads(partial.read_text())
        if saved.get("settings") != settings and not F.overwrite:
            raise app.UsageError(f"--output_dir: '{partial}' is the progress of a run with other settings "
                                 f"({saved.get('settings')}); pass --overwrite to start again")
        done = saved["rows"] if saved.get("settings") == settings else []
        print(f"resuming: {len(done)} rows from {partial}", flush=True)
    embedder = load_embedder(F.model)
    align = AlignConfig(mode="detect", output_size=embedder.input_size, margin=F.margin)
    rows = []

    def save(row):
        out.mkdir(parents=True, exist_ok=True)
        done.append(row)
        write_json_atomically(partial, {"settings": settings, "rows": done})

    for place in F.places:
        rows += robustness.evaluate_robustness(embedder, sets, align, conditions, place, recipe,
                                               progress=not F.quick, log=lambda line: print(line, flush=True),
                                               done=list(done), on_row=save)
    command = " ".join(["python"] + sys.argv)
    text = (f"# Table 4 with {embedder.name} on LFW {F.pairs}\n\nCommand: `{command}`\n\nRecipe {recipe.name}, MTCNN "
            f"margin {F.margin}; {rows[0]['images']} images, thresholds from the other folds.\n\n"
            + robustness.format_table4(rows) + "\n")
    write_text_atomically(out / "table4.md", text)
    write_json_atomically(out / "rows.json", {"command": command, "rows": rows})
    robustness.plot_table4(rows, out / "table4.png", f"{embedder.name}, LFW {F.pairs}")
    partial.unlink(missing_ok=True)
    print(text)


if __name__ == "__main__":
    app.run(main)
