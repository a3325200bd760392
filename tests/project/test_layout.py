"""The package's layout says what is inside: modules small enough to read in one sitting,
none named like a standard-library module, and docstrings that keep the what and the why
(dated timings and issue numbers belong in docs/benchmarks.md)."""
import ast
import re
import sys

import pytest

from conftest import ROOT

SRC = ROOT / "src" / "bareprop"
MODULES = sorted(SRC.rglob("*.py"))


def test_the_walk_finds_the_package():
    assert len(MODULES) > 80 and SRC / "core" / "catalog.py" in MODULES


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(SRC)))
def test_no_module_is_over_400_lines(path):
    assert len(path.read_text().splitlines()) <= 400


def test_no_module_shadows_the_standard_library():
    names = {p.stem for p in MODULES} | {p.parent.name for p in MODULES}
    assert not names & set(sys.stdlib_module_names) - {"__init__", "__main__"}, \
        names & set(sys.stdlib_module_names)


DIARY = re.compile(r"\b20\d\d-\d\d-\d\d\b|\bissue #?\d+|#1\d\b")


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(SRC)))
def test_docstrings_hold_no_benchmark_diary(path):
    tree = ast.parse(path.read_text())
    docs = [ast.get_docstring(n) or "" for n in ast.walk(tree)
            if isinstance(n, (ast.Module, ast.ClassDef, ast.FunctionDef))]
    found = [m.group(0) for d in docs for m in DIARY.finditer(d)]
    assert not found, found
