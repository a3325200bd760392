"""MkDocs hook: the pages that must not drift from the code are generated at build time.

- ``cli.md``: every command and flag, with its help, read from ``bareprop.cli.main``'s
  argparse parser (a command added later appears once its module is in the parser);
- ``api.md``: every name in ``bareprop.__all__``, grouped by kind (layers, losses,
  optimizers, training, files ...), each in a table with its one-line summary and linked
  to its entry (a public name left undocumented is a broken reference: the strict build
  fails); internals (``__init__``, ``extra_repr`` ...) are left out;
- ``source/<path>.md``: each repository file a page links to (``../tests/test_x.py``,
  ``../src/bareprop/core/conv.py``) as a page of its own, so the derivations' "Proven
  by" links work on the site as they do on GitHub; a link to a file that does not exist
  is left alone and fails the strict build.

Not a part of the library: it runs only inside ``mkdocs build``/``mkdocs serve``.
"""
from __future__ import annotations

import argparse
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
LAYERS_MARK = "<!-- generated: layers -->"
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

#: (section, what it holds, test) in page order; a name goes to the first whose test
#: takes it. Layers are whatever the catalog declares public (core/catalog.py).
def _groups(bp):
    from bareprop import core, optim, train

    layers = set(core.public_layers())
    return [
        ("Layers", "every layer, with its formula and shapes (forward, backward: see Module)",
         lambda n, o: n in layers),
        ("Losses", "", lambda n, o: n.endswith("Loss")),
        ("Optimizers", "torch.optim's rules and parameter groups; clipping",
         lambda n, o: (isinstance(o, type) and issubclass(o, optim.Optimizer))
         or n.startswith("clip_grad")),
        ("Training", "the loop, one step, callbacks and loggers",
         lambda n, o: getattr(o, "__module__", "").startswith("bareprop.train")
         or n.endswith("Logger")),
        ("Files and inference", "model files, predictions, ONNX and weights files",
         lambda n, o: getattr(o, "__module__", "").startswith(
             ("bareprop.modelfile", "bareprop.inference", "bareprop.interop"))),
        ("Building blocks", "for writing layers of your own",
         lambda n, o: not (isinstance(o, type) and issubclass(o, Exception))),
        ("Errors", "every error a user can cause is a BarepropError", lambda n, o: True),
    ]


#: members mkdocstrings leaves out of every entry: the contract's plumbing, not the API
HIDDEN = ["!^_", "!^extra_repr$", "!^spec$", "!^from_spec$", "!^short_name$",
          "!^preserves_shape$", "!^fresh_output$", "!^input_shape_hint$",
          "!^check_input_shape$", "!^training$", "!^reset_parameters$"]


def _summary(obj) -> str:
    """The first line of an object's docstring, for the table."""
    doc = (getattr(obj, "__doc__", None) or "").strip()
    return " ".join(doc.split("\n\n")[0].split()).replace("|", "\\|")


def api_markdown() -> str:
    """One section per kind of name (layers, losses, optimizers, training, files ...):
    a table of its names with their one-line summary, then each name's entry. Layers,
    losses and optimizers show their docstring alone (their methods are Module's and
    Optimizer's contract, documented once there)."""
    import bareprop as bp

    sections = {title: [] for title, _, _ in _groups(bp)}
    for name in sorted(bp.__all__, key=str.lower):
        obj = getattr(bp, name)
        if isinstance(obj, type(bp)):          # a module-valued name: data, init
            target = obj.__name__
        else:
            target = f"{obj.__module__}.{obj.__qualname__}"
        title = next(t for t, _, test in _groups(bp) if test(name, obj))
        sections[title].append((name, obj, target))
    bare = {"Layers", "Losses", "Optimizers"}
    out = ["Jump to: " + " · ".join(f"[{t}](#{t.lower().replace(' ', '-')})"
                                    for t, names in sections.items() if names), ""]
    for title, what, _ in _groups(bp):
        entries = sections[title]
        if not entries:
            continue
        out += [f"## {title}", ""] + ([what, ""] if what else [])
        out += ["| name | what it is |", "| --- | --- |"]
        out += [f"| [`{n}`][{t}] | {_summary(o)} |" for n, o, t in entries]
        for name, obj, target in entries:
            members = title not in bare or obj in (bp.Module, bp.Optimizer)
            out += ["", f"::: {target}", "    options:", "      heading_level: 3",
                    "      show_root_full_path: false",
                    f"      show_root_toc_entry: true",
                    f"      members: {'true' if members else 'false'}",
                    "      filters: [" + ", ".join(f'"{f}"' for f in HIDDEN) + "]", ""]
    return "\n".join(out)


# ------------------------------------------------------------------------ layer table

def layers_markdown() -> str:
    """Every layer of the catalog: its model-file type and spec fields, its --arch name,
    and whether ONNX, PyTorch and Keras compute it (core/catalog.py)."""
    import inspect

    from bareprop import core

    out = ["| type | spec fields | `--arch` | ONNX | PyTorch twin | Keras twin |",
           "| --- | --- | --- | --- | --- | --- |"]
    for e in sorted(core.catalog.entries(), key=lambda e: e.name):
        if not e.public:
            continue
        args = [n for n in inspect.signature(e.cls).parameters
                if n not in ("init", "rng", "dtype", "self")]
        if e.name == "Sequential":
            args = ["layers", "clip_delta", "input_shape"]
        arch = (f"`{e.arch.name}`" + "".join(f", `{a}`" for a in e.arch.aliases)
                if e.arch else "")
        maps = [e.onnx, e.torch, e.keras]
        cells = (["its layers'"] * 3 if e.name == "Sequential" else
                 ["yes" if m is not None else "no" for m in maps])
        out.append(f"| `{e.name}` | {', '.join(f'`{a}`' for a in args) or 'none'} | {arch} | "
                   + " | ".join(cells) + " |")
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
    markdown = markdown.replace(LAYERS_MARK, layers_markdown())
    markdown = separate_lists(markdown)
    here = posixpath.dirname(page.file.src_uri)

    def relink(match):
        path, anchor = match.group(1), match.group(2) or ""
        if not (ROOT / path).is_file():
            return match.group(0)           # left as it is: the strict build names it
        return f"]({posixpath.relpath(f'source/{path}.md', here or '.')}{anchor})"

    return REPO_LINK.sub(relink, markdown)

