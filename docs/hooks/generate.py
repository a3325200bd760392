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

The CLI page, the API page's tables and the layer table also stand in the committed
Markdown files, between ``<!-- generated: NAME -->`` and ``<!-- end of generated: NAME -->``,
so the files read well on their own (on GitHub, in an editor); the build replaces each
region with what the code says now. ``python docs/hooks/generate.py`` rewrites the
committed regions (``--check``: exit 1 naming the stale files, as
tests/project/test_docs_site.py does).

Not a part of the library: it runs inside ``mkdocs build``/``mkdocs serve``, and as the
script above.
"""
from __future__ import annotations

import argparse
import os
import posixpath
import re
import sys
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# the checkout being documented, even where another bareprop is installed
sys.path.insert(0, str(ROOT / "src"))

# a generated region of a committed page: <!-- generated: NAME --> ... <!-- end of generated: NAME -->
REGION = re.compile(r"^<!-- generated: (\w+) -->\n.*?^<!-- end of generated: \1 -->$", re.S | re.M)
#: the page holding each region
PAGES = {"cli": "cli.md", "api": "api.md", "layers": "format.md"}
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


@contextmanager
def _columns(n: int = 80):
    """argparse wraps usage lines to the terminal's width: a fixed one, so the page is
    the same from a terminal, a test or CI."""
    old = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = str(n)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = old


def cli_markdown() -> str:
    with _columns():
        return _cli_markdown()


def _cli_markdown() -> str:
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
    return " ".join(doc.split("\n\n")[0].split()).rstrip(":").replace("|", "\\|")


def _api_sections(bp) -> dict:
    """{section title: [(name, object, its full dotted path)]}, names sorted."""
    sections = {title: [] for title, _, _ in _groups(bp)}
    for name in sorted(bp.__all__, key=str.lower):
        obj = getattr(bp, name)
        if isinstance(obj, type(bp)):          # a module-valued name: data, init
            target = obj.__name__
        else:
            target = f"{obj.__module__}.{obj.__qualname__}"
        title = next(t for t, _, test in _groups(bp) if test(name, obj))
        sections[title].append((name, obj, target))
    return sections


def api_markdown(with_entries: bool = True) -> str:
    """One section per kind of name (layers, losses, optimizers, training, files ...):
    a table of its names with their one-line summary, then (``with_entries``) each name's
    entry. Layers, losses and optimizers show their docstring alone (their methods are
    Module's and Optimizer's contract, documented once there). Without ``with_entries``
    (the committed api.md) the names are plain code, not links to entries."""
    import bareprop as bp

    sections = _api_sections(bp)
    bare = {"Layers", "Losses", "Optimizers"}
    out = ["Jump to: " + " · ".join(f"[{t}](#{t.lower().replace(' ', '-')})"
                                    for t, names in sections.items() if names), ""]
    for title, what, _ in _groups(bp):
        entries = sections[title]
        if not entries:
            continue
        out += [f"## {title}", ""] + ([what, ""] if what else [])
        out += ["| name | what it is |", "| --- | --- |"]
        out += [f"| [`{n}`][{t}] | {_summary(o)} |" if with_entries else
                f"| `{n}` | {_summary(o)} |" for n, o, t in entries]
        for name, obj, target in entries if with_entries else ():
            members = title not in bare or obj in (bp.Module, bp.Optimizer)
            # no `members: true`: it would select every member past the filters
            out += ["", f"::: {target}", "    options:", "      heading_level: 3",
                    "      show_root_full_path: false",
                    "      show_root_toc_entry: true",
                    *([] if members else ["      members: false"]),
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
    from mkdocs.structure.files import File

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


# ------------------------------------------------------------------ generated regions

def generated(name: str, site: bool) -> str:
    """The text of region ``name``: on the site, or in the committed file (the API
    page's tables there, without the entries only the site can render)."""
    if name == "api":
        return api_markdown(with_entries=site)
    return {"cli": cli_markdown, "layers": layers_markdown}[name]()


def fill(markdown: str, site: bool) -> str:
    """``markdown`` with every generated region rewritten (an unknown name is left)."""
    def region(match):
        name = match.group(1)
        if name not in PAGES:
            return match.group(0)
        return (f"<!-- generated: {name} -->\n\n{generated(name, site).strip()}\n\n"
                f"<!-- end of generated: {name} -->")
    return REGION.sub(region, markdown)


def stale_pages(docs_dir: Path = ROOT / "docs", write: bool = False) -> list[str]:
    """The committed pages whose generated regions differ from what the code gives
    now (each must hold its region); ``write``: rewrite them."""
    stale = []
    for name, page in PAGES.items():
        path = docs_dir / page
        text = path.read_text(encoding="utf-8")
        if not re.search(rf"^<!-- generated: {name} -->$", text, re.M):
            raise SystemExit(f"{path}: no '<!-- generated: {name} -->' region")
        new = fill(text, site=False)
        if new != text:
            stale.append(page)
            if write:
                path.write_text(new, encoding="utf-8")
    return stale


def on_page_markdown(markdown, page, config, files):
    markdown = fill(markdown, site=True)
    markdown = separate_lists(markdown)
    here = posixpath.dirname(page.file.src_uri)

    def relink(match):
        path, anchor = match.group(1), match.group(2) or ""
        if not (ROOT / path).is_file():
            return match.group(0)           # left as it is: the strict build names it
        return f"]({posixpath.relpath(f'source/{path}.md', here or '.')}{anchor})"

    return REPO_LINK.sub(relink, markdown)



if __name__ == "__main__":
    check = sys.argv[1:] == ["--check"]
    if sys.argv[1:] not in ([], ["--check"]):
        raise SystemExit("usage: python docs/hooks/generate.py [--check]")
    pages = stale_pages(write=not check)
    if check and pages:
        raise SystemExit(f"out of date: {', '.join(pages)}; run python docs/hooks/generate.py")
    print(("rewrote " + ", ".join(pages)) if pages and not check else "up to date")
