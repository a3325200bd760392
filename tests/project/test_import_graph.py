"""The package's import graph flows one way: no module imports, directly or through
others, a module that imports it back (issue: cli/main <-> cli/train_cmd), and no import
climbs the package floors: a module imports only from its own package or from a package
on a lower floor."""
import ast
from pathlib import Path

import pytest

from conftest import ROOT

SRC = ROOT / "src"

# The package floors, bottom first (docs/architecture.md explains the order: what each
# floor is for and why it sits where it does). A module of one package may import a
# module of another only when that package's floor is below its own: packages on the
# same floor (optim and data) do not import each other. A top-level module (errors.py,
# archive.py, plots.py, ...) counts as a package of its own.
FLOORS = [
    ("errors",), ("archive",), ("runs",), ("core",), ("optim", "data", "preprocess", "plots"),
    ("fast",), ("modelfile",), ("train",), ("inference",), ("explain",), ("interop",), ("reference",),
    ("experiment",), ("distributed",), ("bench",), ("sweep",), ("report",), ("web",), ("cli",),
]
# The public facade re-exports every floor; it may import, and be imported for
# __version__, from anywhere.
FACADE = {"bareprop", "bareprop.__main__"}


def _module_name(path: Path, src: Path = SRC) -> str:
    parts = list(path.relative_to(src).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def import_graph(src: Path = SRC) -> dict[str, set[str]]:
    """module -> the bareprop modules it imports anywhere in its body (lazy imports too)."""
    modules = {_module_name(p, src): p for p in (src / "bareprop").rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        edges = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                base = package
                for _ in range(max(node.level - 1, 0)):
                    base = base.rsplit(".", 1)[0]
                target = (f"{base}.{node.module}" if node.module else base) if node.level \
                    else (node.module or "")
                for alias in node.names:        # "from . import io" names a module
                    sub = f"{target}.{alias.name}"
                    edges.add(sub if sub in modules else target)
            elif isinstance(node, ast.Import):
                edges.update(a.name for a in node.names)
        graph[name] = {e for e in edges if e in modules and e != name}
    return graph


def find_cycle(graph):
    state, stack = {}, []

    def visit(n):
        state[n] = 1
        stack.append(n)
        for m in sorted(graph[n]):
            if state.get(m) == 1:
                return stack[stack.index(m):] + [m]
            if m not in state and (c := visit(m)):
                return c
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(graph):
        if n not in state and (c := visit(n)):
            return c
    return None


FLOOR_OF = {package: i for i, floor in enumerate(FLOORS) for package in floor}


def package_of(module: str) -> str:
    """bareprop.core.linear -> core; bareprop.modelfile -> modelfile."""
    return module.split(".")[1]


def floor_of(module: str) -> int:
    package = package_of(module)
    if package not in FLOOR_OF:
        raise AssertionError(f"{module}: package {package!r} has no floor; add it to FLOORS "
                             "in tests/project/test_import_graph.py and to docs/architecture.md")
    return FLOOR_OF[package]


def find_climbs(graph) -> list[tuple[str, str]]:
    """(importer, imported) for every import whose package is not on a lower floor than
    the importer's (same package excepted; the facade exempt), sorted."""
    climbs = []
    for module, imported in graph.items():
        if module in FACADE:
            continue
        for target in imported - FACADE:
            if package_of(target) != package_of(module) and \
                    floor_of(target) >= floor_of(module):
                climbs.append((module, target))
    return sorted(climbs)


def test_no_import_cycle_between_bareprop_modules():
    graph = import_graph()
    assert "bareprop.cli.train_cmd" in graph and graph["bareprop.cli.train_cmd"]
    # package __init__ files re-export their children, so edges into a package are
    # ignored: the cycle that matters is module -> module
    modules = {n: {m for m in e if not (SRC / m.replace(".", "/") / "__init__.py").exists()}
               for n, e in graph.items() if not (SRC / n.replace(".", "/") / "__init__.py").exists()}
    assert find_cycle(modules) is None, " -> ".join(find_cycle(modules))


def test_the_cycle_finder_finds_a_planted_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_climbs_a_floor():
    climbs = find_climbs(import_graph())
    assert not climbs, f"{len(climbs)} imports climb the floors:\n" + "\n".join(
        f"  {a} ({package_of(a)}) -> {b} ({package_of(b)})" for a, b in climbs)


def test_every_package_has_a_floor():
    for module in import_graph():
        if module not in FACADE:
            floor_of(module)


def test_the_floor_checker_finds_a_planted_climb(tmp_path):
    """A lazy import inside a function, climbing from core to train, is found from the
    source; so are same-floor imports; same-package and downward ones are not."""
    files = {
        "__init__.py": "from . import core\n",            # the facade: exempt
        "errors.py": "",
        "modelfile.py": "from .core import layers\n",     # modelfile -> core: down
        "core/__init__.py": "from .layers import Linear\n",
        "core/layers.py": "from ..errors import ConfigError\n"
                          "def fit():\n    from ..train import loop\n    return loop\n",
        "optim/__init__.py": "", "optim/sgd.py": "from ..data import batches\n",
        "data/__init__.py": "", "data/batches.py": "from .. import __version__\n",
        "train/__init__.py": "",
        "train/loop.py": "from .. import modelfile\nimport bareprop.core\n",
    }
    for name, text in files.items():
        path = tmp_path / "bareprop" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    graph = import_graph(tmp_path)
    assert "bareprop.train.loop" in graph["bareprop.core.layers"]
    assert find_climbs(graph) == [("bareprop.core.layers", "bareprop.train.loop"),
                                  ("bareprop.optim.sgd", "bareprop.data.batches")]
    # a package the floors do not know is a failure that says where to add it
    with pytest.raises(AssertionError, match="'newpkg' has no floor"):
        find_climbs({**graph, "bareprop.train.loop": {"bareprop.newpkg"}})
