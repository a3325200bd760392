"""The one way bareprop writes into a run folder: never through a link planted there.

The run folder itself may be a link (the user chose it); nothing inside it is followed:

- ``write_whole(folder, name, data)``: a whole file (JSON, plots, the report, the CSV),
  by ``archive.atomic_write``: a temporary beside it renamed over ``name``, so a link
  at ``name`` is replaced, never followed.
- ``open_append(folder, name)``: a file appended to in place (events.jsonl, job.log).
  Every component is opened with O_NOFOLLOW, relative to the folder above it (dir_fd:
  no path is looked up twice, so a link swapped in meanwhile is not followed either);
  a link, a special file or a file with other hard links (an append would change them
  too) is refused with one line.
- ``real_folder(folder, name)``: a folder written into by a library that opens its own
  files (tensorboard/): created if missing, refused when it or a folder above it inside
  the run folder is a link.
- ``check_links(folder)``: what ``--out``, ``--resume`` and the web app's resume check
  before anything runs: no link (and no hard-linked file) at a name of layout.IN_PLACE.
- ``remove_matching(folder, name, pattern)``: delete the regular files of a folder
  bareprop writes into whose names match (``--overwrite``'s old TensorBoard event
  files), without following a link: the folders are opened as above, links and
  special files are left alone.

Not here: what the files hold (results.py, the model-file module, train/), the lock
file (lock.py, created with O_EXCL|O_NOFOLLOW).
"""
from __future__ import annotations

import errno
import os
import re
import stat
from pathlib import Path

from ..archive import atomic_write
from ..errors import ConfigError, OutputError
from . import layout

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)      # a FIFO in a file's place must not hang us
#: what bareprop does at each in-place name (for the refusal's wording)
_DOES = {layout.EVENTS: "appends live events", layout.JOB_LOG: "appends the job's output",
         layout.TENSORBOARD: "writes TensorBoard logs"}
_FIX = "bareprop never writes through links in a run folder: remove it, or choose " \
       "another --out folder"


def _parts(name: str) -> list[str]:
    parts = str(name).split("/")
    if any(p in ("", ".", "..") for p in parts):
        raise ValueError(f"{name!r} is not a name inside a run folder")
    return parts


def _refusal(path: Path, exc: OSError | None = None) -> OutputError:
    """One line for a write into ``path`` that failed (or must not happen): a link, a
    special file, a file with other hard links, or the OS's own reason."""
    try:
        st = os.lstat(path)
    except OSError:
        st = None
    if st is not None and stat.S_ISLNK(st.st_mode):
        return OutputError(f"cannot write {path}: it is a symbolic link; {_FIX}")
    if st is not None and not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)):
        return OutputError(f"cannot write {path}: a special file (not a regular file) is in "
                           "its place; remove it or choose another --out folder")
    if st is not None and stat.S_ISREG(st.st_mode) and st.st_nlink > 1:
        return OutputError(f"cannot write {path}: it has other hard links (an append would "
                           "change them too); remove it or choose another --out folder")
    reason = exc.strerror if exc is not None and exc.strerror else str(exc)
    return OutputError(f"cannot write {path}: {reason}")


def _open_folders(folder: Path, parts: list[str], create: bool) -> int:
    """An O_RDONLY fd of ``folder``/``parts``..., each component opened O_NOFOLLOW
    relative to the one above it (made first when ``create``)."""
    fd = os.open(folder, os.O_RDONLY | _DIRECTORY)       # the run folder: may be a link
    here = Path(folder)
    try:
        for part in parts:
            here = here / part
            if create:
                try:
                    os.mkdir(part, dir_fd=fd)
                except FileExistsError:
                    pass
            try:
                sub = os.open(part, os.O_RDONLY | _DIRECTORY | _NOFOLLOW, dir_fd=fd)
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise _refusal(here, exc) if os.path.islink(here) else OutputError(
                        f"cannot write into {here}: it is not a folder; remove it or "
                        "choose another --out folder") from None
                raise
            os.close(fd)
            fd = sub
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_append(folder, name: str, encoding: str | None = None):
    """A file object appending to ``folder``/``name`` (created if missing; binary, or text
    in ``encoding``). OutputError, one line, for a link at any component inside
    ``folder``, a special file, a hard-linked file, or a write the OS refuses."""
    folder, parts = Path(folder), _parts(name)
    path = folder.joinpath(*parts)
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | _NOFOLLOW | _NONBLOCK
    try:
        dfd = _open_folders(folder, parts[:-1], create=False)
        try:
            fd = os.open(parts[-1], flags, 0o666, dir_fd=dfd)
        finally:
            os.close(dfd)
    except OutputError:
        raise
    except OSError as exc:
        raise _refusal(path, exc) from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) or st.st_nlink > 1:
        os.close(fd)
        raise _refusal(path)
    return os.fdopen(fd, "a" if encoding else "ab", encoding=encoding)


