"""The training ablation's evaluation and report (issue "The trainer, proven on the paper's claims"; runner
``experiments/ablation.py``, rows in ``experiments/configs.py``, claims in ``results/training_claims.md``).

Each row x seed is a finished training workdir. Here, without importing the trainer (workdirs are read through
``facenet_tf.models.source``): ``evaluate_workdir`` scores it on LFW as ``results/training_nns2_lfw.md`` did (View 1:
thresholds on DevTrain, accuracy on DevTest; centre crop of 140 px; the paper's squared L2 of the plain embeddings)
and records the mean pairwise distance of the evaluated images' embeddings (0: a collapsed model); ``read_curves``
reads what the trainer logged (``logs/train``: Keras' TensorBoard ``epoch_*`` scalars, one mean per checkpoint
interval) against images seen; ``write_report`` writes ``ablation.md`` (one row per configuration: mean ± spread
over seeds, the difference to the baseline and whether the seeds' spread covers it) and a PNG of curves per group.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from facenet_tf.atomic import write_json_atomically, write_text_atomically
from facenet_tf.evaluation.plots import plot_training_curves

LOGS = Path("logs") / "train"  # where facenet_tf.train.loop's TensorBoard callback writes the training scalars
CURVES = ("loss", "active_fraction", "mean_d_ap", "mean_d_an")
RECORD = "ablation.json"  # a row's record in its workdir: written last, so a workdir holding it is finished
EVAL_DIR = "eval"         # results.json and roc.png of the row's evaluation


def images_per_step(config: Mapping) -> int:
    """Images in one training batch of a workdir's ``config.json``: P*K+R, or 3 * ((P*K+R) // 3) triplet images
    under offline selection."""
    batch = config["identities_per_batch"] * config["faces_per_identity"] + config["extra_negatives"]
    return 3 * (batch // 3) if config.get("offline_every") else batch


def read_curves(workdir: str | Path) -> dict[str, list[tuple[int, float]]]:
    """``{metric: [(images seen, mean over the checkpoint interval), ...]}`` for ``CURVES``, from the TensorBoard
    events of every invocation of the run (a resumed run's repeated interval: the later value; a killed one's
    truncated last event: left out). An interval the events lack takes its value from the last invocation's Keras
    history in ``summary.json`` (its intervals only): events lost, or dropped by Keras' TensorBoard callback, which
    records an interval's means only on a step its ``update_freq`` divides (before ``loop.summary_every``)."""
    import tensorflow as tf

    from facenet_tf.models.source import read_workdir_config

    config = read_workdir_config(workdir)
    per_epoch = config["checkpoint_every"] * images_per_step(config)
    values: dict[str, dict[int, float]] = {name: {} for name in CURVES}
    files = sorted((Path(workdir) / LOGS).glob("events.out.tfevents.*"),
                   key=lambda p: (int(re.sub(r"\D.*", "", p.name.split("tfevents.")[1]) or 0), p.name))
    for path in files:
        try:
            for record in tf.data.TFRecordDataset(str(path)):
                event = tf.compat.v1.Event.FromString(record.numpy())
                for value in event.summary.value:
                    name = value.tag.removeprefix("epoch_")
                    if value.tag.startswith("epoch_") and name in values:
                        number = tf.make_ndarray(value.tensor) if value.HasField("tensor") else value.simple_value
                        values[name][int(event.step)] = float(number)
        except tf.errors.DataLossError:  # the last event of a killed invocation, cut short
            pass
    summary = Path(workdir) / "summary.json"
    if summary.is_file():
        last = json.loads(summary.read_text())
        first = last.get("start_step", 0) // config["checkpoint_every"]
        for name, points in values.items():
            for i, value in enumerate(last.get("history", {}).get(name, [])):
                points.setdefault(first + i, float(value))
    return {name: [((epoch + 1) * per_epoch, v) for epoch, v in sorted(points.items())]
            for name, points in values.items()}


def evaluate_workdir(workdir: str | Path, pairs: str = "view1", root: str | Path | None = None, crop_size: int = 140,
                     batch_size: int = 64, cache: bool = True, progress: bool = False) -> dict:
    """The View 1 figures of a training workdir (as ``experiments/eval_lfw.py --model=WORKDIR --pairs=view1
    --alignment=center --crop_size=140 --recipe=flip=none``): accuracy, VAL at FAR 1e-3, AUC, EER and the mean
    pairwise distance of the embeddings; ``results.json`` and ``roc.png`` go to ``<workdir>/eval``."""
    from facenet_tf.evaluation.embed import keras_embedder
    from facenet_tf.evaluation.lfw import evaluate_lfw
    from facenet_tf.evaluation.verification import Recipe
    from facenet_tf.models.source import load_model

    loaded = load_model(str(workdir), inference=True)
    report = evaluate_lfw(keras_embedder(loaded.model, loaded.name), pairs=pairs, root=root, alignment="center",
                          align_overrides={"crop_size": crop_size}, recipe=Recipe(), batch_size=batch_size,
                          cache=cache, progress=progress, output_dir=Path(workdir) / EVAL_DIR)
    metrics = report["metrics"]
    return {"accuracy": metrics["accuracy_mean"], "val": metrics["val_mean"], "auc": metrics["auc"],
            "eer": metrics["eer"], "mean_pairwise_distance": report["mean_pairwise_distance"],
            "pairs": f"{pairs} ({report['n_pairs']} pairs)", "results": str(Path(workdir) / EVAL_DIR / "results.json")}


