"""Which process a lock names: alive or not, when it started, whether it is a bareprop
run and of which folder. What the lock (lock.py) and the web app's Stop rely on to tell
a live run from a pid the system has since given to another process.

Linux reads /proc; other systems ask ``ps`` (start time and command line) and answer
None ("cannot tell") where it does not help. Nothing here sends a signal.

Not here: the lock file itself (lock.py).
"""
from __future__ import annotations

import os
import subprocess
import sys
from functools import lru_cache
from pathlib import Path

_PROC = Path("/proc")
_SUBCOMMANDS = ("train", "compare")          # the commands that hold a run folder


def alive(pid: int) -> bool:
    """Whether a process ``pid`` exists (someone else's counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:   # someone else's process: alive
        return True
    except (OSError, OverflowError):
        return False
    return True


@lru_cache(maxsize=1)
def _boot_id() -> str:
    try:
        return (_PROC / "sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return "boot"


def _ps(pid: int, field: str) -> str | None:
    """``ps -o FIELD= -p PID`` (BSD, macOS), or None."""
    try:
        out = subprocess.run(["ps", "-o", f"{field}=", "-p", str(pid)], capture_output=True,
                             text=True, timeout=2, env={**os.environ, "LC_ALL": "C"})
    except (OSError, subprocess.SubprocessError):
        return None
    return (out.stdout.strip() or None) if out.returncode == 0 else None


def process_start(pid: int) -> str | None:
    """When process ``pid`` started, as an opaque string equal for the same process and
    different for a later one given the same pid (Linux: the boot and the clock tick
    of its start); None when there is no such process or this system cannot tell."""
    if sys.platform.startswith("linux"):
        try:
            stat = (_PROC / str(pid) / "stat").read_bytes()
        except OSError:
            return None
        fields = stat[stat.rfind(b")") + 2:].split()     # after "(comm) ", which may hold spaces
        return f"{_boot_id()}:{int(fields[19])}" if len(fields) > 19 else None
    return _ps(pid, "lstart")


def _argv(pid: int) -> list[str] | None:
    if sys.platform.startswith("linux"):
        try:
            raw = (_PROC / str(pid) / "cmdline").read_bytes()
        except OSError:
            return None
        return [a.decode("utf-8", "replace") for a in raw.split(b"\0") if a]
    text = _ps(pid, "command")
    return text.split() if text else None


def _command(argv: list[str]) -> list[str] | None:
    """The arguments after bareprop's own name in ``argv`` (``python -m bareprop ...`` or
    the ``bareprop`` script), or None when ``argv`` does not run bareprop."""
    for i, a in enumerate(argv):
        if a == "bareprop" or os.path.basename(a) == "bareprop":
            return argv[i + 1:]
    return None


def is_bareprop(pid: int) -> bool | None:
    """Whether process ``pid`` runs bareprop's command line (``bareprop ...`` or
    ``python -m bareprop ...``); None: cannot tell (no such process, or its command
    line cannot be read)."""
    argv = _argv(pid)
    return None if argv is None else _command(argv) is not None


def runs_in(pid: int, folder: Path) -> bool:
    """Whether process ``pid`` is ``bareprop train`` (or ``compare``) writing ``folder``,
    as its command line says (``--out``/``--resume``, or a default runs/ folder of its
    working directory). False when that cannot be read (other systems than Linux)."""
    argv = _argv(pid) if sys.platform.startswith("linux") else None
    rest = _command(argv) if argv else None
    if not rest or rest[0] not in _SUBCOMMANDS:
        return False
    try:
        cwd = Path(os.readlink(_PROC / str(pid) / "cwd"))
    except OSError:
        return False
    named = None
    for i, a in enumerate(rest):
        if a in ("--out", "--resume") and i + 1 < len(rest):
            named = rest[i + 1]
        elif a.startswith(("--out=", "--resume=")):
            named = a.split("=", 1)[1]
    want = Path(folder).resolve()
    if named is None:                            # a default folder: runs/<time>-<random>
        return want.parent == (cwd / "runs").resolve()
    return (cwd / named).resolve() == want
