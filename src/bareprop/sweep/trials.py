"""A trial's process, seen from whoever runs it (the Optuna engine's loop, or a Ray Tune
worker): started with the trial's settings, its BLAS threads capped, its epoch reports
read and answered (child.py speaks the other side).

Each process gets ``threads`` BLAS/OpenMP threads: K trials at once on C cores get
C // K each, so K processes never ask for more threads than there are cores.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from ..errors import OutputError
from ..runs.layout import TRIAL, TRIAL_LOG
from ..runs.writer import open_append

THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
                    "NUMBA_NUM_THREADS")


#: the states a trial ends in (a "stopped" one is run on by --resume)
ENDED = ("complete", "pruned", "failed")


def end_message(state: str, value=None, epochs_run=None, reason=None) -> dict:
    """The last line a trial's process sends (and keeps in its folder as trial.json)."""
    return {"event": "end", "state": state, "value": value, "epochs_run": epochs_run,
            "reason": reason}


def read_end(folder) -> dict:
    """The trial.json a trial's process wrote in ``folder``, or {} (none, or unreadable)."""
    try:
        end = json.loads((Path(folder) / TRIAL).read_text())
    except (OSError, ValueError):
        return {}
    return end if isinstance(end, dict) else {}


def ended(folder) -> dict | None:
    """The trial.json of a trial that ended (a complete one with its value), else None."""
    end = read_end(folder)
    if end.get("state") not in ENDED:
        return None
    if end["state"] == "complete" and not isinstance(end.get("value"), float):
        return None
    return end


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:                   # not Linux
        return os.cpu_count() or 1


class TrialProcess:
    """One trial's process. ``events()`` yields its messages; ``answer(prune)`` replies
    to an epoch report; ``interrupt()`` asks it to stop (Ctrl-C: it keeps the checkpoint
    of its last epoch)."""

    def __init__(self, folder: Path, number: int, settings: dict, threads: int,
                 finish: str | None = None, cwd: str | None = None):
        self.folder, self.number = Path(folder), number
        for path in (self.folder.parent, self.folder):
            if path.is_symlink():
                raise OutputError(f"{path} is a link; a sweep's trials/ and each trial's "
                                  "folder must be real folders inside it (links are never "
                                  "followed)")
        self.folder.mkdir(parents=True, exist_ok=True)
        self.t0 = time.perf_counter()
        env = dict(os.environ, **{v: str(threads) for v in THREAD_VARIABLES})
        with open_append(self.folder, TRIAL_LOG) as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "bareprop.sweep.child"], stdin=subprocess.PIPE,
                stdout=subprocess.PIPE, stderr=log, env=env, text=True, bufsize=1,
                start_new_session=True,      # Ctrl-C reaches the sweep; it tells us
                cwd=cwd if cwd and os.path.isdir(cwd) else None)
        self.send({"settings": settings, "folder": str(self.folder), "number": number,
                   "finish": finish})
        self.end: dict | None = None

    @property
    def stdout(self):
        return self.proc.stdout

    def send(self, message) -> None:
        try:
            self.proc.stdin.write((message if isinstance(message, str)
                                   else json.dumps(message)) + "\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError, ValueError):
            pass                             # it ended; its exit is read next

    def answer(self, prune: bool) -> None:
        self.send("prune" if prune else "go")

    def read(self) -> dict | None:
        """The next message (None at the end of its output)."""
        line = self.proc.stdout.readline()
        if not line:
            return None
        try:
            message = json.loads(line)
        except json.JSONDecodeError:
            return {"event": "noise"}
        if message.get("event") == "end":
            self.end = message
        return message if isinstance(message, dict) else {"event": "noise"}

    def wait(self) -> dict:
        """Read to the end (answering nothing: a finishing process trains no epoch),
        then finish()."""
        while self.read() is not None:
            pass
        return self.finish()

    def finish(self) -> dict:
        """The end message, after the process has exited (made up from its exit status
        when it said none: killed, or crashed outside Python)."""
        rc = self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout):
            try:
                stream.close()
            except OSError:
                pass
        if self.end is not None:
            return self.end
        how = (f"killed by signal {signal.Signals(-rc).name}" if rc < 0
               else f"exit code {rc}")
        return end_message("failed", reason=f"its process ended ({how}); see "
                                            f"{self.folder / TRIAL_LOG}")

    def interrupt(self) -> None:
        """Ask it to stop: SIGINT stops it mid-epoch, and its input closed stops it at
        the next epoch's end should SIGINT be ignored (a sweep started in the
        background of a shell inherits SIGINT ignored; child.py restores it too)."""
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(signal.SIGINT)
            except OSError:
                pass
        try:
            self.proc.stdin.close()
        except OSError:
            pass

    def seconds(self) -> float:
        return time.perf_counter() - self.t0
