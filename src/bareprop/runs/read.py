"""Reading run folders for any watcher (the web app, a script): the run folders under a
root, the live events of one, and a checkpoint's JSON state without its arrays.

Everything is untrusted input and read in bounded memory, whatever the files' sizes:

- ``open_read`` opens a run folder's file without following a link (O_NOFOLLOW) or
  waiting on a FIFO; every reader here opens through it.
- ``Tail`` gives the new complete lines of a file since its last call, at most
  MAX_LINE bytes each (a longer line, or one that never ends, comes cut at MAX_LINE and
  the rest of it is skipped): the web app's live stream of events.jsonl and job.log.
- ``scan_events`` reads events.jsonl (its last MAX_EVENT_BYTES) line by line into a
  ``RunEvents``: the latest attempt's epochs (at most MAX_EPOCHS) and batches (evenly
  thinned to at most MAX_BATCHES), the first and last state, the first and last time,
  only the numbers of each epoch and batch event kept. Bad lines are skipped.
  (``latest_attempt`` states the same rule over a list of events.)
- ``checkpoint_meta``: a checkpoint sized from its headers (archive.declared_arrays)
  before its JSON entry alone is read.

Not here: the JSON files' field checks (jsonfiles.py), whether a run holds its folder
now (lock.live_holder), how the web app shapes all this (web/runs.py).
"""
from __future__ import annotations

import json
import math
import os
import stat
import zipfile
from pathlib import Path

import numpy as np

from ..archive import META_KEY, declared_arrays
from .layout import EVENTS, FOLDER_NAME

MAX_EVENT_BYTES = 64 << 20       # an events.jsonl larger than this is read from its tail
MAX_LINE = 16 << 10              # an event line bareprop writes: a few hundred bytes
MAX_EPOCHS = 2000                # epoch events kept (the last ones)
MAX_BATCHES = 4000               # batch events kept, evenly thinned by step
MAX_FIELDS = 24                  # numbers kept from one epoch or batch event (it has ~12)
MAX_TEXT = 2000                  # characters kept of a state event's error
_CHUNK = 1 << 20
_READ = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)


def open_read(folder, name: str):
    """``folder``/``name`` opened for binary reading, never through a link planted at
    ``name`` (O_NOFOLLOW) and never waiting on a FIFO; None when it is missing, a link
    or not a regular file."""
    if "/" in name or name in ("", ".", ".."):
        raise ValueError(f"{name!r} is not a file name inside a run folder")
    try:
        fd = os.open(Path(folder) / name, _READ)
    except OSError:
        return None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        return None
    return os.fdopen(fd, "rb")


class Tail:
    """New complete lines of ``folder``/``name`` since the last call (a half-written line
    waits for its end), each at most ``max_line`` bytes: a longer one (or one without
    end) is given cut at ``max_line`` and the rest of it skipped, so what is held stays
    under ``max_line`` whatever the file holds. Opened through ``open_read`` at every
    call (a link is never followed); a file that shrank is read again from its start."""

    def __init__(self, folder, name: str, offset: int = 0, skip_first: bool = False,
                 max_line: int = MAX_LINE):
        self.folder, self.name, self.max_line = Path(folder), name, max_line
        self.offset, self.rest, self.skipping = offset, b"", skip_first

    @classmethod
    def last(cls, folder, name: str, nbytes: int, **kw) -> "Tail":
        """A Tail starting at the first line that begins in the last ``nbytes``."""
        f = open_read(folder, name)
        size = 0 if f is None else os.fstat(f.fileno()).st_size
        if f is not None:
            f.close()
        return cls(folder, name, offset=max(0, size - nbytes), skip_first=size > nbytes, **kw)

    def lines(self, max_bytes: int = _CHUNK) -> list[bytes]:
        f = open_read(self.folder, self.name)
        if f is None:
            return []
        with f:
            if os.fstat(f.fileno()).st_size < self.offset:      # replaced: start again
                self.offset, self.rest, self.skipping = 0, b"", False
            f.seek(self.offset)
            chunk = f.read(max_bytes)
        self.offset += len(chunk)
        return self.split(chunk)

    def split(self, chunk: bytes) -> list[bytes]:
        """The complete lines ``chunk`` ends (with what earlier chunks left over)."""
        out = []
        *done, rest = chunk.split(b"\n")
        for i, piece in enumerate(done):
            line = self.rest + piece if i == 0 else piece
            if i == 0 and self.skipping:
                self.skipping = False           # the end of a line cut or begun earlier
            elif line and not line.isspace():
                out.append(line[:self.max_line])
        if done:
            self.rest = b""
        if not self.skipping:
            self.rest += rest[:self.max_line + 1 - len(self.rest)]
            if len(self.rest) > self.max_line:      # no end in sight: give it cut
                out.append(self.rest[:self.max_line])
                self.rest, self.skipping = b"", True
        return out


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


def _number(v) -> bool:
    return type(v) is float or type(v) is int      # what JSON gives (bool is no number)


