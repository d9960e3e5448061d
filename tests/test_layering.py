"""Data flows one way: a lower layer never imports a higher one (not even inside a function), and no two modules
import each other, directly or through others. Read from the source with ``ast``, so a function-level import
counts as much as a top-level one."""

import ast
import collections

from facenet_tf.paths import REPO_ROOT

PACKAGE = REPO_ROOT / "facenet_tf"
#: Each top-level part of facenet_tf and its layer; a module may import its own layer and those below.
LAYERS = {
    "paths": 0, "atomic": 0, "quiet": 0,
    "data": 1, "align": 2, "models": 3, "losses": 4, "portable": 4, "train": 5,
    "recognition": 6, "evaluation": 7, "harmonic": 8, "export": 9,
    "api": 10, "serving": 10, "cli": 11,
}


def modules() -> dict[str, ast.Module]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(["facenet_tf", *parts])] = ast.parse(path.read_text(), str(path))
    return found


def imports(tree: ast.Module, known) -> set[str]:
    """The facenet_tf modules a module imports (``from facenet_tf.x import y`` counts y when it is a module)."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "facenet_tf":
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                names.add(full if full in known else node.module)
        elif isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names if alias.name.split(".")[0] == "facenet_tf"}
    return names


def graph():
    found = modules()
    return {name: imports(tree, found) & set(found) for name, tree in found.items()}


def part(module: str) -> str | None:
    pieces = module.split(".")
    return pieces[1] if len(pieces) > 1 else None


def test_every_part_has_a_layer():
    parts = {part(module) for module in graph()} - {None}
    assert parts <= set(LAYERS), f"give these parts a layer in LAYERS: {sorted(parts - set(LAYERS))}"


def test_no_lower_layer_imports_a_higher_one():
    wrong = sorted(f"{module} imports {target}" for module, targets in graph().items() if part(module)
                   for target in targets if part(target) and LAYERS[part(target)] > LAYERS[part(module)])
    assert not wrong, "\n".join(wrong)


def test_no_import_loops():
    edges = graph()
    loops = []
    index, low, stack, on_stack = {}, {}, [], set()

    def visit(node, counter=[0]):  # Tarjan's strongly connected components
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for target in edges[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                loops.append(sorted(component))

    for module in edges:
        if module not in index:
            visit(module)
    assert not loops, f"import loops: {loops}"


def test_the_checks_can_fail():
    """The graph sees function-level imports (the form a hidden loop takes)."""
    tree = ast.parse("def f():\n    from facenet_tf.train import loop\n")
    assert imports(tree, {"facenet_tf.train.loop"}) == {"facenet_tf.train.loop"}
    assert collections.Counter(part(m) for m in graph())["cli"] == 1


def test_training_and_evaluation_know_nothing_of_harmonic():
    """``facenet_tf.train.loop.train`` runs harmonic training through a hook; evaluation never reaches up to the
    cross-model code: harmonic sits above both."""
    assert LAYERS["harmonic"] > max(LAYERS["train"], LAYERS["evaluation"])
    edges = graph()
    assert "facenet_tf.train.loop" in edges["facenet_tf.harmonic.training"]
    assert not {t for m, targets in edges.items() if part(m) in ("train", "evaluation") for t in targets
                if part(t) == "harmonic"}