def timing(workdir: str | Path) -> dict:
    """``steps``, ``images_per_step``, ``images_seen`` (config.json) and ``seconds_per_step`` of the last training
    invocation (summary.json: its training seconds, tracing and checkpoints included, over its steps; None if it
    trained no step)."""
    from facenet_tf.models.source import read_workdir_config

    config = read_workdir_config(workdir)
    summary = json.loads((Path(workdir) / "summary.json").read_text())
    steps = summary["end_step"] - summary["start_step"]
    per_step = summary["seconds"] / steps if steps > 0 and "seconds" in summary else None
    return {"steps": summary["end_step"], "images_per_step": images_per_step(config),
            "images_seen": summary["end_step"] * images_per_step(config), "seconds_per_step": per_step,
            "timed_steps": steps}


def row_record(workdir: str | Path, row: str, seed: int, evaluation: Mapping, **extra) -> dict:
    """Evaluates a finished workdir (``evaluate_workdir(**evaluation)``) and returns its record: the figures, the
    timing, the last logged D(a,p) and D(a,n), and ``extra`` (e.g. the config and the command)."""
    curves = read_curves(workdir)
    last = {f"final_{name.removeprefix('mean_')}": points[-1][1] if points else None
            for name, points in curves.items() if name in ("mean_d_ap", "mean_d_an")}
    return {"row": row, "seed": seed, "workdir": str(workdir), **evaluate_workdir(workdir, **evaluation),
            **timing(workdir), **last, "evaluation": dict(evaluation), "curves": curves, **extra}


def collect_records(output_dir: str | Path, rows: Sequence[str], accept=lambda record: True,
                    previous: Sequence[dict] = ()) -> list[dict]:
    """The records of the finished row x seed workdirs ``<output_dir>/<row>_s<seed>`` of ``rows`` (whichever run
    wrote them), then those of ``previous`` (an earlier report's, ``read_report_records``) of a row x seed no
    workdir holds, so that a report stays whole where the workdirs are gone (another machine); each kept only if
    ``accept`` keeps it (e.g. those of the current settings), in the order of ``rows``, then seed."""
    found = {}
    for path in Path(output_dir).glob(f"*_s*/{RECORD}"):
        match = re.fullmatch(r"(.+)_s(\d+)", path.parent.name)
        if match and match.group(1) in rows:
            record = json.loads(path.read_text())
            if record.get("row") == match.group(1) and record.get("seed") == int(match.group(2)) and accept(record):
                found[record["row"], record["seed"]] = record
    for record in previous:
        key = (record.get("row"), record.get("seed"))
        if key[0] in rows and key not in found and accept(record):
            found[key] = record
    return sorted(found.values(), key=lambda r: (list(rows).index(r["row"]), r["seed"]))


def read_report_records(report_dir: str | Path) -> list[dict]:
    """The records of ``<report_dir>/ablation.json`` as ``write_report`` wrote them; [] when there is none. A file
    that is not such a report raises ValueError naming it."""
    path = Path(report_dir) / "ablation.json"
    if not path.is_file():
        return []
    try:
        records = json.loads(path.read_text())["records"]
        if not all(isinstance(r, dict) and {"row", "seed", "workdir"} <= r.keys() for r in records):
            raise TypeError
    except (ValueError, KeyError, TypeError):
        raise ValueError(f"{path}: not an ablation report (expected {{\"records\": [...]}} as ablation.py writes "
                         "it); move it away or choose another --report_dir") from None
    return records


def _with_curves(record: dict) -> dict:
    """``record`` with its ``curves``: its own, else read from its workdir's logs (records written before records
    kept them), else none (``{}``: its workdir is gone)."""
    if record.get("curves") is None:
        logs = Path(record["workdir"]) / LOGS
        return {**record, "curves": read_curves(record["workdir"]) if logs.is_dir() else {}}
    return record


def read_record(workdir: str | Path) -> dict | None:
    path = Path(workdir) / RECORD
    return json.loads(path.read_text()) if path.is_file() else None


def write_record(workdir: str | Path, record: dict) -> None:
    write_json_atomically(Path(workdir) / RECORD, record)


def mean_spread(values: Sequence[float | None]) -> tuple[float, float, int] | None:
    """(mean, half the range, count) of the values that are not None; None when there are none."""
    known = [float(v) for v in values if v is not None and math.isfinite(v)]
    if not known:
        return None
    return sum(known) / len(known), (max(known) - min(known)) / 2, len(known)


