"""The LFW root is resolved once per command (``facenet_tf.paths.command_lfw_root`` / ``lfw_dir``) and passed down:
no library module consults the environment for it (read from the source with ``ast``), a pairs name without a root
is a one-line error, and ``command_lfw_root`` follows its rules. Nothing here needs ../shared: the environment and
the shared folder are set per test."""

import ast

import pytest

from facenet_tf import paths
from facenet_tf.data import lfw
from facenet_tf.paths import REPO_ROOT

PACKAGE = REPO_ROOT / "facenet_tf"
#: The resolvers, which only commands call.
RESOLVERS = {"lfw_dir", "command_lfw_root", "command_lfw_roots", "tfds_data_dir"}
#: Modules that are commands themselves (a module's own ``main`` under ``if __name__ == "__main__"`` is one too).
COMMAND_MODULES = {"paths.py", "cli.py"}


def _called_name(call: ast.Call) -> str | None:
    func = call.func
    return func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else None


def _is_main_guard(node: ast.AST) -> bool:
    """``if __name__ == "__main__":``"""
    return (isinstance(node, ast.If) and isinstance(node.test, ast.Compare)
            and isinstance(node.test.left, ast.Name) and node.test.left.id == "__name__"
            and any(isinstance(c, ast.Constant) and c.value == "__main__" for c in node.test.comparators))


def resolver_calls(tree: ast.Module) -> list[int]:
    """Lines calling a resolver outside a command part of the module: its ``if __name__ == "__main__"`` block and,
    where it has one, its ``main`` function."""
    command_parts = [node for node in tree.body if _is_main_guard(node)]
    if command_parts:
        command_parts += [node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name == "main"]
    allowed = {id(n) for part in command_parts for n in ast.walk(part)}
    return [node.lineno for node in ast.walk(tree) if isinstance(node, ast.Call) and id(node) not in allowed
            and _called_name(node) in RESOLVERS]


def test_only_commands_resolve_the_lfw_root():
    wrong = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE).as_posix()
        if relative in COMMAND_MODULES:
            continue
        tree = ast.parse(path.read_text(), str(path))
        wrong += [f"facenet_tf/{relative}:{line}" for line in resolver_calls(tree)]
        wrong += [f"facenet_tf/{relative}:{node.lineno} reads paths.LFW_ENV" for node in ast.walk(tree)
                  if isinstance(node, (ast.Name, ast.Attribute)) and getattr(node, "id", getattr(node, "attr", None))
                  == "LFW_ENV"]
    assert not wrong, ("library modules take the resolved LFW root; only commands call paths.lfw_dir / "
                       "command_lfw_root:\n" + "\n".join(wrong))


def test_the_check_sees_calls_and_allows_a_modules_own_main():
    library = ast.parse("from facenet_tf import paths\ndef f():\n    return paths.lfw_dir(None)\n")
    assert resolver_calls(library) == [3]
    command = ast.parse("from facenet_tf.paths import command_lfw_root\ndef main():\n    command_lfw_root(None)\n"
                        "def helper():\n    command_lfw_root(None)\nif __name__ == '__main__':\n    main()\n")
    assert resolver_calls(command) == [5]


@pytest.fixture()
def places(tmp_path, monkeypatch):
    """An LFW root for the environment, another in a shared folder, neither set yet: {name: path}."""
    monkeypatch.delenv(paths.LFW_ENV, raising=False)
    monkeypatch.setattr(paths, "shared_dir", lambda: None)
    env_root, shared = tmp_path / "env_lfw", tmp_path / "shared"
    (env_root / "lfw-deepfunneled").mkdir(parents=True)
    (shared / "data" / "lfw").mkdir(parents=True)
    pairs = tmp_path / "mine" / "pairs.txt"
    pairs.parent.mkdir()
    pairs.write_text("1\t1\nAlice_A\t1\t2\nAlice_A\t1\tBob_B\t1\n")
    given = tmp_path / "given"
    given.mkdir()
    return {"env": env_root, "shared": shared, "pairs": pairs, "given": given, "tmp": tmp_path}


