"""Run folders as the JSON the web app shows: a summary per run, and the details
(config, per-epoch history, per-batch loss) of one.

Everything is read as untrusted input: metrics.json through runfiles.read_run_json
(checked field by field), a checkpoint's JSON metadata only (no arrays are loaded to
list a run), events.jsonl line by line with bad lines skipped. A folder that cannot
be read is listed as "incomplete" with the reason in ``error``, never an exception.
"""
from __future__ import annotations

import json
import os
import zipfile
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from ..archive import META_KEY, declared_arrays
from ..errors import BarepropError
from ..experiment.runfolder import live_holder
from ..runfiles import read_run_json
from ..train.events import EVENTS_NAME
from .security import RUN_ID, safe_file

MAX_EVENT_BYTES = 64 << 20       # an events.jsonl larger than this is read from its tail
MAX_BATCH_POINTS = 2000


def checkpoint_meta(path: Path) -> dict:
    """The JSON state of a checkpoint without its arrays (config, epoch, history)."""
    declared_arrays(path, "checkpoint")                  # sized before anything is read
    with zipfile.ZipFile(path) as zf, zf.open(META_KEY + ".npy") as f:
        raw = np.lib.format.read_array(f, allow_pickle=False)
    meta = json.loads(raw.tobytes().decode())
    state = meta.get("state") if isinstance(meta, dict) else None
    if not isinstance(state, dict):
        raise ValueError("no state")
    return state


def read_events(folder: Path) -> list[dict]:
    """The events of ``folder``/events.jsonl (a half-written last line is skipped)."""
    path = safe_file(folder, EVENTS_NAME)
    if path is None:
        return []
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size > MAX_EVENT_BYTES:
            f.seek(size - MAX_EVENT_BYTES)
            f.readline()                                  # drop the cut line
        lines = f.read().splitlines()
    return [e for e in map(parse_event, lines) if e is not None]


def latest_attempt(events: list[dict]) -> list[dict]:
    """``events`` without the batch and epoch events a resume trained again: a run
    stopped inside epoch k resumes from the start of epoch k, so its steps (and epoch
    numbers) come again; only the last attempt's events are kept, in order."""
    out, floors = [], {"batch": float("inf"), "epoch": float("inf")}
    for e in reversed(events):
        kind = e.get("event")
        if kind in floors:
            key = e.get("step" if kind == "batch" else "epoch")
            if isinstance(key, (int, float)):
                if key >= floors[kind]:
                    continue
                floors[kind] = key
        out.append(e)
    return out[::-1]


def parse_event(line: bytes) -> dict | None:
    try:
        e = json.loads(line)
    except (ValueError, RecursionError):
        return None
    return e if isinstance(e, dict) and isinstance(e.get("event"), str) else None


def lock_alive(folder: Path) -> bool:
    """Whether a live process holds the folder's run lock (a run training now)."""
    return live_holder(folder) is not None


def _kind(cfg: dict) -> str | None:
    if not cfg:
        return None
    arch = cfg.get("arch")
    return "cnn" if isinstance(arch, str) and "conv" in arch else "mlp"


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
    """What one run folder says about itself (read once; cheap to rebuild)."""

    def __init__(self, folder: Path):
        self.folder, self.id = folder, folder.name
        self.metrics = self.ckpt = None
        self.error = None
        self.events = latest_attempt(read_events(folder))
        try:
            if safe_file(folder, "metrics.json") and safe_file(folder, "model.npz"):
                self.metrics = read_run_json(folder / "metrics.json")
            elif safe_file(folder, "checkpoint.npz"):
                self.ckpt = checkpoint_meta(folder / "checkpoint.npz")
        except (BarepropError, OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
            self.error = f"cannot read the run: {exc}"
        self.cfg = (self.metrics or self.ckpt or {}).get("config") or {}
        if not isinstance(self.cfg, dict):
            self.cfg = {}

    @property
    def is_run(self) -> bool:
        return bool(self.metrics or self.ckpt or self.events or self.error)

    def state(self) -> tuple[str, str | None]:
        """(state, error) from the folder alone (the job manager knows queued runs)."""
        last = next((e for e in reversed(self.events) if e["event"] == "state"), None)
        if lock_alive(self.folder):
            return "running", None
        if self.metrics is not None:
            return "finished", None
        if last is not None and last.get("state") in ("stopped", "failed"):
            err = last.get("error")
            return last["state"], err if isinstance(err, str) else None
        return "incomplete", self.error

    def epochs(self) -> list:
        src = self.metrics["history"] if self.metrics else \
            (self.ckpt or {}).get("history", {}).get("epochs", [])
        live = [e for e in self.events if e["event"] == "epoch"]
        return live if len(live) > len(src or []) else list(src or [])

    def summary(self) -> dict:
        cfg, m = self.cfg, self.metrics or {}
        state, error = self.state()
        epochs = self.epochs()
        last = epochs[-1] if epochs else {}
        times = [e.get("t") for e in self.events if isinstance(e.get("t"), (int, float))]
        duration = m.get("total_seconds") if isinstance(m.get("total_seconds"), (int, float)) \
            else None
        started = times[0] if times else None
        if started is None:
            model = safe_file(self.folder, "model.npz")
            mtime = (model or self.folder).stat().st_mtime
            started = mtime - duration if duration is not None else mtime
        if duration is None and len(times) > 1:
            duration = times[-1] - times[0]
        first = next((e for e in self.events if e["event"] == "state"), {})
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
            "has_model": safe_file(self.folder, "model.npz") is not None,
            "has_report": safe_file(self.folder, "report.html") is not None,
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
            batches = [e for e in self.events if e["event"] == "batch"
                       and isinstance(e.get("step"), int)
                       and isinstance(e.get("loss"), (int, float))]
            out["batches"] = _decimate([e["step"] for e in batches],
                                       [e["loss"] for e in batches])
        return out


def list_runs(root: Path) -> list[Path]:
    """Every folder directly under ``root`` that may hold a run (symlinks and odd names
    skipped; RunView.is_run tells)."""
    if not root.is_dir():
        return []
    return [Path(e.path) for e in os.scandir(root)
            if RUN_ID.fullmatch(e.name) and not e.is_symlink() and e.is_dir()]
