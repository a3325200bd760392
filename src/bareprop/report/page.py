"""The report page's markup: its stylesheet (the web app's look), the page around the
cards, and the small builders every card uses. Every string they are given is escaped
here: nothing from a run folder, a model file or the data becomes markup."""
from __future__ import annotations

import base64
import html
from numbers import Real
from pathlib import Path

#: the web app's look (web/static/style.css), cut to what the report uses
STYLE = """
:root { --bg: #f5f6fa; --ink: #0f172a; --muted: #64748b; --line: #e2e8f0; --accent: #4f46e5;
  font-family: Inter, "Segoe UI", system-ui, -apple-system, Roboto, "Helvetica Neue", Arial, sans-serif;
  font-size: 15px; color: var(--ink); background: var(--bg); }
* { box-sizing: border-box; }
body { margin: 0; line-height: 1.45; }
code, pre, td.k { font-family: "JetBrains Mono", "SFMono-Regular", Menlo, Consolas, monospace; font-size: .84rem; }
.topbar { display: flex; align-items: center; gap: 10px; padding: 0 28px; height: 52px;
  background: #fff; border-bottom: 1px solid var(--line); }
.logo { width: 24px; height: 24px; border-radius: 7px; background: linear-gradient(135deg, #6366f1, #0ea5e9); }
.brand { font-weight: 750; font-size: 1.1rem; letter-spacing: -.02em; }
.muted { color: var(--muted); } .small { font-size: .82rem; } p { margin: 6px 0; }
main { max-width: 1320px; margin: 0 auto; padding: 20px 28px 48px; display: flex; flex-direction: column; gap: 16px; }
.grid { display: grid; grid-template-columns: minmax(0, 1fr) minmax(0, 1fr); gap: 16px; align-items: start; }
.card { background: #fff; border: 1px solid var(--line); border-radius: 12px; padding: 16px 20px;
  box-shadow: 0 1px 2px rgba(15,23,42,.04), 0 4px 16px rgba(15,23,42,.05); min-width: 0; overflow-x: auto; }
h1 { font-size: 1.35rem; margin: 0 0 4px; letter-spacing: -.01em; }
h2 { font-size: 1.02rem; margin: 0 0 10px; font-weight: 650; }
.big { font-size: 2rem; font-weight: 750; color: var(--accent); margin: 4px 0 10px; }
.stats { display: grid; grid-template-columns: repeat(auto-fit, minmax(130px, 1fr)); gap: 8px; }
.stat { background: #f8fafc; border: 1px solid var(--line); border-radius: 9px; padding: 7px 11px; }
.stat .k { display: block; font-size: .72rem; color: var(--muted); text-transform: uppercase; letter-spacing: .05em; font-weight: 600; }
.stat .v { display: block; font-size: 1.05rem; font-weight: 650; font-variant-numeric: tabular-nums; }
table { border-collapse: collapse; font-size: .88rem; }
th { text-align: left; font-size: .74rem; text-transform: uppercase; letter-spacing: .05em; color: var(--muted);
  font-weight: 600; padding: 6px 10px; border-bottom: 1px solid var(--line); }
td { padding: 5px 10px; border-bottom: 1px solid #f1f5f9; text-align: right; font-variant-numeric: tabular-nums; }
td.k { text-align: left; }
details { margin-top: 12px; } summary { cursor: pointer; color: var(--accent); font-weight: 600; }
pre { background: #f8fafc; border: 1px solid var(--line); border-radius: 8px; padding: 10px 12px; overflow-x: auto; }
img { max-width: 100%; height: auto; display: block; margin: 4px 0; }
"""

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>bareprop report: {title}</title>
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src data:; style-src 'unsafe-inline'; form-action 'none'">
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>{style}</style></head>
<body>
<header class="topbar"><span class="logo"></span><span class="brand">bareprop</span>
<span class="muted">report of {folder}</span></header>
<main>
{body}
</main>
</body></html>
"""


def _img(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _card(title: str, inner: str) -> str:
    return f'<section class="card"><h2>{html.escape(title)}</h2>{inner}</section>'


def _table(rows, header) -> str:
    """Rows of cells, the first (a name) left-aligned, numbers right-aligned; all escaped."""
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(
        f'<td{" class=k" if i == 0 else ""}>{html.escape(str(c))}</td>' for i, c in enumerate(r))
        + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _num(obj, key):
    """obj[key] when it is a number (metrics.json's optional fields are not checked)."""
    v = obj.get(key) if isinstance(obj, dict) else None
    return v if isinstance(v, Real) and not isinstance(v, bool) else None