def write_whole(folder, name: str, data: bytes) -> Path:
    """Replace ``folder``/``name`` by ``data`` (archive.atomic_write: readers see the old
    file or the new one; a link at ``name`` is replaced, not followed). A folder on the
    way inside ``folder`` must not be a link. Returns the path written."""
    folder, parts = Path(folder), _parts(name)
    path = folder.joinpath(*parts)
    if len(parts) > 1:
        try:
            os.close(_open_folders(folder, parts[:-1], create=False))
        except OSError as exc:
            raise _refusal(path, exc) from None
    atomic_write(path, data)
    return path


def real_folder(folder, name: str) -> Path:
    """``folder``/``name`` as a real folder, each component made if missing and none of
    them a link (OutputError, one line, otherwise): for a writer that opens its own files
    by path inside it (tensorboardX)."""
    folder, parts = Path(folder), _parts(name)
    try:
        folder.mkdir(parents=True, exist_ok=True)       # the folder given: may be a link
        os.close(_open_folders(folder, parts, create=True))
    except OutputError:
        raise
    except OSError as exc:
        raise _refusal(folder.joinpath(*parts), exc) from None
    return folder.joinpath(*parts)


def check_links(folder, names: tuple = layout.IN_PLACE) -> None:
    """ConfigError, one line naming the link and the fix, when a link (or a file with
    other hard links) stands where bareprop writes in place in ``folder``."""
    folder = Path(folder)
    for name in names:
        path = folder / name
        try:
            st = os.lstat(path)
        except OSError:
            continue              # missing (or under a link already reported)
        top = name.split("/")[0]
        does = _DOES.get(top, "writes")
        if stat.S_ISLNK(st.st_mode):
            raise ConfigError(f"{path} is a symbolic link where bareprop {does}; {_FIX}")
        if stat.S_ISREG(st.st_mode) and st.st_nlink > 1:
            raise ConfigError(f"{path} has other hard links, and bareprop {does} there (it "
                              "would change them too): remove it, or choose another --out "
                              "folder")


def remove_matching(folder, name: str, pattern: re.Pattern) -> list[str]:
    """Delete the regular files directly in ``folder``/``name`` whose names fullmatch
    ``pattern``; the names removed (none when the folder does not exist). Each folder on
    the way is opened O_NOFOLLOW (OutputError, one line, for a link there); a link or a
    special file among the entries is never followed nor removed."""
    folder, parts = Path(folder), _parts(name)
    path = folder.joinpath(*parts)
    try:
        fd = _open_folders(folder, parts, create=False)
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise _refusal(path, exc) from None
    removed = []
    try:
        for entry in sorted(os.listdir(fd)):
            if not pattern.fullmatch(entry):
                continue
            try:
                if stat.S_ISREG(os.stat(entry, dir_fd=fd, follow_symlinks=False).st_mode):
                    os.unlink(entry, dir_fd=fd)
                    removed.append(entry)
            except FileNotFoundError:
                continue                       # gone meanwhile
            except OSError as exc:
                raise OutputError(f"cannot remove {path / entry}: {exc.strerror or exc}") \
                    from None
    finally:
        os.close(fd)
    return removed