def _cell(stat, scale: float = 1.0, digits: int = 1, suffix: str = "") -> str:
    if stat is None:
        return "–"
    mean, spread, n = stat
    text = f"{mean * scale:.{digits}f}{suffix}"
    return text + (f" ± {spread * scale:.{digits}f}" if n > 1 else "")


def verdict(row: tuple[float, float, int] | None, base: tuple[float, float, int] | None) -> str:
    """The accuracy difference to the baseline in points and, with two or more seeds on both sides, "within noise"
    when the seeds' spreads (half ranges, added) cover it, "beyond the seeds' spread" otherwise."""
    if row is None or base is None:
        return "–"
    diff = (row[0] - base[0]) * 100
    if row[2] < 2 or base[2] < 2:
        return f"{diff:+.1f} pt (one seed: noise unknown)"
    noise = (row[1] + base[1]) * 100
    return f"{diff:+.1f} pt ({'within noise' if abs(diff) <= noise + 1e-9 else 'beyond the seeds’ spread'})"


LEGEND = (
    "Steps are scaled to each row's batch size so that every row sees the same number of images. The evaluation scores "
    "squared L2 distances of the plain embeddings (as results/training_nns2_lfw.md). Cells: mean ± half the range over "
    "the seeds. Accuracy vs baseline: within noise when the two rows' half ranges, added, cover the difference. Mean "
    "pairwise D: mean squared L2 distance between the embeddings of the evaluated images (about 2 for unrelated unit "
    "vectors, 0 for a collapsed model); last D(a,p) / D(a,n): the trainer's means over the last checkpoint interval. "
    "s / step: the last training invocation's seconds (tracing and checkpoints included) over its steps. A row x seed "
    "trains as `python experiments/train.py --config=<its config> --seed=<seed> --workdir=<output_dir>/<row>_s<seed>` "
    "would; each workdir holds config.json, logs/, eval/results.json and the row's record ablation.json.")

COLUMNS = ("row", "what changes", "seeds", "View 1 accuracy (%)", "VAL @ FAR=1e-3 (%)", "AUC",
           "mean pairwise D, View 1", "last D(a,p) / D(a,n), training", "s / step", "images seen",
           "accuracy vs baseline", "command")


def format_table(rows: Mapping[str, dict], records: Sequence[dict], baseline: str) -> str:
    """One markdown row per configuration of ``rows`` (``{row: {"change": ..., "command": ...}}``) that has
    records (``{"row", "seed", "accuracy", ...}``): mean ± spread over its seeds."""
    stats = {}
    for name in rows:
        mine = [r for r in records if r["row"] == name]
        if mine:
            stats[name] = mine, {key: mean_spread([r.get(key) for r in mine]) for key in
                                 ("accuracy", "val", "auc", "mean_pairwise_distance", "seconds_per_step",
                                  "images_seen", "final_d_ap", "final_d_an")}
    base = stats.get(baseline, (None, {}))[1].get("accuracy")
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + " --- |" * len(COLUMNS)]
    for name, (mine, s) in stats.items():
        distances = f"{_cell(s['final_d_ap'], digits=3)} / {_cell(s['final_d_an'], digits=3)}"
        compare = "baseline" if name == baseline else verdict(s["accuracy"], base)
        seeds = ", ".join(str(r["seed"]) for r in mine)
        images = "–" if s["images_seen"] is None else f"{s['images_seen'][0]:,.0f}"
        lines.append("| " + " | ".join([
            f"`{name}`", rows[name]["change"], seeds, _cell(s["accuracy"], 100), _cell(s["val"], 100),
            _cell(s["auc"], digits=3), _cell(s["mean_pairwise_distance"], digits=3), distances,
            _cell(s["seconds_per_step"], digits=2), images, compare, f"`{rows[name]['command']}`"]) + " |")
    return "\n".join(lines)


def write_report(output_dir: str | Path, rows: Mapping[str, dict], groups: Mapping[str, Sequence[str]],
                 records: Sequence[dict], baseline: str, header: str) -> list[Path]:
    """Writes ``ablation.md`` (``header``, ``LEGEND``, the table, the groups' PNGs), ``ablation.json`` (every record) and
    ``curves_<group>.png`` per group (each row's seeds, as their records keep them) into ``output_dir``. The
    records written keep their curves, so that a later report can draw them without the workdirs."""
    out = Path(output_dir)
    records = [_with_curves(r) for r in records]
    written = []
    for group, names in groups.items():
        runs = {f"{r['row']} (seed {r['seed']})": r["curves"] for name in names
                for r in records if r["row"] == name and r["curves"]}
        if runs:
            written.append(plot_training_curves(runs, out / f"curves_{group}.png",
                                                title=f"{group}: per checkpoint interval, as the trainer logged"))
    pictures = "\n".join(f"![{p.stem}]({p.name})" for p in written)
    text = f"{header}\n{LEGEND}\n\n{format_table(rows, records, baseline)}\n\n{pictures}\n"
    write_json_atomically(out / "ablation.json", {"records": list(records)})
    write_text_atomically(out / "ablation.md", text)
    return [out / "ablation.md", out / "ablation.json", *written]
