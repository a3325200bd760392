"""Run folders as the JSON the web app shows: a summary per run, and the details
(config, per-epoch history, per-batch loss) of one.

The folder is read through bareprop.runs, as untrusted input: metrics.json checked
field by field (runs.jsonfiles), a checkpoint's JSON metadata only (no arrays are
loaded to list a run), events.jsonl line by line into a bounded summary with bad lines
skipped (runs.read.scan_events). A folder that cannot be read is listed as
"incomplete" with the reason in ``error``, never an exception. A run is "running" while
the process its lock names lives (runs.lock.live_holder); one this server cannot stop
says so in ``error``.
"""
from __future__ import annotations

import os
import zipfile
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from ..errors import BarepropError
from ..runs.jsonfiles import read_run_json
from ..runs.layout import CHECKPOINT, EVENTS, METRICS, MODEL, REPORT
from ..runs.lock import live_holder
from ..runs.process import runs_in
from ..runs.read import checkpoint_meta, scan_events
from .security import safe_file

MAX_BATCH_POINTS = 2000


def stamp(folder: Path, names=(METRICS, MODEL, CHECKPOINT, EVENTS, REPORT)) -> tuple:
    """(name, mtime_ns, size, inode) of the files a view (or a report) is made from, to
    tell when it must be made again (a lock's pid is checked by each state(), never
    cached)."""
    out = []
    for name in names:
        try:
            st = os.lstat(folder / name)
            out.append((name, st.st_mtime_ns, st.st_size, st.st_ino))
        except OSError:
            out.append((name, None, None))
    return tuple(out)


def _kind(cfg: dict) -> str | None:
    """The run's network family (experiment.arch.family), None when unknown."""
    if not cfg:
        return None
    from ..experiment.arch import family

    return family(cfg.get("arch"))


def _arch_text(cfg: dict) -> str | None:
    if not cfg:
        return None
    arch = cfg.get("arch")
    if isinstance(arch, str):
        return arch
    hidden = cfg.get("hidden") or []
    widths = [784, *[h for h in hidden if isinstance(h, int)], 10]
    return "MLP " + "-".join(str(w) for w in widths)


def _iso(t: float | None) -> str | None:
    if t is None:
        return None
    return datetime.fromtimestamp(t, timezone.utc).isoformat(timespec="seconds")


def _columns(epochs: list) -> dict:
    """[{epoch, train_loss, ...}] -> {"epoch": [...], "train_loss": [...], ...}."""
    keys = ("epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy",
            "test_loss", "test_accuracy", "lr", "seconds")
    rows = [e for e in epochs if isinstance(e, dict)]
    return {k: [r.get(k) for r in rows] for k in keys if rows and all(k in r for r in rows)}


def _decimate(steps: list, losses: list) -> dict:
    """At most MAX_BATCH_POINTS points, evenly spaced, the last always kept."""
    n = len(losses)
    if n > MAX_BATCH_POINTS:
        idx = np.unique(np.linspace(0, n - 1, MAX_BATCH_POINTS).round().astype(int))
        steps, losses = [steps[i] for i in idx], [losses[i] for i in idx]
    return {"step": list(steps), "loss": [float(v) for v in losses]}


class RunView:
    """What one run folder says about itself (read once; cheap to rebuild). ``run_id``:
    the folder's name, or ``SWEEP/trials/NNNN`` for a sweep's trial (web/sweeps.py)."""

    def __init__(self, folder: Path, run_id: str | None = None):
        self.folder, self.id = folder, run_id or folder.name
        self.metrics = self.ckpt = None
        self.error = None
        self.events = scan_events(folder)          # bounded, whatever the file's size
        try:
            if safe_file(folder, METRICS) and safe_file(folder, MODEL):
                self.metrics = read_run_json(folder / METRICS)
            elif safe_file(folder, CHECKPOINT):
                self.ckpt = checkpoint_meta(folder / CHECKPOINT)
        except (BarepropError, OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
            self.error = f"cannot read the run: {exc}"
        self.cfg = (self.metrics or self.ckpt or {}).get("config") or {}
        if not isinstance(self.cfg, dict):
            self.cfg = {}

    @property
    def is_run(self) -> bool:
        return bool(self.metrics or self.ckpt or self.events.count or self.error)

    def state(self) -> tuple[str, str | None]:
        """(state, error) from the folder alone (the job manager knows queued runs)."""
        last = self.events.last_state
        holder = live_holder(self.folder)
        if holder is not None:
            if runs_in(holder.pid, self.folder):      # Stop reaches it (web/jobs.py)
                return "running", None
            if "/" in self.id:              # a sweep's trial: its sweep stops it, not Stop
                return "running", None
            return "running", (f"trained by process {holder.pid}, which this server cannot "
                               f"stop; stop it where it runs (kill -INT {holder.pid})")
        if self.metrics is not None:
            return "finished", None
        if last is not None and last.get("state") in ("stopped", "failed"):
            err = last.get("error")
            return last["state"], err if isinstance(err, str) else None
        return "incomplete", self.error

    def epochs(self) -> list:
        src = self.metrics["history"] if self.metrics else \
            (self.ckpt or {}).get("history", {}).get("epochs", [])
        live = self.events.epoch_events()
        return live if len(live) > len(src or []) else list(src or [])

    def summary(self) -> dict:
        cfg, m = self.cfg, self.metrics or {}
        state, error = self.state()
        epochs = self.epochs()
        last = epochs[-1] if epochs else {}
        first_t, last_t = self.events.first_t, self.events.last_t
        duration = m.get("total_seconds") if isinstance(m.get("total_seconds"), (int, float)) \
            else None
        started = first_t
        if started is None:
            model = safe_file(self.folder, MODEL)
            mtime = (model or self.folder).stat().st_mtime
            started = mtime - duration if duration is not None else mtime
        if duration is None and self.events.timed > 1:
            duration = last_t - first_t
        first = self.events.first_state or {}
        return {
            "id": self.id, "state": state,
            "preset": cfg.get("preset") if isinstance(cfg.get("preset"), str) else None,
            "dataset": cfg.get("dataset") if isinstance(cfg.get("dataset"), str) else None,
            "kind": _kind(cfg), "arch": _arch_text(cfg),
            "test_accuracy": m.get("test_accuracy"),
            "val_accuracy": last.get("val_accuracy") if isinstance(last, dict) else None,
            "started": _iso(started), "duration_s": duration,
            "epochs_done": len(epochs),
            "epochs": cfg.get("epochs") if isinstance(cfg.get("epochs"), int)
            else first.get("epochs", len(epochs)),
            "has_model": safe_file(self.folder, MODEL) is not None,
            "has_report": safe_file(self.folder, REPORT) is not None,
            "error": error,
        }

    def details(self) -> dict:
        out = self.summary()
        out["config"] = self.cfg
        out["history"] = _columns(self.epochs())
        if self.metrics:
            losses = self.metrics.get("batch_loss", [])
            out["batches"] = _decimate(list(range(1, len(losses) + 1)), losses)
        else:
            batches = [e for e in self.events.batch_events()
                       if isinstance(e.get("step"), int)
                       and isinstance(e.get("loss"), (int, float))]
            out["batches"] = _decimate([e["step"] for e in batches],
                                       [e["loss"] for e in batches])
        return out
