"""The JSON files of a run folder (metrics.json, compare.json, inspect.json), read as
untrusted input: each is checked for the fields and types its readers use, and any
problem is one ModelFileError line naming the file, the field and the fix.

Not here: what those files mean (results.py writes metrics.json and inspect.json, from
train/inspector.py's records; compare_cmd writes compare.json) or how they are shown
(report/, plots.py, web/runs.py).
"""
from __future__ import annotations

import json
import os
import stat
from numbers import Real
from pathlib import Path

from ..errors import ModelFileError
from .layout import COMPARE, INSPECT, METRICS, SWEEP

MAX_JSON_BYTES = 256 << 20   # far above any real run's files; a bound before reading
CHANNEL_STATS = ("mean", "std", "zeros")   # inspect.json's per-channel lists (image layers)


class _Bad(Exception):
    def __init__(self, where: str, problem: str):
        super().__init__(f"{where} {problem}")


def _is_num(v) -> bool:
    return isinstance(v, Real) and not isinstance(v, bool)


def _need(obj, key, kind, where):
    """obj[key], which must exist and be of ``kind`` ("number", str, list or dict)."""
    if not isinstance(obj, dict) or key not in obj:
        raise _Bad(f"{where}.{key}" if where else key, "is missing")
    value = obj[key]
    ok = _is_num(value) if kind == "number" else isinstance(value, kind)
    if not ok:
        name = {"number": "a number", str: "a string", list: "a list", dict: "an object"}[kind]
        raise _Bad(f"{where}.{key}" if where else key, f"is not {name}")
    return value


def _numbers(seq, where):
    if not isinstance(seq, list) or not all(_is_num(v) for v in seq):
        raise _Bad(where, "is not a list of numbers")


def _check_metrics(m) -> None:
    if not isinstance(m, dict):
        raise _Bad("the file", "is not a JSON object")
    if m.get("test_accuracy") is None:        # a sweep's trial: validation figures only
        _need(m, "val_accuracy", "number", "")
    else:
        _need(m, "test_accuracy", "number", "")
    cfg = _need(m, "config", dict, "")
    for key in ("dataset", "preset"):
        _need(cfg, key, str, "config")
    hist = _need(m, "history", list, "")
    for i, e in enumerate(hist):
        if not isinstance(e, dict):
            raise _Bad(f"history[{i}]", "is not an object")
        _need(e, "epoch", "number", f"history[{i}]")
        for k in (hist[0] if isinstance(hist[0], dict) else {}):
            _need(e, k, "number", f"history[{i}]")
    _numbers(_need(m, "batch_loss", list, ""), "batch_loss")


def _check_compare(c) -> None:
    if not isinstance(c, dict):
        raise _Bad("the file", "is not a JSON object")
    fw = c.get("framework", "torch")
    if not isinstance(fw, str) or fw == "bareprop":
        raise _Bad("framework", "is not the name of a framework")
    cfg = _need(c, "config", dict, "")
    for key in ("dataset", "preset"):
        _need(cfg, key, str, "config")
    if not isinstance(c.get("verdict", ""), str):
        raise _Bad("verdict", "is not a string")
    rows = _need(c, "epochs", list, "")
    if not rows:
        raise _Bad("epochs", "is empty")
    for i, r in enumerate(rows):
        where = f"epochs[{i}]"
        _need(r, "epoch", "number", where)
        _need(r, "max_abs_weight_diff", "number", where)
        for who in ("bareprop", fw):
            side = _need(r, who, dict, where)
            for k in ("train_loss", "test_accuracy"):
                _need(side, k, "number", f"{where}.{who}")
    losses = _need(c, "batch_loss", dict, "")
    for who in ("bareprop", fw):
        _numbers(_need(losses, who, list, "batch_loss"), f"batch_loss.{who}")


def _check_inspect(records) -> None:
    if not isinstance(records, dict):
        raise _Bad("the file", "is not a JSON object")
    names = None
    for epoch, rec in records.items():
        if not epoch.isdigit():
            raise _Bad(repr(epoch), "is not an epoch number")
        for kind in ("activations", "gradients"):
            layers = _need(rec, kind, dict, epoch)
            if names is None:
                names = {}
            if names.setdefault(kind, list(layers)) != list(layers):
                raise _Bad(f"{epoch}.{kind}", "names other layers than the first epoch")
            for name, h in layers.items():
                where = f"{epoch}.{kind}.{name}"
                edges, counts = _need(h, "edges", list, where), _need(h, "counts", list, where)
                _numbers(edges, f"{where}.edges")
                _numbers(counts, f"{where}.counts")
                if len(edges) != len(counts) + 1:
                    raise _Bad(where, "has edges that do not fit its counts")
                if kind == "activations" and "channels" in h:     # image layers only
                    stats = _need(h, "channels", dict, where)
                    lists = [_need(stats, k, list, f"{where}.channels") for k in CHANNEL_STATS]
                    for k, v in zip(CHANNEL_STATS, lists):
                        _numbers(v, f"{where}.channels.{k}")
                    if len({len(v) for v in lists}) != 1:
                        raise _Bad(f"{where}.channels", "has lists of different lengths")


