"""The training ablation (issue "The trainer, proven on the paper's claims"): each row of experiments/configs.py's
ABLATION (mining, batch composition, embedding size, training-set size; one budget of images seen) trained for each
seed into <output_dir>/<row>_s<seed>, scored on LFW View 1, then one table and a PNG of curves per group
(into --report_dir, default --output_dir).

    .venv/bin/python experiments/ablation.py                              # every row, seeds 0,1 -> runs/ablation
    .venv/bin/python experiments/ablation.py --rows=semi_hard,hardest --seeds=0,1,2
    .venv/bin/python experiments/ablation.py --rows=semi_hard,hardest --seeds=0 --report_dir=results/ablation
    .venv/bin/python experiments/ablation.py --quick                      # smoke run -> runs/ablation_quick

Each row x seed trains in this process through the function experiments/train.py calls, with the TrainConfig
`train.py --config=<its config> --seed=<seed> --workdir=<output_dir>/<row>_s<seed>` builds (same defaults). Run
again after an interruption: a row x seed with its record (<workdir>/ablation.json) is skipped, an unfinished one
resumes from its last checkpoint. Writes <report_dir>/ablation.md, ablation.json and curves_<group>.png; the records
already in <report_dir>/ablation.json whose workdirs are gone (trained on another machine) stay in the table, their
curves with them, so rows can be added to results/ablation anywhere. Expected
failures print one line, "ablation.py: error: ...", and exit 2 (flags) or 1.
"""

import json
import os
import shlex
import sys
from pathlib import Path

os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags, logging  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from configs import ABLATION, ABLATION_BASELINE, ABLATION_IMAGES, ABLATION_SEEDS, CONFIGS, QUICK_IMAGES  # noqa: E402

F = flags.FLAGS
flags.DEFINE_list("rows", list(ABLATION), f"Rows to run, of: {', '.join(ABLATION)}.")
flags.DEFINE_list("seeds", [str(s) for s in ABLATION_SEEDS], "Seeds per row (two or more to judge noise).")
flags.DEFINE_bool("quick", False, "Each row's --quick variant (a few steps): a smoke run, its figures mean nothing.")
flags.DEFINE_string("output_dir", None, "The row x seed workdirs (default runs/ablation, runs/ablation_quick).")
flags.DEFINE_string("report_dir", None, "The table, its records and the PNGs (default: --output_dir), e.g. "
                    "results/ablation: the workdirs' checkpoints stay out of it.")
flags.DEFINE_string("data_dir", None, "Training image tree, also the LFW root of --pairs names (default: "
                    "$FACENET_TF_LFW_DIR, then ../shared/data/lfw).")
flags.DEFINE_string("pairs", "view1", "Evaluation pairs: view1 (DevTrain thresholds -> DevTest) or a pairs file.")
flags.DEFINE_integer("crop_size", 140, "Evaluation centre crop, thumbnail pixels (results/training_nns2_lfw.md).")
flags.DEFINE_string("overrides", None, "JSON object of train.py flag values set in every row, e.g. a tiny model for "
                    "tests: '{\"input_size\": [40, 32], \"embedding_dim\": 8}'.")

PROG = Path(__file__).name


def fail(message, status: int):
    print(f"{PROG}: error: {' '.join(str(message).split())}", file=sys.stderr, flush=True)
    sys.exit(status)


def row_config(row: str, seed: int, out: Path, overrides: dict):
    """The TrainConfig of one row x seed (workdir <out>/<row>_s<seed>): its config's flag values (its quick variant
    with --quick), then --overrides, with train.py's defaults for the rest (TrainConfig's, the same)."""
    from facenet_tf.train import TrainConfig

    values = dict(CONFIGS[ABLATION[row]["config"]])
    quick = values.pop("quick", {})
    values.update({**(quick if F.quick else {}), **overrides})
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
    try:
        return TrainConfig.from_flags(workdir=str(out / f"{row}_s{seed}"), seed=seed, data_dir=F.data_dir, **values)
    except TypeError as error:  # a key that is no train.py flag
        raise ValueError(f"--overrides: {error}") from None


def command(row: str, seeds) -> str:
    """The command that runs (or re-reads) ``row`` alone, with this invocation's other flags."""
    kept = [a for a in sys.argv[1:] if not a.startswith(("--rows=", "--seeds="))]
    return shlex.join(["python", "experiments/ablation.py", f"--rows={row}",
                       f"--seeds={','.join(map(str, seeds))}", *kept])


