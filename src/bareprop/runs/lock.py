"""Run folders claimed by one run at a time, never mixed with a run already there.

``claim_run_folder`` creates (or checks) the folder, refuses one that already holds a
run unless told to ``resume`` or ``overwrite`` it, or one with a link where the run
would write in place (writer.check_links), and takes the lock (layout.LOCK): a file
created with O_CREAT|O_EXCL that says whose it is, one JSON line
``{"pid": ..., "start": ..., "token": ...}`` (the process, when it started, and a random
token only the holder knows), and is removed when the run ends. Two runs started at
once into one folder: one gets the lock, the other a one-line refusal.

A lock is held while its process lives: the pid alive *and* started when the lock says
(a pid the system reused for another process does not hold it). A lock without a start
(an older bareprop's, or one written by hand) holds only while its pid is a bareprop
process. Anything else is stale, and the next run takes it over. Once a run holds the
folder, the temporaries its killed predecessors left (archive.temp_beside's names for
the files only the holder writes, layout.HOLDER_WRITES) are removed.

Default folders (no --out) are ``runs/<time>-<random>`` (``new_folder``), created with
an exclusive mkdir, so two runs started in the same second get two folders.

Not here: what goes into the folder (results.py, writer.py and the commands), how a
process is recognised (process.py).
"""
from __future__ import annotations

import errno
import json
import os
import secrets
import stat
import time
from dataclasses import dataclass
from pathlib import Path

from ..archive import remove_stale_temps
from ..errors import ConfigError
from .layout import CHECKPOINT, HOLDER_WRITES, IN_PLACE, LOCK, TRAIN_FILES
from .process import alive, is_bareprop, process_start
from .read import open_read
from .writer import check_links

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_MAX_LOCK_BYTES = 512


@dataclass(frozen=True)
class Holder:
    """Whose a lock says it is: the pid, its process's start (process.process_start;
    None in a lock without one) and the holder's token (None likewise)."""
    pid: int
    start: str | None = None
    token: str | None = None

    def holds(self) -> bool:
        """Whether this process is alive and is the one that wrote the lock."""
        if not alive(self.pid):
            return False
        if self.start is None:                      # no start: only a bareprop process
            return is_bareprop(self.pid) is not False
        now = process_start(self.pid)
        return now is None or now == self.start     # None: this OS cannot tell


def lock_line(pid: int | None = None, token: str | None = None) -> str:
    """The lock file's text for process ``pid`` (default: this one)."""
    pid = os.getpid() if pid is None else pid
    return json.dumps({"pid": pid, "start": process_start(pid),
                       "token": token or secrets.token_hex(8)}) + "\n"


def _parse(text: str) -> Holder | None:
    text = text.strip()
    if text.isdigit():                               # an older bareprop's: the pid alone
        return Holder(int(text)) if int(text) > 0 else None
    try:
        d = json.loads(text)
    except ValueError:
        return None
    if not isinstance(d, dict):
        return None
    pid, start, token = d.get("pid"), d.get("start"), d.get("token")
    # pid 0 would make os.kill(0, 0) probe our own process group: never "alive"
    if type(pid) is not int or pid <= 0 or not isinstance(start, (str, type(None))) \
            or not isinstance(token, (str, type(None))):
        return None
    return Holder(pid, start, token)


def read_lock(lock: Path) -> Holder | None:
    """Whose ``lock`` says it is, or None when it cannot be read (half written, damaged,
    or not a regular file)."""
    f = open_read(lock.parent, lock.name)      # no link followed, no FIFO waited on
    if f is None:
        return None
    try:
        with f:
            text = f.read(_MAX_LOCK_BYTES).decode("ascii", "replace")
    except OSError:
        return None
    return _parse(text)


def live_holder(folder: Path) -> Holder | None:
    """Who holds ``folder``'s lock now (Holder.holds), or None (no lock, a stale one, a
    symlink in its place): whether a run is training there now."""
    lock = Path(folder) / LOCK
    if lock.is_symlink():
        return None
    holder = read_lock(lock)
    return holder if holder is not None and holder.holds() else None


def _in_use(folder: Path, holder: Holder | None = None) -> ConfigError:
    held = f"pid {holder.pid}" if holder is not None else LOCK
    return ConfigError(f"{folder} is in use by another bareprop run ({held}); "
                       "wait for it to finish or choose another --out folder")


