"""The generated parts of the committed docs (docs/cli.md, the tables of docs/api.md, the
layer table of docs/format.md) are what the code says now, so the files are useful on
their own; a command, flag or public name changed without `python docs/hooks/generate.py`
fails here. Needs no MkDocs."""
import argparse
import importlib.util

import pytest

from conftest import ROOT


@pytest.fixture(scope="module")
def generate():
    spec = importlib.util.spec_from_file_location("docs_generate", ROOT / "docs" / "hooks" / "generate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_pages_are_up_to_date(generate):
    assert generate.stale_pages() == [], "run: python docs/hooks/generate.py"


def test_the_committed_pages_are_not_stubs(generate):
    import bareprop

    from bareprop.cli.main import build_parser

    cli = (ROOT / "docs" / "cli.md").read_text()
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    for name, cmd in sub.choices.items():
        assert f"## bareprop {name}" in cli, name
        for action in cmd._actions:
            if action.help != argparse.SUPPRESS:
                for flag in action.option_strings:
                    assert f"`{flag}" in cli, f"{name} {flag}"
    api = (ROOT / "docs" / "api.md").read_text()
    for name in bareprop.__all__:
        row = next((line for line in api.splitlines() if line.startswith(f"| `{name}` |")), None)
        assert row and row.split("|")[2].strip(), f"{name}: no row with a summary"
    assert "| `Linear` | `in_features`, `out_features`, `bias` |" in \
        (ROOT / "docs" / "format.md").read_text()


def test_a_new_flag_or_name_makes_them_stale(generate, monkeypatch, tmp_path):
    import shutil

    import bareprop
    import bareprop.cli.main as cli_main

    docs = tmp_path / "docs"
    shutil.copytree(ROOT / "docs", docs, ignore=shutil.ignore_patterns("images", "javascripts"))
    build = cli_main.build_parser

    def with_a_flag():
        parser = build()
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        sub.choices["train"].add_argument("--brand-new", help="a flag the page lacks")
        return parser
    monkeypatch.setattr(cli_main, "build_parser", with_a_flag)
    assert generate.stale_pages(docs) == ["cli.md"]
    monkeypatch.setattr(cli_main, "build_parser", build)
    monkeypatch.setattr(bareprop, "__all__", [*bareprop.__all__, "Linear2"], raising=True)
    monkeypatch.setattr(bareprop, "Linear2", type("Linear2", (bareprop.Module,), {
        "__doc__": "A layer the page lacks.", "__module__": "bareprop.core.linear"}),
        raising=False)
    assert generate.stale_pages(docs) == ["api.md"]
    monkeypatch.undo()
    assert generate.stale_pages(docs, write=False) == []
