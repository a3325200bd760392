"""Sweep folders (``bareprop sweep --out DIR``) as the JSON the web app shows: one
summary per sweep beside the runs, and the details of one: its trials, each with its
validation accuracy per epoch, and the best.

A sweep folder holds sweep.json (sweep/record.py), optuna.journal and trials/, whose
folders are ordinary run folders: the app opens them as runs (web/runs.py) by the id
``SWEEP/trials/NNNN`` (security.trial_dir holds every component to the run-id rules).

sweep.json is untrusted input, as every file of a run folder: read only when it is a
regular file (not through a link), checked field by field (runs.jsonfiles), and what is
passed on is cut to bounded sizes (MAX_TRIALS trials, MAX_EPOCHS points each, strings
to MAX_TEXT characters), numbers that are not finite given as null (they are not JSON).
A folder whose sweep.json cannot be read is listed with the reason in ``error``, never
an exception. A sweep is "running" while the process its lock names lives, as a run
is; a sweep.json that still says running when no process holds the folder was left by
a killed sweep: it is "interrupted", resumable.
"""
from __future__ import annotations

import math
import os
from datetime import datetime, timezone
from numbers import Real
from pathlib import Path

from ..errors import BarepropError
from ..runs.jsonfiles import read_run_json
from ..runs.layout import FOLDER_NAME, SWEEP, SWEEP_FILES, TRIALS
from ..runs.lock import live_holder
from ..runs.read import MAX_EPOCHS, MAX_TEXT
from .runs import stamp
from .security import run_dir, safe_file

MAX_TRIALS = 1000           # trials passed on (the first ones); a real sweep has tens
MAX_ITEMS = 32              # entries of params, settings and space passed on
MAX_VALUE = 200             # characters of a string among them
STATES = ("running", "finished", "interrupted")
ENDED = ("complete", "pruned", "failed")


def is_sweep(folder: Path) -> bool:
    """Whether ``folder`` holds a sweep: any of layout.SWEEP_FILES, even a link or a
    damaged file in its place (it is then listed as a sweep with the error, not as an
    incomplete run)."""
    return any(os.path.lexists(folder / name) for name in SWEEP_FILES)


def _num(v) -> float | int | None:
    """A finite number, else None (NaN, an int too big for a float, a bool, text)."""
    if not isinstance(v, Real) or isinstance(v, bool):
        return None
    try:
        return v if math.isfinite(v) else None
    except OverflowError:
        return None


def _text(v, cap: int = MAX_VALUE) -> str | None:
    return v[:cap] if isinstance(v, str) else None


def _plain(v):
    """A value of a trial's params or the sweep's settings as it may be shown: a number,
    a string (cut), a bool, null, or a short list of those; anything else null."""
    if isinstance(v, (bool, type(None))):
        return v
    if isinstance(v, str):
        return v[:MAX_VALUE]
    if isinstance(v, list):
        return [_plain(x) for x in v[:MAX_ITEMS] if not isinstance(x, (list, dict))]
    return _num(v)


def _plain_dict(d) -> dict:
    if not isinstance(d, dict):
        return {}
    return {str(k)[:64]: _plain(v) for k, v in list(d.items())[:MAX_ITEMS]}


def _started(folder: Path, seconds) -> str | None:
    """When the sweep started: sweep.json's time (rewritten after every epoch) less the
    seconds it says the sweep had run by then."""
    try:
        made = (safe_file(folder, SWEEP) or folder).stat().st_mtime
        return datetime.fromtimestamp(made - (seconds or 0.0), timezone.utc) \
            .isoformat(timespec="seconds")
    except (OSError, OverflowError, ValueError):        # gone meanwhile, or absurd
        return None