def _finite(v) -> bool:
    """A number that can order events (an epoch, a step, a time): not NaN, not infinite."""
    try:
        return _number(v) and math.isfinite(v)
    except OverflowError:               # an int beyond any float
        return False


def _numbers(e: dict) -> dict:
    """An epoch or batch event as bareprop writes it: its name and at most MAX_FIELDS of
    its numbers (anything else a planted line might carry is dropped)."""
    kept = {"event": e["event"]}
    for k, v in e.items():
        if len(kept) > MAX_FIELDS:
            break
        if _number(v) and len(k) <= 32:
            kept[k] = v
    return kept


class RunEvents:
    """What a watcher needs of one events.jsonl, held in bounded memory.

    The latest attempt (as ``latest_attempt``: a resume that trains epoch k and step s
    again drops what the earlier attempt recorded from there on), built line by line:
    ``epochs`` (the last MAX_EPOCHS), ``batches`` (those whose step is a multiple of
    ``stride``, the stride doubling whenever more than MAX_BATCHES are kept, plus the
    newest), ``first_state``/``last_state``, ``first_t``/``last_t`` (of ``timed``
    events), ``count`` (events read), ``tail`` (a Tail that goes on where the scan
    ended, or None)."""

    def __init__(self):
        self.epochs: list[tuple[int, dict]] = []     # (line number, event)
        self.batches: list[tuple[int, dict]] = []
        self.newest: tuple[int, dict] | None = None   # the latest batch, kept whatever
        self.stride = 1
        self.first_state = self.last_state = None
        self.first_t = self.last_t = None
        self.count = self.timed = 0
        self.tail: Tail | None = None

    def add(self, e: dict) -> None:
        seq, self.count = self.count, self.count + 1
        t = e.get("t")
        if _finite(t):
            self.first_t = t if self.first_t is None else self.first_t
            self.last_t, self.timed = t, self.timed + 1
        kind = e["event"]
        if kind == "state":
            kept = {k: v for k, v in e.items() if _number(v) or k in ("event", "state")}
            if isinstance(kept.get("state"), str):
                kept["state"] = kept["state"][:64]
            if isinstance(e.get("error"), str):
                kept["error"] = e["error"][:MAX_TEXT]
            self.first_state = self.first_state or kept
            self.last_state = kept
        elif kind == "epoch" and _finite(e.get("epoch")):
            self.epochs = self._again(self.epochs, "epoch", e["epoch"])
            self.epochs.append((seq, _numbers(e)))
            if len(self.epochs) > MAX_EPOCHS:
                del self.epochs[:len(self.epochs) - MAX_EPOCHS]
        elif kind == "batch" and _finite(e.get("step")):
            step = e["step"]
            self.batches = self._again(self.batches, "step", step)
            self.newest = (seq, e)                 # one raw line: its numbers taken at use
            if step == int(step) and int(step) % self.stride == 0:
                self.batches.append((seq, _numbers(e)))
                if len(self.batches) > MAX_BATCHES:
                    self.stride *= 2
                    self.batches = [b for b in self.batches
                                    if int(b[1]["step"]) % self.stride == 0]

    @staticmethod
    def _again(kept: list, key: str, value) -> list:
        """``kept`` without what a later attempt redoes: entries from ``value`` on."""
        if not kept or kept[-1][1][key] < value:      # kept is increasing in ``key``
            return kept
        return [x for x in kept if x[1][key] < value]

    def epoch_events(self) -> list[dict]:
        return [e for _, e in self.epochs]

    def _batches(self) -> list[tuple[int, dict]]:
        out = list(self.batches)
        if self.newest is not None and (not out or out[-1][0] != self.newest[0]):
            out.append((self.newest[0], _numbers(self.newest[1])))
        return out

    def batch_events(self) -> list[dict]:
        return [e for _, e in self._batches()]

    def replay(self) -> list[dict]:
        """The kept epoch and batch events, in the order they were written."""
        return [e for _, e in sorted(self.epochs + self._batches(), key=lambda x: x[0])]


def scan_events(folder: Path) -> RunEvents:
    """``folder``/events.jsonl read line by line (its last MAX_EVENT_BYTES; lines over
    MAX_LINE and bad lines skipped) into a RunEvents, whose ``tail`` goes on from there;
    an empty one (``tail`` None) when the file is missing, a link or not a regular file."""
    out = RunEvents()
    f = open_read(folder, EVENTS)
    if f is None:
        return out
    with f:
        size = os.fstat(f.fileno()).st_size
    start = max(0, size - MAX_EVENT_BYTES)
    out.tail = tail = Tail(folder, EVENTS, offset=start, skip_first=start > 0)
    while tail.offset < size:
        before = tail.offset
        for line in tail.lines(min(_CHUNK, size - tail.offset)):
            e = parse_event(line)
            if e is not None:
                out.add(e)
        if tail.offset == before:       # the file shrank meanwhile
            break
    return out


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
