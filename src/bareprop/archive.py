"""Archives and the one file writer: every file bareprop writes goes through here.

``atomic_write`` is the only way bareprop puts bytes on disk (model files,
checkpoints, JSON, plots, the report, IDX files). ``write_archive``/``read_archive``
are the ``.npz`` container of model files and checkpoints: arrays plus a JSON
``__meta__``, read with allow_pickle=False so a file can never run code, and sized
from its headers before anything is decompressed or allocated (bounds below, and in
docs/format.md).
"""
from __future__ import annotations

import io
import json
import math
import os
import re
import stat
import tempfile
import zipfile
import zlib
from pathlib import Path

import numpy as np

from .errors import ModelFileError, OutputError

META_KEY = "__meta__"

# Bounds on what an archive may declare, checked from the zip directory and the .npy
# headers alone. bareprop writes entries uncompressed (np.savez), so a stored entry's
# size is the bytes on disk; a deflated one (np.savez_compressed) may expand at most
# MAX_INFLATE_RATIO:1, which refuses zip bombs while leaving room for zero-filled state.
MAX_ENTRIES = 4096
MAX_ARCHIVE_BYTES = 4 << 30          # all arrays together, uncompressed
MAX_META_BYTES = 64 << 20            # the JSON __meta__ entry
MAX_INFLATE_RATIO = 100
MAX_NPY_HEADER = 10_000              # numpy's own default bound on a .npy header


def _umask() -> int:
    mask = os.umask(0)  # the only portable way to read it: set, then restore at once
    os.umask(mask)
    return mask


_MODE = 0o666 & ~_umask()   # what open(path, "w") would have given the file


def check_target(path: Path) -> None:
    """Refuse a final name that is a directory or a special file (FIFO, device, socket).

    A symlink is fine: rename replaces the link itself, never what it points to."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror}") from None
    if stat.S_ISDIR(st.st_mode):
        raise OutputError(f"cannot write {path}: a directory is in its place; move it away "
                          "or choose another folder")
    if not (stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode)):
        raise OutputError(f"cannot write {path}: a special file (not a regular file) is in "
                          "its place; remove it or choose another folder")


def _fsync_dir(folder: Path) -> None:
    """Make the rename itself durable; not every OS or file system allows it."""
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def temp_beside(path: Path, suffix: str = ".tmp") -> tuple[int, str]:
    """(fd, name) of a new file in ``path``'s folder for writing ``path`` by rename:
    mkstemp's O_CREAT|O_EXCL and random name mean nothing planted can be written
    through; the permissions are those open(path, "w") would give. The name is
    ``.<name>.<8 random characters><suffix>`` (``_TEMP_NAME``)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    if hasattr(os, "fchmod"):   # mkstemp makes 0600
        os.fchmod(fd, _MODE)
    return fd, tmp


# temp_beside's names: mkstemp's 8 random characters between the prefix and the suffix
_TEMP_NAME = re.compile(r"\.(?P<name>.+)\.[a-z0-9_]{8}\.tmp")


def remove_stale_temps(folder, names: tuple) -> list[str]:
    """Remove the temporaries ``atomic_write`` left in ``folder`` while writing one of
    ``names`` (a writer killed between creating and renaming them); the names removed.

    Only for a caller that knows no live writer of those names exists (the run holding a
    run folder's lock: runs/lock.py). Links and anything but regular files are left, as
    are names that are not exactly temp_beside's; never raises."""
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for e in entries:
        m = _TEMP_NAME.fullmatch(e.name)
        try:
            if m and m["name"] in names and e.is_file(follow_symlinks=False):
                os.unlink(e.path)
                removed.append(e.name)
        except OSError:
            pass
    return removed


def atomic_write(path, data: bytes) -> None:
    """Replace ``path`` by ``data``: readers see the complete old file or the new one.

    The bytes go to a fresh temporary in the same folder, created by mkstemp
    (O_CREAT|O_EXCL, random name: nothing planted there can be written through), are
    fsynced, and renamed over ``path``; the rename replaces a symlink at ``path``
    rather than following it. OutputError, with the old file unchanged, on failure.
    """
    path = Path(path)
    check_target(path)
    tmp = None
    try:
        fd, tmp = temp_beside(path)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        tmp = None
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}; the previous file, "
                          "if any, is unchanged") from None
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass
    _fsync_dir(path.parent)


def write_archive(path, meta: dict, arrays: dict[str, np.ndarray]) -> None:
    """Write ``arrays`` plus ``meta`` (JSON under __meta__) as one .npz, atomically."""
    arrays = {**arrays, META_KEY: np.frombuffer(json.dumps(meta).encode(), np.uint8)}
    buf = io.BytesIO()
    try:
        np.savez(buf, **arrays)
    except ValueError as exc:
        # Ctrl-C inside np.savez's entry write leaves a writing handle open, and its
        # `finally: zipf.close()` then raises ValueError over the KeyboardInterrupt: a
        # run stopped while checkpointing would be recorded as failed, not stopped
        cause = exc.__context__
        if isinstance(cause, KeyboardInterrupt):
            raise cause from None
        raise
    try:
        atomic_write(Path(path), buf.getvalue())
    except OutputError as exc:
        raise ModelFileError(str(exc)) from None


