"""MkDocs hook: the pages that must not drift from the code are generated at build time.

- ``cli.md``: every command and flag, with its help, read from ``bareprop.cli.main``'s
  argparse parser (a command added later appears once its module is in the parser);
- ``api.md``: one mkdocstrings block per public module, found from ``bareprop.__all__``
  and the package's subpackages, and a table of every name in ``bareprop.__all__``
  linked to its entry (a public name left undocumented is a broken reference: the
  strict build fails);
- ``source/<path>.md``: each repository file a page links to (``../tests/test_x.py``,
  ``../src/bareprop/core/conv.py``) as a page of its own, so the derivations' "Proven
  by" links work on the site as they do on GitHub; a link to a file that does not exist
  is left alone and fails the strict build.

Not a part of the library: it runs only inside ``mkdocs build``/``mkdocs serve``.
"""
from __future__ import annotations

import argparse
import pkgutil
import posixpath
import re
import sys
from pathlib import Path

from mkdocs.structure.files import File

ROOT = Path(__file__).resolve().parents[2]
# the checkout being documented, even where another bareprop is installed
sys.path.insert(0, str(ROOT / "src"))

CLI_MARK = "<!-- generated: cli -->"
API_MARK = "<!-- generated: api -->"
# a link that leaves docs/ for a file of the repository: ](../tests/test_x.py)
REPO_LINK = re.compile(r"\]\(\.\./((?:src|tests|benchmarks|examples)/[^)#\s]+)(#[^)\s]*)?\)")
LANGUAGE = {".py": "python", ".json": "json", ".toml": "toml", ".md": "markdown"}


# ---------------------------------------------------------------------------- CLI page

def _flag_row(action: argparse.Action, formatter: argparse.HelpFormatter) -> str:
    if action.option_strings:
        metavar = "" if action.nargs == 0 else " " + formatter._format_args(
            action, formatter._get_default_metavar_for_optional(action))
        *short, last = action.option_strings
        name = ", ".join([f"`{s}`" for s in short] + [f"`{last}{metavar}`"])
    else:
        name = f"`{formatter._format_args(action, formatter._get_default_metavar_for_positional(action))}`"
    help_text = formatter._expand_help(action) if action.help else ""
    if action.choices is not None and not isinstance(action, argparse._SubParsersAction):
        choices = ", ".join(f"`{c}`" for c in action.choices)
        if "{" not in name and choices not in help_text:
            help_text += f" (one of {choices})"
    cell = " ".join(help_text.split()).replace("|", "\\|")
    return f"| {name} | {cell} |"


def cli_markdown() -> str:
    from bareprop.cli.main import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    helps = {a.dest: a.help or "" for a in sub._choices_actions}
    out = ["| command | what it does |", "| --- | --- |"]
    out += [f"| [`bareprop {name}`](#bareprop-{name}) | {' '.join(helps.get(name, '').split())} |"
            for name in sub.choices]
    for name, cmd in sub.choices.items():
        fmt = cmd._get_formatter()
        out += ["", f"## bareprop {name}", ""]
        if cmd.description:
            out += [" ".join(cmd.description.split()), ""]
        out += ["```text", cmd.format_usage().strip(), "```", ""]
        groups = [(g.title, [a for a in g._group_actions if a.help != argparse.SUPPRESS])
                  for g in cmd._action_groups]
        for title, actions in groups:
            if not actions:
                continue
            out += [f"**{title}**", "", "| argument | help |", "| --- | --- |"]
            out += [_flag_row(a, fmt) for a in actions]
            out.append("")
    return "\n".join(out)


# ---------------------------------------------------------------------------- API page

def public_modules() -> list[str]:
    """Modules with public names: those ``bareprop.__all__`` comes from, then every
    subpackage (the CLI has a page of its own)."""
    import bareprop

    names = [m.lstrip(".") for m in bareprop._LAZY.values()] + ["errors"]
    names += list(bareprop._SUBMODULES)
    names += [m.name for m in pkgutil.iter_modules(bareprop.__path__) if m.ispkg]
    return [n for n in dict.fromkeys(names) if n != "cli"]


def api_markdown() -> str:
    import bareprop

    out = ["| `bareprop.` name | what it is |", "| --- | --- |"]
    extra = []      # modules rendered on their own: a module-valued name (core.init), or a
    # function its package re-exports under its module's own name (core.gradcheck), which
    # the package's entry shows as the submodule
    for name in bareprop.__all__:
        obj = getattr(bareprop, name)
        if isinstance(obj, type(bareprop)):
            target, kind = obj.__name__, "module"
        else:
            target, kind = f"{obj.__module__}.{obj.__qualname__}", type(obj).__name__
            if obj.__module__.rsplit(".", 1)[-1] == name:
                extra.append(obj.__module__)
        if kind == "module" and name not in public_modules():
            extra.append(target)
        out.append(f"| [`{name}`][{target}] | {kind} `{target}` |")
    for module in [f"bareprop.{m}" for m in public_modules()] + list(dict.fromkeys(extra)):
        out += ["", f"::: {module}", ""]
    return "\n".join(out)


# ------------------------------------------------------------------------ source pages

def _cited(docs_dir: Path) -> set[str]:
    paths = set()
    for md in docs_dir.rglob("*.md"):
        for match in REPO_LINK.finditer(md.read_text(encoding="utf-8")):
            if (ROOT / match.group(1)).is_file():
                paths.add(match.group(1))
    return paths


def _source_page(path: str) -> str:
    text = (ROOT / path).read_text(encoding="utf-8")
    fence = "````" if "```" in text else "```"
    lang = LANGUAGE.get(Path(path).suffix, "text")
    return f"# `{path}`\n\n{fence}{lang}\n{text}\n{fence}\n"


def on_files(files, config):
    for path in sorted(_cited(Path(config["docs_dir"]))):
        files.append(File.generated(config, f"source/{path}.md", content=_source_page(path)))
    return files


LIST_ITEM = re.compile(r"^ {0,3}(?:[-*+]|\d+\.) ")


def separate_lists(markdown: str) -> str:
    """A blank line before a list that follows a paragraph line: GitHub starts the list
    there, Python-Markdown would run it into the paragraph. Code fences are left alone."""
    out, fence, prev = [], None, ""
    for line in markdown.split("\n"):
        opener = re.match(r"^ {0,3}(`{3,}|~{3,})", line)
        if opener and (fence is None or opener.group(1).startswith(fence)):
            fence = None if fence else opener.group(1)
        elif fence is None and LIST_ITEM.match(line) and prev.strip() \
                and not LIST_ITEM.match(prev) and not prev.startswith((" ", "\t", "|")):
            out.append("")
        out.append(line)
        prev = line
    return "\n".join(out)


def on_page_markdown(markdown, page, config, files):
    markdown = markdown.replace(CLI_MARK, cli_markdown()).replace(API_MARK, api_markdown())
    markdown = separate_lists(markdown)
    here = posixpath.dirname(page.file.src_uri)

    def relink(match):
        path, anchor = match.group(1), match.group(2) or ""
        if not (ROOT / path).is_file():
            return match.group(0)           # left as it is: the strict build names it
        return f"]({posixpath.relpath(f'source/{path}.md', here or '.')}{anchor})"

    return REPO_LINK.sub(relink, markdown)

