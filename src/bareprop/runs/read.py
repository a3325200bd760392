"""Reading run folders for any watcher (the web app, a script): the run folders under a
root, the live events of one, and a checkpoint's JSON state without its arrays.

Everything is untrusted input: events.jsonl is read without following a link, from its
last MAX_EVENT_BYTES, line by line with bad lines skipped; a checkpoint is sized from
its headers (archive.declared_arrays) before its JSON entry alone is read.

Not here: the JSON files' field checks (jsonfiles.py), whether a run holds its folder
now (lock.live_holder), how the web app shapes all this (web/runs.py).
"""
from __future__ import annotations

import json
import os
import stat
import zipfile
from pathlib import Path

import numpy as np

from ..archive import META_KEY, declared_arrays
from .layout import EVENTS, FOLDER_NAME

MAX_EVENT_BYTES = 64 << 20       # an events.jsonl larger than this is read from its tail
_READ = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)


def list_runs(root: Path) -> list[Path]:
    """Every folder directly under ``root`` that may hold a run (links and names outside
    layout.FOLDER_NAME skipped; whether it holds a run is for its reader to tell)."""
    if not Path(root).is_dir():
        return []
    return [Path(e.path) for e in os.scandir(root)
            if FOLDER_NAME.fullmatch(e.name) and not e.is_symlink() and e.is_dir()]


def parse_event(line: bytes) -> dict | None:
    """One line of events.jsonl as its event (a JSON object with a string "event"), or
    None for anything else (a half-written line, garbage)."""
    try:
        e = json.loads(line)
    except (ValueError, RecursionError):
        return None
    return e if isinstance(e, dict) and isinstance(e.get("event"), str) else None


def read_events(folder: Path) -> list[dict]:
    """The events of ``folder``/events.jsonl ([] when it is missing, a link or not a
    regular file; a half-written last line is skipped)."""
    try:
        fd = os.open(Path(folder) / EVENTS, _READ)
    except OSError:
        return []
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return []
        if st.st_size > MAX_EVENT_BYTES:
            f.seek(st.st_size - MAX_EVENT_BYTES)
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


def checkpoint_meta(path: Path) -> dict:
    """The JSON state of a checkpoint without its arrays (config, epoch, history);
    ValueError when it has none."""
    declared_arrays(path, "checkpoint")                  # sized before anything is read
    with zipfile.ZipFile(path) as zf, zf.open(META_KEY + ".npy") as f:
        raw = np.lib.format.read_array(f, allow_pickle=False)
    meta = json.loads(raw.tobytes().decode())
    state = meta.get("state") if isinstance(meta, dict) else None
    if not isinstance(state, dict):
        raise ValueError("no state")
    return state
