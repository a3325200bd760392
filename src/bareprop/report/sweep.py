"""The report of a sweep folder (``bareprop report DIR`` where DIR holds sweep.json): the
best trial and its test accuracy, the figure, every trial, the space and the settings
the trials shared. sweep.json is read as untrusted input (runs.jsonfiles checks its
fields) and every string from it is escaped.
"""
from __future__ import annotations

import html
import tempfile
from pathlib import Path

from ..errors import ConfigError
from .headline import _duration, _stats
from .page import _card, _img, _table


def _space(record: dict):
    """The Params of the record's space, or () when a spec does not parse (the figure
    then has no parameter panels; the table shows the values as they are)."""
    from ..sweep.space import parse_space

    try:
        return parse_space(record["space"])
    except ConfigError:
        return ()


def _cell(value) -> str:
    from ..sweep.record import fmt

    return fmt(value) if isinstance(value, (int, float, str, list)) else "?"


def sections(record: dict) -> tuple[str, list[str]]:
    """(page title, cards) of a sweep record."""
    from ..sweep.finish import draw

    settings = record["settings"]
    title = f"sweep: {settings.get('dataset', 'mnist')}, preset {settings.get('preset', 'default')}"
    trials = record["trials"]
    count = {s: sum(t["state"] == s for t in trials) for s in ("complete", "pruned", "failed")}
    best = record.get("best")
    pairs = [("engine", str(record["engine"])), ("state", str(record["state"])),
             ("trials", f"{len(trials)} of {record['trials_wanted']:g}"),
             ("pruned", str(count["pruned"])), ("failed", str(count["failed"])),
             ("trial-epochs", str(sum(len(t["val_accuracy"]) for t in trials))),
             ("time", _duration(record.get("seconds") if isinstance(
                 record.get("seconds"), (int, float)) else None)),
             ("pruner", str(record["prune"])), ("seed", f"{record['seed']:g}")]
    if best:
        value = best.get("value")
        test = best.get("test_accuracy")
        big = (f"best validation accuracy {value:.4f} (trial {best['number']:04.0f})"
               if isinstance(value, (int, float)) else "best trial")
        if isinstance(test, (int, float)):
            big += f"; its test accuracy {test:.4f}"
    else:
        big = "no trial completed yet (the test set is used once, for the best)"
    out = ['<section class="card">' f"<h1>{html.escape(title)}</h1>"
           f'<p class="big">{html.escape(big)}</p>' + _stats(pairs) + "</section>"]
    space = _space(record)
    with tempfile.TemporaryDirectory() as tmp:
        figure = Path(tmp) / "sweep.png"
        if draw(space, record, figure):
            out.append(_card("Trials over time, and each parameter against the objective",
                             _img(figure, "sweep figure")))
    if best:
        out.append(_card("Reproduce the best trial",
                         f"<pre>{html.escape(str(best.get('command', '')))}</pre>"))
    names = [s.split("=", 1)[0] for s in record["space"]]
    order = sorted(trials, key=lambda t: (t["state"] != "complete", -(t.get("value") or 0),
                                          t["number"]))
    rows = [[f"{t['number']:04.0f}", *(_cell(t["params"].get(n, "")) for n in names),
             str(len(t["val_accuracy"])),
             f"{t['value']:.4f}" if isinstance(t.get("value"), (int, float)) else "",
             t["state"] + (f" ({t['reason']})" if t.get("reason") else "")] for t in order]
    out.append(_card("Trials", _table(rows, ["trial", *names, "epochs", "val acc", "state"])))
    shared = [(k, _cell(v)) for k, v in sorted(settings.items())]
    out.append(_card("Space and shared settings",
                     _table([(s, "searched") for s in record["space"]] + shared,
                            ["setting", "value"])))
    return title, out