def declared_arrays(path: Path, what: str) -> dict[str, tuple[tuple, np.dtype]]:
    """name -> (shape, dtype) of every array in the .npz at ``path``, from the zip
    directory and the .npy headers only (a few KB read, nothing inflated), after
    checking each declared size against the file and the bounds above."""
    def bad(reason: str) -> ModelFileError:
        return ModelFileError(f"{path}: refused as a {what}: {reason}")

    out, total = {}, 0
    with zipfile.ZipFile(path) as zf:
        infos = zf.infolist()
        if len(infos) > MAX_ENTRIES:
            raise bad(f"{len(infos)} entries (at most {MAX_ENTRIES})")
        for info in infos:
            name = info.filename
            if not name.endswith(".npy"):
                raise bad(f"entry {name!r} is not a .npy array")
            if info.compress_type == zipfile.ZIP_STORED:
                if info.file_size != info.compress_size:
                    raise bad(f"entry {name!r} claims {info.file_size} bytes but stores "
                              f"{info.compress_size}")
            elif info.compress_type == zipfile.ZIP_DEFLATED:
                if info.file_size > MAX_INFLATE_RATIO * info.compress_size + 4096:
                    raise bad(f"entry {name!r} would inflate {info.compress_size} bytes to "
                              f"{info.file_size} (more than {MAX_INFLATE_RATIO}:1)")
            else:
                raise bad(f"entry {name!r} uses an unsupported compression")
            total += info.file_size
            if total > MAX_ARCHIVE_BYTES:
                raise bad(f"its arrays declare more than {MAX_ARCHIVE_BYTES >> 30} GiB")
            with zf.open(info) as f:
                version = np.lib.format.read_magic(f)
                if version == (1, 0):
                    header = np.lib.format.read_array_header_1_0(f, MAX_NPY_HEADER)
                elif version == (2, 0):
                    header = np.lib.format.read_array_header_2_0(f, MAX_NPY_HEADER)
                else:
                    raise bad(f"entry {name!r} has .npy version {version}")
                shape, _, dtype = header
                if dtype.hasobject:
                    raise bad(f"entry {name!r} holds Python objects (would need pickle)")
                need = f.tell() + math.prod(shape) * dtype.itemsize
            if need != info.file_size:
                raise bad(f"entry {name!r} declares shape {shape} {dtype} ({need} bytes) "
                          f"in an entry of {info.file_size} bytes")
            out[name[:-4]] = (shape, dtype)
    meta = out.get(META_KEY)
    if meta is not None and math.prod(meta[0]) > MAX_META_BYTES:
        raise bad(f"its {META_KEY} declares {math.prod(meta[0])} bytes "
                  f"(at most {MAX_META_BYTES >> 20} MiB)")
    return out


def read_npz(path: Path, what: str, readable: str | None = None) -> dict[str, np.ndarray]:
    """Every array of the .npz at ``path``, read with allow_pickle=False after
    ``declared_arrays`` has sized it; ModelFileError for a missing, special, damaged or
    too large file (``readable``: what the message calls a good one)."""
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):   # a FIFO would block the reader
            raise ModelFileError(f"{path}: not a regular file, so not a {readable or what}")
        declared_arrays(path, what)
        with np.load(path, allow_pickle=False) as npz:
            return {k: npz[k] for k in npz.files}
    except FileNotFoundError:
        raise ModelFileError(f"{path}: no such {what}") from None
    except (zipfile.BadZipFile, zlib.error, ValueError, OSError, EOFError, KeyError,
            RuntimeError, NotImplementedError) as exc:
        raise ModelFileError(f"{path}: not a readable {readable or what} "
                             f"(truncated or corrupted: {exc})") from None


def read_archive(path, default_name: str, fmt: str, version: int | tuple, what: str,
                 newer_ok: bool = False):
    """(meta, arrays) of a bareprop .npz (``path`` or ``path/default_name``), read with
    allow_pickle=False after ``declared_arrays`` has sized it; ModelFileError for
    anything missing, damaged, too large or of another format or version (a newer
    version passes through when ``newer_ok``, for the caller to name it)."""
    path = Path(path)
    if path.is_dir():
        path = path / default_name
    arrays = read_npz(path, what, f"bareprop {what}")
    if META_KEY not in arrays:
        raise ModelFileError(f"{path}: not a bareprop {what} (no {META_KEY} entry)")
    try:
        meta = json.loads(arrays.pop(META_KEY).tobytes().decode())
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise ModelFileError(f"{path}: corrupted {what} metadata ({exc})") from None
    if not isinstance(meta, dict) or meta.get("format") != fmt:
        raise ModelFileError(f"{path}: not a bareprop {what}")
    versions = version if isinstance(version, tuple) else (version,)
    got = meta.get("version")
    newer = isinstance(got, int) and not isinstance(got, bool) and got > max(versions)
    if got not in versions and not (newer and newer_ok):
        readable = " and ".join(str(v) for v in versions)
        raise ModelFileError(f"{path}: {what} format version {got!r} is not "
                             f"supported (this bareprop reads version {readable}); "
                             "upgrade bareprop or re-train")
    return meta, arrays
