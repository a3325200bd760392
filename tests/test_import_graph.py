"""The package's import graph flows one way: no module imports, directly or through
others, a module that imports it back (issue: cli/main <-> cli/train_cmd)."""
import ast
from pathlib import Path

from conftest import ROOT

SRC = ROOT / "src"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def import_graph() -> dict[str, set[str]]:
    """module -> the bareprop modules it imports anywhere in its body (lazy imports too)."""
    modules = {_module_name(p): p for p in (SRC / "bareprop").rglob("*.py")}
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
