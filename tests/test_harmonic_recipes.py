"""experiments/harmonic_recipes.py: every recipe expands, a few equal the shell scripts they replaced word for word,
and every command names a script, flags, a config and library names that exist (so a recipe cannot rot silently).

Plain data: the module is loaded from its file (not through sys.path) and imports nothing but the standard library.
"""

import ast
import importlib.util
import re
import shlex
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXPERIMENTS = ROOT / "experiments"


def _load(path):
    spec = importlib.util.spec_from_file_location(f"_{path.stem}_under_test", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


recipes = _load(EXPERIMENTS / "harmonic_recipes.py")

# One accepted value per parameter name, for expanding every step.
SAMPLE = dict(W="1", M="1.0", P2="400", H="B", STEPS="300", RIDGE="0.3", STAGE="/tmp/stage", RUN="A",
              VARIANT="both_w0_lr1e-4", OUT="/tmp/out/A", TRAINED="/tmp/trained")
EXPANDED = {
    (study, step): recipes.expand(study, step, [SAMPLE[p.partition("=")[0]] for p in params.split()])
    for study, spec in recipes.STUDIES.items() for step, (params, _) in spec["steps"].items()
}

# Regression reference: command lines of the removed shell scripts, variables substituted by hand.
OLD_SCRIPTS = {
    # results/harmonic_aligned/commands.sh view2 B 3
    ("aligned", "view2", ("B", "3")): [
        "TF_ENABLE_ONEDNN_OPTS=1 .venv/bin/python experiments/train.py --workdir=runs/v2B_al_si3 --model=nns2 "
        "--identities_per_batch=30 --faces_per_identity=4 --extra_negatives=60 --reduction=mean_over_pairs "
        "--checkpoint_every=200 --harmonic_with=inception_resnet_v1 --harmonic_weights=msceleb "
        "--harmonic_candidates=old --optimizer=adam --learning_rate=0.001 --harmonic_phase=all --steps=2000 "
        "--lr_decay_steps=1600 --harmonic_fit_alignment=detect --harmonic_same_image_weight=3 "
        "--exclude_pairs=view2:folds=6-10 --init_from=runs/v2B_old_p1"],
    # results/harmonic_view2/lstsq_commands.sh view2 (RIDGE unset: 0.3)
    ("view2_lstsq", "view2", ()): [
        f".venv/bin/python experiments/train.py --workdir=runs/v2{h}_flip_lstsq --model=inception_resnet_v1 "
        "--identities_per_batch=30 --faces_per_identity=4 --extra_negatives=60 --crop_fraction=0.56 "
        "--reduction=mean_over_pairs --checkpoint_every=50 --init_from=inception_resnet_v1 --init_weights=msceleb "
        "--harmonic_phase=embedding_layer --harmonic_solver=least_squares --harmonic_ridge=0.3 --steps=0 "
        f"--exclude_pairs=view2:folds={folds} --harmonic_with=runs/v2{h}_alone"
        for h, folds in (("A", "1-5"), ("B", "6-10"))] + [
        '.venv/bin/python experiments/harmonic_report.py --pairs=view2 --split_folds=5 '
        '--old="runs/v2A_alone|runs/v2B_alone" --old_weights= --output_dir=results/harmonic_view2 --tag=_view2_lstsq '
        '--new="p1_triplet=runs/v2A_flip_p1|runs/v2B_flip_p1,p2_gpu_both_w0=runs/v2A_flip_p2gpu_both|'
        'runs/v2B_flip_p2gpu_both,p1_lstsq=runs/v2A_flip_lstsq|runs/v2B_flip_lstsq"'],
    # results/harmonic/commands.sh, second line (phase 2 from the 200-step phase 1)
    ("two_phase", "phase2", ()): [
        "nice -n 10 .venv/bin/python experiments/train.py --workdir=runs/harmonic_p2 --model=nns2 "
        "--identities_per_batch=30 --faces_per_identity=4 --extra_negatives=60 --crop_fraction=0.56 "
        "--reduction=mean_over_pairs --steps=200 --checkpoint_every=100 --learning_rate=0.01 "
        "--harmonic_with=inception_resnet_v1 --harmonic_weights=msceleb --harmonic_phase=all "
        "--init_from=runs/harmonic_p1"],
    # results/harmonic_view2/gpu/commands.sh train /tmp/stage A both_w0_lr1e-4 /tmp/out/A
    ("view2_gpu", "train", ("/tmp/stage", "A", "both_w0_lr1e-4", "/tmp/out/A")): [
        'KERAS_BACKEND=jax python3 experiments/harmonic_jax.py --mode=train --stage_dir="/tmp/stage" --run="A" '
        "--steps=2000 --lr_decay_steps=1600 --log_every=100 --candidates=both --same_image_weight=0 "
        '--learning_rate=1e-4 --output_dir="/tmp/out/A"'],
}

ENV_WORD = re.compile(r"[A-Z_][A-Z0-9_]*=.*")
DEFINED = re.compile(r"""flags\.DEFINE_\w+\(\s*["'](\w+)["']""")


def _defined_flags(*paths):
    return {name for path in paths for name in DEFINED.findall(path.read_text())}


# experiments/train.py defines its flags itself; facenet_tf/train/ is scanned too in case some move there.
TRAIN_FLAGS = _defined_flags(EXPERIMENTS / "train.py", *sorted((ROOT / "facenet_tf" / "train").glob("*.py")))
CONFIGS = _load(EXPERIMENTS / "configs.py").CONFIGS


def _program(command):
    """(environment words, the command without them and without a leading `nice -n N`)."""
    n = next(i for i, word in enumerate(command + [""]) if not ENV_WORD.fullmatch(word))
    rest = command[n:]
    return command[:n], rest[3:] if rest[:2] == ["nice", "-n"] else rest


def _check_inline_code(code):
    """`python -c` code: it compiles, its facenet_tf names exist, its TrainConfig keywords are train.py flags;
    returns the TrainConfig calls it checked."""
    tree = ast.parse(code)
    calls = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module.split(".")[0] == "facenet_tf":
            path = ROOT.joinpath(*node.module.split("."))
            source = (path / "__init__.py" if path.is_dir() else path.with_suffix(".py")).read_text()
            for alias in node.names:
                pattern = rf"\b{alias.name}\b" if path.is_dir() else rf"^(def|class) {alias.name}\b"
                assert re.search(pattern, source, re.M), f"{node.module} has no {alias.name}"
        if isinstance(node, ast.Call) and ast.unparse(node.func) in ("TrainConfig", "TrainConfig.from_flags"):
            unknown = {k.arg for k in node.keywords} - TRAIN_FLAGS
            assert not unknown, f"TrainConfig keywords that are not train.py flags: {sorted(unknown)}"
            calls.append(ast.unparse(node.func))
    return calls


def test_every_step_expands_to_commands():
    assert len(recipes.STUDIES) == 17  # one per removed shell script
    for (study, step), commands in EXPANDED.items():
        assert commands, (study, step)
        assert all(isinstance(word, str) and word for command in commands for word in command), (study, step)


@pytest.mark.parametrize("key", list(OLD_SCRIPTS), ids=lambda key: f"{key[0]}-{key[1]}")
def test_expansion_equals_the_old_script(key):
    study, step, args = key
    assert recipes.expand(study, step, list(args)) == [shlex.split(line) for line in OLD_SCRIPTS[key]]


def test_commands_name_existing_scripts_flags_and_configs():
    programs = set()
    for (study, step), commands in EXPANDED.items():
        for command in commands:
            env, words = _program(command)
            where = f"{study} {step}: {shlex.join(command)[:200]}"
            assert all(word.split("=")[0] in ("TF_ENABLE_ONEDNN_OPTS", "KERAS_BACKEND") for word in env), where
            if words[0] == "cp":  # the one shell utility: keeps a model before its run is resumed
                assert len(words) == 3 and all(w.startswith("runs/") for w in words[1:]), where
                continue
            assert words[0] in (".venv/bin/python", "python3"), where
            if words[1] == "-c":
                _check_inline_code(words[2])
                continue
            script = ROOT / words[1]
            assert words[1].startswith("experiments/") and script.is_file(), where
            programs.add(words[1])
            known = TRAIN_FLAGS if script.name == "train.py" else _defined_flags(script)
            for word in words[2:]:
                assert word.startswith("--"), where
                name, _, value = word[2:].partition("=")
                assert name in known, f"{where}: {script.name} defines no --{name}"
                if name == "config":
                    assert value in CONFIGS, where
    assert programs == {f"experiments/{name}.py" for name in ("train", "harmonic_report", "harmonic_probe",
                                                              "harmonic_jax")}


def test_results_pages_name_existing_studies_and_steps():
    mentions = 0
    for page in sorted((ROOT / "results").rglob("*.md")):
        for span in re.findall(r"`([^`]*harmonic_recipes\.py[^`]*)`", page.read_text()):
            options = dict(word[2:].partition("=")[::2] for word in shlex.split(span) if word.startswith("--"))
            assert options["study"] in recipes.STUDIES, f"{page.name}: {span}"
            if "step" in options:
                assert recipes.expand(options["study"], options["step"], options["args"].split(",")
                                      if options.get("args") else []), f"{page.name}: {span}"
            mentions += 1
    assert mentions >= 20


def test_module_imports_only_the_standard_library():
    tree = ast.parse((EXPERIMENTS / "harmonic_recipes.py").read_text())
    imported = {alias.name.split(".")[0] for node in tree.body if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module.split(".")[0] for node in tree.body if isinstance(node, ast.ImportFrom)}
    assert imported <= set(sys.stdlib_module_names), imported


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="H is one of A, B"):
        recipes.expand("aligned", "view2", ["C", "1"])
    with pytest.raises(ValueError, match="takes H W"):
        recipes.expand("aligned", "view2", ["A"])
    with pytest.raises(ValueError, match="no step"):
        recipes.expand("aligned", "view3")
    with pytest.raises(SystemExit) as exit_info:
        recipes.main(["--study=nonesuch", "--step=view1"])
    assert exit_info.value.code == 2