def test_command_lfw_root_rules(places, monkeypatch):
    # nothing anywhere: None (the library function that needs the root says so)
    assert paths.command_lfw_root(None) is None and paths.command_lfw_root(None, "view2") is None
    # the shared folder, then the environment before it
    monkeypatch.setattr(paths, "shared_dir", lambda: places["shared"])
    assert paths.command_lfw_root(None, "view2") == places["shared"] / "data" / "lfw"
    monkeypatch.setenv(paths.LFW_ENV, str(places["env"]))
    assert paths.command_lfw_root(None) == places["env"]
    assert paths.command_lfw_root(None, "view1") == places["env"]
    # a pairs file given by path, without --data_dir: None, its images are beside it (fold selections too)
    assert paths.command_lfw_root(None, places["pairs"]) is None
    assert paths.command_lfw_root(None, f"{places['pairs']}:folds=1-2") is None
    # a command that reads LFW by name too (an export's calibration) gets both roots at once
    assert paths.command_lfw_roots(None, places["pairs"]) == (places["env"], None)
    assert paths.command_lfw_roots(None, "view2") == (places["env"], places["env"])
    # --data_dir wins over everything
    assert paths.command_lfw_root(str(places["given"]), places["pairs"]) == places["given"]
    assert paths.command_lfw_root(places["given"], "view2") == places["given"]
    assert paths.command_lfw_roots(places["given"], places["pairs"]) == (places["given"], places["given"])
    # an environment naming a missing folder is a mistake: a one-line error naming the variable and the folder
    monkeypatch.setenv(paths.LFW_ENV, str(places["tmp"] / "nowhere"))
    with pytest.raises(FileNotFoundError) as error:
        paths.command_lfw_root(None, "view2")
    assert str(error.value).startswith(f"${paths.LFW_ENV}: '{places['tmp'] / 'nowhere'}' does not exist.")
    assert "\n" not in str(error.value)


def test_missing_data_dir_is_a_one_line_error_naming_it(places):
    missing = places["tmp"] / "fcaes"
    with pytest.raises(FileNotFoundError) as error:
        paths.command_lfw_root(str(missing), "view2")
    message = str(error.value)
    assert message.startswith(f"--data_dir: '{missing}' does not exist.") and paths.LFW_HELP in message
    assert "\n" not in message


def test_lfw_images_dir_only_picks_the_subfolder(places, monkeypatch):
    monkeypatch.setenv(paths.LFW_ENV, str(places["env"]))  # never read by lfw_images_dir
    assert paths.lfw_images_dir(places["env"]) == places["env"] / "lfw-deepfunneled"
    assert paths.lfw_images_dir(places["given"]) == places["given"]
    (places["given"] / "lfw").mkdir()
    assert paths.lfw_images_dir(places["given"]) == places["given"] / "lfw"
    for root in (None, places["tmp"] / "nowhere"):
        with pytest.raises(FileNotFoundError) as error:
            paths.lfw_images_dir(root)
        assert paths.LFW_HELP in str(error.value) and "\n" not in str(error.value)


@pytest.mark.parametrize("name", [*lfw.PAIRS_FILES, "view2:folds=1-5"])
def test_a_pairs_name_without_a_root_is_a_one_line_error(places, monkeypatch, name):
    """Even with $FACENET_TF_LFW_DIR set: the library never reads it."""
    (places["env"] / "pairs.txt").write_text("1\t1\nAlice_A\t1\t2\nAlice_A\t1\tBob_B\t1\n")
    monkeypatch.setenv(paths.LFW_ENV, str(places["env"]))
    with pytest.raises(FileNotFoundError) as error:
        lfw.load_pairs(name, check_exists=False)
    message = str(error.value)
    assert message.startswith(f"the LFW pairs '{name.split(':')[0]}' need the LFW root")
    assert paths.LFW_HELP in message and "\n" not in message
    if name == "view2":
        assert len(lfw.load_pairs(name, places["env"], check_exists=False)) == 2  # with the root, it reads


def test_a_pairs_path_without_a_root_still_reads_the_tree_beside_it(places):
    pairs = lfw.load_pairs(places["pairs"], check_exists=False)
    assert pairs.images_dir == places["pairs"].parent and pairs.identities == {"Alice_A", "Bob_B"}
