"""The README cannot rot: its first verify prints what it shows, every facenet-tf line in it parses, and every
test it cites for a guarantee exists. (Its Python block is run by tests/test_api.py.)"""

import ast
import re
import shlex
import shutil

import pytest

from facenet_tf import cli
from facenet_tf.paths import REPO_ROOT

README = (REPO_ROOT / "README.md").read_text()


def blocks(language):
    return re.findall(rf"```{language}\n(.*?)```", README, re.S)


def test_the_first_verify_prints_what_the_readme_shows(lfw_root, pretrained_weights_file, tmp_path, monkeypatch,
                                                      capsys):
    from facenet_tf import paths

    (block,) = blocks("console")
    command, *expected = block.strip().splitlines()
    argv = shlex.split(command.removeprefix("$ "))
    assert argv[:2] == ["facenet-tf", "verify"]
    for name in argv[2:]:
        person = name.rsplit("_", 1)[0]
        shutil.copy(paths.lfw_images_dir(lfw_root) / person / name, tmp_path / name)
    monkeypatch.chdir(tmp_path)
    assert cli.main([*argv[1:], "--quiet"]) == 0
    assert capsys.readouterr().out.splitlines() == expected


def command_lines():
    for block in blocks("bash"):
        for line in block.splitlines():
            line = line.split("  #", 1)[0].strip()
            if line.startswith("facenet-tf "):
                yield line


@pytest.mark.parametrize("line", list(command_lines()))
def test_every_command_in_the_readme_parses(line):
    parser = cli.build_parser()
    args = parser.parse_args(shlex.split(line)[1:])  # a usage error exits (status 2) and fails the test
    assert args.run is not None


def test_the_readme_shows_every_command():
    shown = {shlex.split(line)[1] for line in command_lines()}
    commands = set(cli.build_parser()._subparsers._group_actions[0].choices)
    assert commands <= shown, f"not in the README: {sorted(commands - shown)}"


def test_every_cited_test_exists():
    cited = set(re.findall(r"`(tests/[\w/]+\.py)::(\w+)`", README))
    assert len(cited) >= 15
    missing = []
    for path, name in sorted(cited):
        source = REPO_ROOT / path
        defined = {node.name for node in ast.walk(ast.parse(source.read_text()))
                   if isinstance(node, ast.FunctionDef)} if source.is_file() else set()
        if name not in defined:
            missing.append(f"{path}::{name}")
    assert not missing, f"the README cites tests that do not exist: {missing}"