class SweepView:
    """What one sweep folder says about itself (read once; cheap to rebuild)."""

    def __init__(self, folder: Path):
        self.folder, self.id = folder, folder.name
        self.record: dict | None = None
        self.error = None
        try:
            if safe_file(folder, SWEEP) is None:
                self.error = f"no {SWEEP} yet, or it is not a regular file"
            else:
                self.record = read_run_json(folder / SWEEP)
        except (BarepropError, OSError) as exc:
            self.error = f"cannot read the sweep: {exc}"
        self.trials = (self.record or {}).get("trials", [])

    def state(self) -> tuple[str, str | None]:
        """(state, error): the record's state, checked against the folder's lock."""
        said = (self.record or {}).get("state")
        said = said if said in STATES else None
        if live_holder(self.folder) is not None:        # finishing: it said so already
            return (said if said in ("finished", "interrupted") else "running"), None
        if self.record is None:
            return "incomplete", self.error
        if said == "running":
            return "interrupted", ("no process holds the sweep's folder any more (it was "
                                   "killed?); continue it with bareprop sweep --resume "
                                   f"--out RUNS_DIR/{self.id}")
        if said is None:
            return "incomplete", (f"{SWEEP} says its state is "
                                  f"{str(self.record.get('state'))[:40]!r}")
        return said, None

    def best(self) -> dict | None:
        """The record's best (set when the sweep finished, with its test accuracy), or
        the best complete trial so far."""
        best = (self.record or {}).get("best")
        if isinstance(best, dict):
            return best
        done = [t for t in self.trials if t.get("state") == "complete"
                and _num(t.get("value")) is not None]
        return max(done, key=lambda t: t["value"], default=None)

    def summary(self) -> dict:
        r = self.record or {}
        state, error = self.state()
        best = self.best() or {}
        settings = r.get("settings") or {}
        seconds = _num(r.get("seconds"))
        count = {s: sum(t.get("state") == s for t in self.trials) for s in (*ENDED, "running")}
        return {
            "id": self.id, "type": "sweep", "state": state, "error": error,
            "engine": _text(r.get("engine"), 32), "prune": _text(r.get("prune"), 32),
            "dataset": _text(settings.get("dataset")), "preset": _text(settings.get("preset")),
            "trials_wanted": _num(r.get("trials_wanted")),
            "trials_done": sum(count[s] for s in ENDED), "trials_running": count["running"],
            "trials_pruned": count["pruned"], "trials_failed": count["failed"],
            "trial_epochs": sum(len(t.get("val_accuracy", [])) for t in self.trials),
            "best_trial": _num(best.get("number")),
            "best_id": self._trial_id(trial_named(best), run_dir(self.folder, TRIALS)),
            "best_val_accuracy": _num(best.get("value")),
            "test_accuracy": _num(best.get("test_accuracy")),
            "started": _started(self.folder, seconds), "duration_s": seconds,
        }

    def details(self) -> dict:
        """The summary, the search space, the shared settings, the best (with the command
        that retrains it) and every trial (MAX_TRIALS at most: ``trials_cut`` says so)."""
        out = self.summary()
        r = self.record or {}
        trials_root = run_dir(self.folder, TRIALS)
        best = r.get("best") if isinstance(r.get("best"), dict) else None
        out["space"] = [s[:MAX_VALUE] for s in r.get("space", [])[:MAX_ITEMS]]
        out["settings"] = _plain_dict(r.get("settings"))
        out["trials"] = [self._trial(t, trials_root, out["best_trial"])
                         for t in self.trials[:MAX_TRIALS]]
        out["best"] = None if best is None else {
            "number": _num(best.get("number")), "value": _num(best.get("value")),
            "test_accuracy": _num(best.get("test_accuracy")),
            "command": _text(best.get("command"), MAX_TEXT),
            "id": out["best_id"]}
        out["trials_cut"] = len(self.trials) > MAX_TRIALS
        return out

    def _trial(self, t: dict, trials_root: Path | None, best) -> dict:
        accs = [_num(v) for v in t["val_accuracy"][:MAX_EPOCHS]]
        return {"number": _num(t["number"]), "id": self._trial_id(trial_named(t), trials_root),
                "params": _plain_dict(t["params"]), "state": t["state"][:32],
                "reason": _text(t.get("reason"), MAX_TEXT), "epochs": len(t["val_accuracy"]),
                "val_accuracy": accs, "value": _num(t.get("value")),
                "seconds": _num(t.get("seconds")),
                "best": best is not None and _num(t["number"]) == best}

    def _trial_id(self, name: str | None, trials_root: Path | None) -> str | None:
        """``SWEEP/trials/NAME`` when that folder is there to open (security.run_dir's
        rules: a strict name, no link), else None: the page offers no dead link."""
        if name is None or trials_root is None or run_dir(trials_root, name) is None:
            return None
        return f"{self.id}/{TRIALS}/{name}"


def trial_named(t: dict) -> str | None:
    """The folder name of a trial (or of the best) whose ``folder`` is ``trials/NAME``
    with a run folder's name; None for anything else a damaged record may say."""
    head, _, name = str(t.get("folder") or "").partition("/")
    return name if head == TRIALS and FOLDER_NAME.fullmatch(name) else None


class Sweeps:
    """SweepView of each sweep folder, reused while its sweep.json keeps its size and
    time (the page polls the run list every few seconds; a sweep rewrites it per epoch)."""

    def __init__(self):
        self._views: dict[str, tuple] = {}

    def view(self, folder: Path) -> SweepView:
        key = stamp(folder, (SWEEP,))
        hit = self._views.get(folder.name)
        if hit is not None and hit[0] == key:
            return hit[1]
        view = SweepView(folder)
        self._views[folder.name] = (key, view)
        return view