def main(argv):
    if len(argv) > 1:
        fail(f"unexpected arguments {argv[1:]}", 2)
    unknown = [r for r in F.rows if r not in ABLATION]
    if unknown or not F.rows:
        fail(f"--rows: unknown {unknown or 'none given'}; known: {', '.join(ABLATION)}", 2)
    out = Path(F.output_dir or ("runs/ablation_quick" if F.quick else "runs/ablation"))
    report = Path(F.report_dir or out)
    try:
        seeds = [int(s) for s in F.seeds]
        overrides = json.loads(F.overrides) if F.overrides else {}
        if not (seeds and isinstance(overrides, dict)):
            raise ValueError("--seeds: at least one, --overrides: a JSON object")
        configs = {(r, s): row_config(r, s, out, overrides) for r in F.rows for s in seeds}  # all checked first
    except ValueError as error:
        fail(error, 2)

    import keras
    import tensorflow as tf

    from facenet_tf import paths
    from facenet_tf.atomic import OutputError, check_output
    from facenet_tf.evaluation import ablation
    from facenet_tf.harmonic.training import train
    from facenet_tf.train import TrainConfig, TrainingDiverged

    try:
        check_output(report / "ablation.md", overwrite=True, flag="--report_dir" if F.report_dir else "--output_dir")
        previous = ablation.read_report_records(report)  # read first: a bad report fails before any training
        root = paths.command_lfw_root(F.data_dir, F.pairs)  # the LFW root of the evaluation, resolved once
        evaluation = {"pairs": F.pairs, "crop_size": F.crop_size, "root": None if root is None else str(root)}

        def current(record) -> bool:  # a record of these settings (the config this run builds for its row x seed)
            try:
                config = row_config(record["row"], record["seed"], out, overrides)
            except ValueError:
                return False
            return record["config"] == json.loads(config.to_json()) and record["evaluation"] == evaluation

        for (row, seed), config in configs.items():
            workdir = Path(config.workdir)
            record = ablation.read_record(workdir)
            if record and current(record):
                logging.info("%s seed %d: finished earlier, skipped", row, seed)
                continue
            summary = workdir / "summary.json"
            end = json.loads(summary.read_text())["end_step"] if summary.is_file() else -1
            if end < config.steps or TrainConfig.load(workdir) != config:
                logging.info("%s seed %d: training into %s", row, seed, workdir)
                keras.utils.set_random_seed(seed)
                train(config, lfw_root=paths.lfw_dir(required=False), verbose=2)
                keras.backend.clear_session()
            ablation.write_record(workdir, ablation.row_record(workdir, row, seed, evaluation,
                                                               config=json.loads(config.to_json())))
        # the table: every finished row x seed of these settings in --output_dir, from this run or earlier ones,
        # and those of the report already in --report_dir whose workdirs are gone (written on another machine)
        records = ablation.collect_records(out, list(ABLATION), current, previous)
        names = list(dict.fromkeys(r["row"] for r in records))
        rows = {n: {**ABLATION[n], "command": command(n, [r["seed"] for r in records if r["row"] == n])}
                for n in names}
        shown = [n for n in names if n != ABLATION_BASELINE] or names  # the groups of the rows compared
        groups = {g: [n for n in names if g in ABLATION[n]["groups"]]
                  for g in dict.fromkeys(g for n in shown for g in ABLATION[n]["groups"])}
        written = ablation.write_report(report, rows, groups, records, ABLATION_BASELINE, header(records, out))
    except (OutputError, ValueError, OSError, TrainingDiverged, tf.errors.OpError) as error:
        # ValueError: bad settings, pairs, unreadable images (ImageReadError), NaN embeddings; OSError: files
        fail(getattr(error, "message", None) or error, 1)
    for path in written:
        print("wrote", path)


def header(records, out: Path) -> str:
    evaluated = ("LFW View 1, thresholds on DevTrain, accuracy on DevTest" if F.pairs == "view1" else
                 f"{F.pairs}, its folds") + f"; centre crop {F.crop_size} px"
    return "\n".join([
        "# Training ablation: nns2 from scratch on LFW minus the View 1 test identities, scored on View 1", "",
        f"Written by `{shlex.join(['python', 'experiments/ablation.py', *sys.argv[1:]])}`.", "",
        f"Rows: experiments/configs.py `ABLATION`; every row x seed finished in `{out}` with these settings, "
        f"or kept from this report where its workdir is gone ({len(records)}); {QUICK_IMAGES if F.quick else ABLATION_IMAGES:,} images seen per row. "
        + ("**--quick: a smoke run, the figures mean nothing.** " if F.quick else "") + f"Evaluation: {evaluated}."])


if __name__ == "__main__":
    app.run(main)
