"""The training ablation: its rows are valid configs that see the same number of images and change one thing
each; the runner (experiments/ablation.py --quick, 2 rows x 1 seed on a tiny tree) writes the table with every
column and the PNGs, and a second run skips what is finished; the table's noise rule and the collapse indicator."""

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from facenet_tf.evaluation import ablation
from facenet_tf.evaluation.lfw import mean_pairwise_distance
from facenet_tf.train import TrainConfig
from tests.train.conftest import eager, make_tree  # noqa: F401 (eager: a fixture)

REPO = Path(__file__).resolve().parents[2]
SCHEDULE = {"steps", "checkpoint_every", "lr_decay_steps"}


def _configs():
    spec = importlib.util.spec_from_file_location("configs", REPO / "experiments" / "configs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _flags(values: dict, quick: bool) -> dict:
    values = dict(values)
    extra = values.pop("quick")
    return {k: tuple(v) if isinstance(v, list) else v for k, v in {**values, **(extra if quick else {})}.items()}


@pytest.mark.parametrize("quick", [False, True])
def test_every_row_is_a_valid_config_that_sees_the_budget(quick):
    configs = _configs()
    budget = configs.QUICK_IMAGES if quick else configs.ABLATION_IMAGES
    base = _flags(configs.CONFIGS["nns2_lfw_view1"], quick)
    assert configs.ABLATION[configs.ABLATION_BASELINE]["config"] == "nns2_lfw_view1"
    groups = {g for row in configs.ABLATION.values() for g in row["groups"]}
    assert groups == {"mining", "batch", "embedding", "data"}
    for name, row in configs.ABLATION.items():
        flags = _flags(configs.CONFIGS[row["config"]], quick)
        config = TrainConfig.from_flags(workdir="w", **flags)
        assert config.steps * ablation.images_per_step(flags) == budget, name
        assert config.exclude_pairs == ("view1_test",) and config.model == "nns2", name
        changed = {k for k in set(flags) | set(base) if flags.get(k) != base.get(k)} - SCHEDULE
        assert len(changed) <= 4 and (name == "semi_hard") == (not changed), (name, changed)
        if "steps" in changed or flags["steps"] != base["steps"]:
            assert name == "15x12_complete" and config.lr_decay_steps == (() if quick else (600,))


def test_composition_rows_use_complete_groups_and_the_chosen_k():
    configs = _configs()
    big = configs.CONFIGS[configs.ABLATION["15x12_complete"]["config"]]
    small = configs.CONFIGS[configs.ABLATION["30x4_complete"]["config"]]
    assert (big["identities_per_batch"], big["faces_per_identity"], big["extra_negatives"]) == (15, 12, 60)
    assert big["complete_groups"] and small["complete_groups"] and big["steps"] == 750


def test_mean_pairwise_distance_is_the_mean_over_distinct_pairs_and_zero_when_collapsed():
    x = np.random.default_rng(0).normal(size=(30, 5))
    brute = np.mean([np.sum((x[i] - x[j]) ** 2) for i in range(30) for j in range(30) if i != j])
    assert mean_pairwise_distance(x) == pytest.approx(brute)
    assert mean_pairwise_distance(np.tile([[0.6, 0.8]], (7, 1))) == pytest.approx(0.0, abs=1e-12)
    assert mean_pairwise_distance(x[:1]) is None


def test_noise_rule_and_table_columns():
    assert ablation.mean_spread([0.70, 0.74, None]) == pytest.approx((0.72, 0.02, 2))
    assert ablation.verdict((0.75, 0.01, 2), (0.72, 0.02, 2)) == "+3.0 pt (within noise)"
    assert ablation.verdict((0.60, 0.01, 2), (0.72, 0.02, 2)) == "-12.0 pt (beyond the seeds’ spread)"
    assert ablation.verdict((0.60, 0.0, 1), (0.72, 0.02, 2)) == "-12.0 pt (one seed: noise unknown)"
    record = dict(accuracy=0.7, val=0.1, auc=0.8, mean_pairwise_distance=1.2, seconds_per_step=1.5,
                  images_seen=180000, final_d_ap=0.5, final_d_an=0.9)
    records = [dict(record, row="a", seed=0), dict(record, row="a", seed=1, accuracy=0.72),
               dict(record, row="b", seed=0)]
    rows = {"a": dict(change="base", command="python x --rows=a"), "b": dict(change="b", command="python x --rows=b")}
    lines = ablation.format_table(rows, records, baseline="a").splitlines()
    assert lines[0] == "| " + " | ".join(ablation.COLUMNS) + " |" and len(lines) == 4
    assert lines[2] == ("| `a` | base | 0, 1 | 71.0 ± 1.0 | 10.0 ± 0.0 | 0.800 ± 0.000 | 1.200 ± 0.000 | 0.500 ± 0.000 / "
                        "0.900 ± 0.000 | 1.50 ± 0.00 | 180,000 | baseline | `python x --rows=a` |")
    assert "-1.0 pt (one seed: noise unknown)" in lines[3] and lines[3].endswith("| `python x --rows=b` |")


def _tiny_lfw(root: Path) -> Path:
    """The training tree of tests/train/conftest.py with LFW's names (<Name>/<Name>_NNNN.jpg from 0001), and a pairs
    file of 2 folds x (3 same + 3 different) pairs beside it; returns the pairs file."""
    make_tree(root / "faces", identities=8, images=4)
    for person in sorted((root / "faces").iterdir()):
        for j, png in enumerate(sorted(person.glob("*.png"))):
            cv2.imwrite(str(person / f"{person.name}_{j + 1:04d}.jpg"), cv2.imread(str(png)))
            png.unlink()
    lines = ["2\t3"]
    for fold in range(2):
        lines += [f"id_{fold * 3 + i:02d}\t1\t{2 + fold}" for i in range(3)]
        lines += [f"id_{fold * 3 + i:02d}\t{1 + fold}\tid_{fold * 3 + i + 1:02d}\t3" for i in range(3)]
    (root / "pairs.txt").write_text("\n".join(lines) + "\n")
    return root / "pairs.txt"


TINY = {"input_size": [40, 32], "embedding_dim": 8, "identities_per_batch": 3, "faces_per_identity": 3,
        "extra_negatives": 2, "exclude_pairs": [], "steps": 2, "checkpoint_every": 2}


def test_quick_ablation_writes_the_table_and_curves_and_skips_finished_rows(tmp_path):
    pairs = _tiny_lfw(tmp_path)
    out = tmp_path / "out"
    args = [sys.executable, "experiments/ablation.py", "--quick", "--rows=semi_hard,hardest", "--seeds=0",
            f"--data_dir={tmp_path / 'faces'}", f"--pairs={pairs}", "--crop_size=40", f"--output_dir={out}",
            f"--overrides={json.dumps(TINY)}"]
    env = {**__import__("os").environ, "FACENET_TF_CACHE_DIR": str(tmp_path / "cache")}
    with open(tmp_path / "first.log", "w") as log:
        first = subprocess.run(args, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, timeout=600, env=env)
    assert first.returncode == 0, (tmp_path / "first.log").read_text()[-3000:]
    table = (out / "ablation.md").read_text()
    header = next(line for line in table.splitlines() if line.startswith("| row |"))
    assert header == "| " + " | ".join(ablation.COLUMNS) + " |"
    rows = [line for line in table.splitlines() if line.startswith("| `")]
    assert [row.split(" | ")[0] for row in rows] == ["| `semi_hard`", "| `hardest`"]
    assert all(row.count(" | ") == len(ablation.COLUMNS) - 1 and "--rows=" in row for row in rows)
    assert "![curves_mining](curves_mining.png)" in table
    assert (out / "curves_mining.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    records = json.loads((out / "ablation.json").read_text())["records"]
    assert [(r["row"], r["seed"], r["images_seen"]) for r in records] == [("semi_hard", 0, 22), ("hardest", 0, 22)]
    assert (out / "hardest_s0" / "eval" / "results.json").is_file()

    # Again, as after an interruption: a finished row is skipped; a trained row without its record is only scored.
    # The table may go elsewhere (--report_dir, e.g. results/), the workdirs stay in --output_dir.
    (out / "hardest_s0" / "ablation.json").unlink()
    trained = (out / "hardest_s0" / "summary.json").read_text()
    report = tmp_path / "report"
    with open(tmp_path / "again.log", "w") as log:
        again = subprocess.run([*args, f"--report_dir={report}"], cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
                               timeout=600, env=env)
    text = (tmp_path / "again.log").read_text()
    assert again.returncode == 0, text[-3000:]
    assert "semi_hard seed 0: finished earlier, skipped" in text and "training into" not in text
    assert (out / "hardest_s0" / "summary.json").read_text() == trained
    assert (out / "hardest_s0" / "ablation.json").is_file()
    assert sorted(p.name for p in report.iterdir()) == ["ablation.json", "ablation.md", "curves_mining.png"]
    assert f"finished in `{out}`" in (report / "ablation.md").read_text()
    assert [r["workdir"] for r in json.loads((report / "ablation.json").read_text())["records"]] == [
        str(out / "semi_hard_s0"), str(out / "hardest_s0")]

    # On another machine the workdirs are gone: the report keeps the rows it holds, curves included, beside new ones.
    shutil.rmtree(out / "semi_hard_s0")
    with open(tmp_path / "third.log", "w") as log:
        third = subprocess.run([*[a for a in args if not a.startswith("--rows=")], "--rows=hardest",
                                f"--report_dir={report}"], cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
                               timeout=600, env=env)
    assert third.returncode == 0, (tmp_path / "third.log").read_text()[-3000:]
    kept = json.loads((report / "ablation.json").read_text())["records"]
    assert [(r["row"], r["seed"]) for r in kept] == [("semi_hard", 0), ("hardest", 0)]
    assert all(len(r["curves"]["loss"]) == 1 for r in kept)  # 2 steps, one checkpoint interval
    table = (report / "ablation.md").read_text()
    assert [line.split(" | ")[0] for line in table.splitlines() if line.startswith("| `")] == [
        "| `semi_hard`", "| `hardest`"]


def test_report_records_stand_in_for_missing_workdirs_and_a_bad_report_is_named(tmp_path):
    def record(row, seed, **extra):
        return {"row": row, "seed": seed, "workdir": str(tmp_path / f"{row}_s{seed}"), **extra}

    (tmp_path / "a_s0").mkdir()
    ablation.write_record(tmp_path / "a_s0", record("a", 0, accuracy=0.7))
    previous = [record("a", 0, accuracy=0.1), record("a", 1, accuracy=0.8), record("b", 0, accuracy=0.6),
                record("c", 0, accuracy=0.5)]
    found = ablation.collect_records(tmp_path, ["a", "b"], lambda r: r["accuracy"] > 0.55, previous)
    # the workdir's record wins over the report's; the report fills the gaps of the rows asked for that are accepted
    assert [(r["row"], r["seed"], r["accuracy"]) for r in found] == [("a", 0, 0.7), ("a", 1, 0.8), ("b", 0, 0.6)]

    assert ablation.read_report_records(tmp_path / "nowhere") == []
    (tmp_path / "ablation.json").write_text('{"rows": []}')
    with pytest.raises(ValueError, match=r"ablation\.json: not an ablation report"):
        ablation.read_report_records(tmp_path)


def test_summary_every_divides_the_checkpoint_interval():
    from facenet_tf.train.loop import summary_every

    assert [summary_every(n) for n in (1, 2, 7, 25, 75, 100, 101, 120)] == [1, 1, 1, 1, 5, 10, 1, 12]


@pytest.mark.usefixtures("eager")
def test_every_checkpoint_interval_is_logged_and_read_back(tmp_path):
    """21 steps per interval: Keras' TensorBoard callback logs an interval's means only if its update_freq divides
    21 (it was 21 // 10 = 2: nothing logged). Without the events, the last invocation's history in summary.json
    gives the curves."""
    import tensorflow as tf

    from facenet_tf.train import train

    workdir = tmp_path / "run"
    train(TrainConfig(workdir=str(workdir), data_dir=str(make_tree(tmp_path / "faces")), model="nns2",
                      input_size=(40, 32), embedding_dim=8, identities_per_batch=3, faces_per_identity=3,
                      extra_negatives=2, exclude_pairs=(), steps=21, checkpoint_every=21), verbose=0)
    events = list((workdir / ablation.LOGS).glob("events.out.tfevents.*"))
    steps = sorted(int(event.step) for path in events for record in tf.data.TFRecordDataset(str(path))
                   for event in [tf.compat.v1.Event.FromString(record.numpy())]
                   for value in event.summary.value if value.tag == "epoch_loss")
    assert steps == [0]
    curves = ablation.read_curves(workdir)
    assert [x for x, _ in curves["loss"]] == [21 * 11]
    for path in events:
        path.unlink()
    again = ablation.read_curves(workdir)
    assert {name: [x for x, _ in points] for name, points in again.items()} == {
        name: [21 * 11] for name in ablation.CURVES}
    assert [v for _, v in again["loss"]] == pytest.approx([v for _, v in curves["loss"]], rel=1e-5)