MAX_SWEEP_TRIALS = 10_000        # a bound before a report draws or a page lists them


def _count(obj, key, where, low):
    value = obj.get(key) if isinstance(obj, dict) else None
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise _Bad(f"{where}.{key}" if where else key, f"is not an integer >= {low}")


def _finite(obj, key, where):
    import math

    _need(obj, key, "number", where)
    try:
        ok = math.isfinite(obj[key])
    except OverflowError:                     # an int past any float: 10**400
        ok = False
    if not ok:
        raise _Bad(f"{where}.{key}" if where else key, "is not finite")


def _check_sweep(s) -> None:
    if not isinstance(s, dict) or s.get("format") != "bareprop-sweep":
        raise _Bad("the file", "is not a bareprop sweep record")
    _need(s, "settings", dict, "")
    _need(s, "space", list, "")
    if not s["space"] or not all(isinstance(v, str) for v in s["space"]):
        raise _Bad("space", "is not a list of strings")
    _count(s, "trials_wanted", "", 1)
    _count(s, "seed", "", 0)
    for key in ("jobs", "threads"):
        if s.get(key) is not None:
            _count(s, key, "", 1)
    for key, names in (("engine", ("optuna", "ray")), ("prune", ("none", "median", "asha")),
                       ("state", ("running", "finished", "interrupted"))):
        if s.get(key) not in names:
            raise _Bad(key, f"is not one of {', '.join(names)}")
    if s.get("seconds") is not None:
        _finite(s, "seconds", "")
    trials = _need(s, "trials", list, "")
    if len(trials) > MAX_SWEEP_TRIALS:
        raise _Bad("trials", f"holds more than {MAX_SWEEP_TRIALS:,} trials")
    names = [v.split("=", 1)[0] for v in s["space"]]
    for i, t in enumerate(trials):
        where = f"trials[{i}]"
        if not isinstance(t, dict):
            raise _Bad(where, "is not an object")
        _count(t, "number", where, 0)
        for key in ("folder", "state"):
            _need(t, key, str, where)
        params = _need(t, "params", dict, where)
        if any(n not in params for n in names):
            raise _Bad(f"{where}.params", "lacks a parameter of the space")
        _numbers(_need(t, "val_accuracy", list, where), f"{where}.val_accuracy")
        if t.get("at") is not None:
            _numbers(_need(t, "at", list, where), f"{where}.at")
        for key in ("value", "seconds"):
            if t.get(key) is not None:
                _finite(t, key, where)
        if t.get("reason") is not None:
            _need(t, "reason", str, where)
    if s.get("best") is not None:
        best = _need(s, "best", dict, "")
        _count(best, "number", "best", 0)
        _need(best, "command", str, "best")
        for key in ("value", "test_accuracy"):
            if best.get(key) is not None:
                _finite(best, key, "best")


_CHECKS = {METRICS: (_check_metrics, "bareprop train"),
           COMPARE: (_check_compare, "bareprop compare"),
           INSPECT: (_check_inspect, "bareprop train"),
           SWEEP: (_check_sweep, "bareprop sweep")}


def read_run_json(path: Path):
    """The parsed JSON at ``path`` (named metrics.json, compare.json or inspect.json),
    after checking what its readers use; ModelFileError naming the file otherwise."""
    check, writer = _CHECKS[path.name]
    fix = f"re-run {writer} into a fresh folder to rewrite it"
    from .read import open_read

    try:
        st = path.lstat()
        if stat.S_ISLNK(st.st_mode):          # links are never followed
            raise ModelFileError(f"{path} is a link, not the file itself; {fix}")
        if not stat.S_ISREG(st.st_mode):     # a FIFO would block the reader
            raise ModelFileError(f"{path} is not a regular file; {fix}")
        f = open_read(path.parent, path.name)     # O_NOFOLLOW: no link swapped in since
        if f is None:
            raise ModelFileError(f"{path} is not a regular file; {fix}")
        with f:
            if os.fstat(f.fileno()).st_size > MAX_JSON_BYTES:
                raise ModelFileError(f"{path} is larger than {MAX_JSON_BYTES >> 20} MiB; "
                                     f"{fix}")
            data = json.loads(f.read().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise ModelFileError(f"{path} is not valid JSON ({exc}); {fix}") from None
    except OSError as exc:
        raise ModelFileError(f"cannot read {path}: {exc.strerror}") from None
    try:
        check(data)
    except _Bad as exc:
        raise ModelFileError(f"{path} is damaged: {exc}; {fix}") from None
    return data