class RunLock:
    """The lock file of a run folder; ``release()`` removes it (idempotent)."""

    def __init__(self, path: Path):
        self.path = path
        self.held = False
        self.token = secrets.token_hex(8)

    def acquire(self, folder: Path) -> None:
        """Create the lock (O_CREAT|O_EXCL|O_NOFOLLOW) saying whose it is, taking over a
        stale one; ConfigError (one line) when a live run holds it or it cannot be made
        or written (a full disk leaves no lock behind)."""
        line = lock_line(token=self.token).encode()
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY | _NOFOLLOW, 0o644)
            except FileExistsError:
                self._take_over_if_stale(folder)
                continue
            except OSError as exc:
                raise _cannot_write(folder, exc) from None
            try:
                if os.write(fd, line) != len(line):
                    raise OSError(0, "the lock file was written short")
            except OSError as exc:
                os.close(fd)
                _unlink(self.path)
                raise _cannot_write(folder, exc) from None
            os.close(fd)
            self.held = True
            return
        raise _in_use(folder)

    def _take_over_if_stale(self, folder: Path) -> None:
        try:
            mode = os.lstat(self.path).st_mode
        except FileNotFoundError:
            return           # released meanwhile; retry the exclusive create
        if not (stat.S_ISREG(mode) or stat.S_ISLNK(mode)):
            raise ConfigError(f"{self.path} is not a bareprop lock file (a directory or "
                              "special file is in its place); remove it or choose another "
                              "--out folder")
        holder = read_lock(self.path)
        if holder is None:
            # a run that is writing its lock right now, or a damaged lock: give it a moment
            time.sleep(0.2)
            holder = read_lock(self.path)
        if holder is not None and holder.holds():
            raise _in_use(folder, holder)
        if holder is None and os.path.lexists(self.path) and not os.path.islink(self.path) \
                and time.time() - os.lstat(self.path).st_mtime < 5:
            raise _in_use(folder)
        # its process is gone: its run was killed. Renaming the stale lock to a name only
        # we use is atomic, so of two runs taking it over at once only one succeeds.
        grave = self.path.with_name(f"{LOCK}.stale-{secrets.token_hex(4)}")
        try:
            os.rename(self.path, grave)
        except FileNotFoundError:
            return           # the other one took it first; retry the exclusive create
        if read_lock(grave) != holder:
            # we moved a lock that a live run had just created: put it back, we lost
            os.rename(grave, self.path)
            raise ConfigError(f"{folder} is in use by another bareprop run; wait for it "
                              "to finish or choose another --out folder")
        os.unlink(grave)

    def release(self) -> None:
        """Remove the lock if it is still ours (its token: not a lock a later run took
        over, even one in this same process)."""
        held = read_lock(self.path) if self.held else None
        if held is not None and held.token == self.token:
            _unlink(self.path)
        self.held = False

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()


def new_folder(root: Path = Path("runs")) -> Path:
    """runs/<time>-<random>, made by an exclusive mkdir (retried on a clash)."""
    root.mkdir(parents=True, exist_ok=True)
    for _ in range(20):
        path = root / f"{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
    raise ConfigError(f"cannot create a new run folder under {root}; choose one with --out")


def claim_run_folder(out: str | None, *, resume: bool = False, overwrite: bool = False,
                     protect: tuple = TRAIN_FILES,
                     in_place: tuple = IN_PLACE) -> tuple[Path, RunLock]:
    """(folder, held lock) for a run writing into ``out`` (default: a new runs/ folder).

    Refused with one line: a folder holding any of ``protect`` or a lock (unless
    ``resume`` or ``overwrite``), a folder another live run holds, an unwritable one,
    one with a link at a name of ``in_place`` (where the run would append or write
    into a folder). The lock is created with O_EXCL|O_NOFOLLOW, so it doubles as the
    write probe and cannot be written through a planted link.
    """
    try:
        if out is None:
            path = new_folder()
        else:
            path = Path(out)
            if path.exists() and not path.is_dir():
                raise ConfigError(f"--out {path} is a file, not a folder; choose another --out")
            path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot write to output folder {out}: {exc.strerror}; "
                          "choose another with --out") from None
    lock = RunLock(path / LOCK)
    held = [n for n in (*protect, LOCK) if os.path.lexists(path / n)]
    if held and not (resume or overwrite):
        holder = live_holder(path) if LOCK in held else None
        if holder is not None:
            raise _in_use(path, holder)
        hint = f"continue it with --resume {path}, " if (path / CHECKPOINT).is_file() \
            and CHECKPOINT in protect else ""
        raise ConfigError(f"{path} already holds a run ({', '.join(held)}); {hint}choose a "
                          "new --out folder, or add --overwrite to replace it")
    check_links(path, in_place)
    lock.acquire(path)
    remove_stale_temps(path, HOLDER_WRITES)   # only the holder writes these: none is live
    return path, lock


def _unlink(path: Path) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def _cannot_write(folder: Path, exc: OSError) -> ConfigError:
    full = exc.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC), errno.EFBIG)
    fix = "free some space or choose another with --out" if full else \
        "choose another with --out"
    return ConfigError(f"cannot write to output folder {folder}: {exc.strerror or exc}; {fix}")
