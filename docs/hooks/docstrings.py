"""Griffe extension (mkdocstrings): bareprop's docstrings are plain text laid out line by
line (formulas, shapes, a doctest), not Markdown. Keep that layout on the API page: each
line ends in a hard break, indented blocks and doctests become code blocks, and a
formula's ``_``/``*`` are not read as emphasis."""
from __future__ import annotations

import re

from griffe import Extension

MARKUP = re.compile(r"([_*])")


def _prose(line: str) -> str:
    # `code` spans are kept as they are; elsewhere _ and * are literal characters
    parts = re.split(r"(`[^`]*`)", line)
    return "".join(p if p.startswith("`") else MARKUP.sub(r"\\\1", p) for p in parts)


def as_markdown(text: str) -> str:
    out, block = [], None          # block: "pycon" / "text" while inside a code block
    for line in text.split("\n"):
        stripped = line.strip()
        kind = "pycon" if stripped.startswith((">>>", "...")) or (block == "pycon" and stripped) \
            else "text" if line.startswith("    ") and stripped else None
        if kind != block:
            if block:
                out.append("```")
            if kind:
                out += ["", f"```{kind}"]
            block = kind
        if block:
            out.append(line[4:] if block == "text" else stripped)
        else:
            out.append(_prose(line) + ("  " if stripped else ""))
    if block:
        out.append("```")
    return "\n".join(out)


class PlainTextDocstrings(Extension):
    def on_object(self, *, obj, loader, **kwargs):
        if obj.docstring is not None:
            obj.docstring.value = as_markdown(obj.docstring.value)
