"""Run folders claimed by one run at a time, never mixed with a run already there.

``claim_run_folder`` creates (or checks) the folder, refuses one that already holds a
run unless told to ``resume`` or ``overwrite`` it, or one with a link where the run
would write in place (writer.check_links), and takes the lock (layout.LOCK): a file
created with O_CREAT|O_EXCL that holds the pid of the run and is removed when the run
ends. Two runs started at once into one folder: one gets the lock, the other a
one-line refusal. A lock whose pid is no longer alive (a killed run) may be taken over.
Default folders (no --out) are ``runs/<time>-<random>`` (``new_folder``), created with
an exclusive mkdir, so two runs started in the same second get two folders.

Not here: what goes into the folder (results.py, writer.py and the commands).
"""
from __future__ import annotations

import os
import secrets
import stat
import time
from pathlib import Path

from ..errors import ConfigError
from .layout import CHECKPOINT, IN_PLACE, LOCK, TRAIN_FILES
from .writer import check_links

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:   # someone else's process: alive
        return True
    except OSError:
        return False
    return True


def _lock_pid(lock: Path) -> int | None:
    """The pid written in ``lock``, or None when it cannot be read (half written,
    or not a regular file)."""
    try:   # O_NONBLOCK: a FIFO planted under the lock's name must not hang us
        fd = os.open(lock, os.O_RDONLY | _NOFOLLOW | getattr(os, "O_NONBLOCK", 0))
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        text = os.read(fd, 64).decode("ascii", "replace").strip()
    except OSError:
        return None
    finally:
        os.close(fd)
    # pid 0 would make os.kill(0, 0) probe our own process group: never "alive"
    return int(text) if text.isdigit() and int(text) > 0 else None


def live_holder(folder: Path) -> int | None:
    """The pid of the live run holding ``folder``'s lock, or None (no lock, a stale one,
    or a symlink in its place): whether a run is training there now."""
    lock = Path(folder) / LOCK
    if lock.is_symlink():
        return None
    pid = _lock_pid(lock)
    return pid if pid is not None and _alive(pid) else None


def _in_use(folder: Path, pid: int | None = None) -> ConfigError:
    held = f"pid {pid}" if pid is not None else LOCK
    return ConfigError(f"{folder} is in use by another bareprop run ({held}); "
                       "wait for it to finish or choose another --out folder")


class RunLock:
    """The lock file of a run folder; ``release()`` removes it (idempotent)."""

    def __init__(self, path: Path):
        self.path = path
        self.held = False

    def acquire(self, folder: Path) -> None:
        """Create the lock (O_CREAT|O_EXCL|O_NOFOLLOW) holding our pid, taking over a
        stale one; ConfigError (one line) when a live run holds it or it cannot be made."""
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY | _NOFOLLOW, 0o644)
            except FileExistsError:
                self._take_over_if_stale(folder)
                continue
            except OSError as exc:
                raise ConfigError(f"cannot write to output folder {folder}: {exc.strerror}; "
                                  "choose another with --out") from None
            with os.fdopen(fd, "w") as f:
                f.write(f"{os.getpid()}\n")
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
        pid = _lock_pid(self.path)
        if pid is None:
            # a run that is writing its pid right now, or a damaged lock: give it a moment
            time.sleep(0.2)
            pid = _lock_pid(self.path)
        if pid is not None and _alive(pid):
            raise _in_use(folder, pid)
        if pid is None and os.path.lexists(self.path) and not os.path.islink(self.path) \
                and time.time() - os.lstat(self.path).st_mtime < 5:
            raise _in_use(folder)
        # the pid is dead: its run was killed. Renaming the stale lock to a name only we
        # use is atomic, so of two runs taking it over at once only one succeeds.
        grave = self.path.with_name(f"{LOCK}.stale-{secrets.token_hex(4)}")
        try:
            os.rename(self.path, grave)
        except FileNotFoundError:
            return           # the other one took it first; retry the exclusive create
        if _lock_pid(grave) != pid:
            # we moved a lock that a live run had just created: put it back, we lost
            os.rename(grave, self.path)
            raise ConfigError(f"{folder} is in use by another bareprop run; wait for it "
                              "to finish or choose another --out folder")
        os.unlink(grave)

    def release(self) -> None:
        if self.held and _lock_pid(self.path) == os.getpid():
            try:
                os.unlink(self.path)
            except OSError:
                pass
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
        pid = _lock_pid(path / LOCK) if LOCK in held else None
        if pid is not None and _alive(pid):
            raise _in_use(path, pid)
        hint = f"continue it with --resume {path}, " if (path / CHECKPOINT).is_file() \
            and CHECKPOINT in protect else ""
        raise ConfigError(f"{path} already holds a run ({', '.join(held)}); {hint}choose a "
                          "new --out folder, or add --overwrite to replace it")
    check_links(path, in_place)
    lock.acquire(path)
    return path, lock