def test_main_lists_and_prints(capsys):
    assert recipes.main(["--list"]) == 0
    listing = capsys.readouterr().out
    for study, spec in recipes.STUDIES.items():
        assert f"\n{study}\n" in f"\n{listing}"
    assert "  view2 H W\n" in listing and "  phase2 M [P2=400]\n" in listing
    assert recipes.main(["--study=aligned", "--step=view2", "--args=B,3"]) == 0
    assert shlex.split(capsys.readouterr().out) == shlex.split(OLD_SCRIPTS[("aligned", "view2", ("B", "3"))][0])


def test_run_runs_in_order_from_the_root_and_stops_at_the_first_failure(monkeypatch, capsys):
    calls = []

    class Done:
        def __init__(self, returncode):
            self.returncode = returncode

    def fake_run(argv, cwd, env):
        calls.append((argv, cwd, env.get("TF_ENABLE_ONEDNN_OPTS")))
        return Done(0 if len(calls) == 1 else 3)

    monkeypatch.setattr(recipes.subprocess, "run", fake_run)
    assert recipes.main(["--study=view2_adam_same_image", "--step=all", "--args=1", "--run"]) == 3
    assert len(recipes.expand("view2_adam_same_image", "all", ["1"])) == 3 and len(calls) == 2
    assert [argv[:2] for argv, _, _ in calls] == [[".venv/bin/python", "experiments/train.py"]] * 2
    assert "--workdir=runs/v2A_adam_si1" in calls[0][0] and "--workdir=runs/v2B_adam_si1" in calls[1][0]
    assert all(cwd == ROOT and onednn == "1" for _, cwd, onednn in calls)
    assert "exit status 3" in capsys.readouterr().err


def test_inline_code_keywords_are_checked():
    """The warm-up code builds its config from train.py's flag names (TrainConfig.from_flags); a name that is no
    flag is caught."""
    assert _check_inline_code(recipes.WARM_VIEWS) == ["TrainConfig.from_flags"]
    with pytest.raises(AssertionError, match="harmonic_nope"):
        _check_inline_code("from facenet_tf.train import TrainConfig\nTrainConfig.from_flags(harmonic_nope=1)\n")
