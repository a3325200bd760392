"""Archives and the one file writer: every file bareprop writes goes through here.

``atomic_write`` writes to a temporary file, fsyncs, then renames, so a reader sees
the complete old file or the complete new one. ``write_archive``/``read_archive``
are the ``.npz`` container of model files and checkpoints: arrays plus a JSON
``__meta__``, read with allow_pickle=False so a file can never run code.
"""
from __future__ import annotations

import io
import json
import os
import zipfile
from pathlib import Path

import numpy as np

from .errors import ModelFileError

META_KEY = "__meta__"


def atomic_write(path: Path, data: bytes) -> None:
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        raise ModelFileError(f"cannot write {path}: {exc.strerror or exc}; the previous file, "
                             "if any, is unchanged") from None
    finally:
        if tmp.exists():
            tmp.unlink()


def write_archive(path, meta: dict, arrays: dict[str, np.ndarray]) -> None:
    """Write ``arrays`` plus ``meta`` (JSON under __meta__) as one .npz, atomically."""
    arrays = {**arrays, META_KEY: np.frombuffer(json.dumps(meta).encode(), np.uint8)}
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    atomic_write(Path(path), buf.getvalue())


def read_archive(path, default_name: str, fmt: str, version: int | tuple, what: str):
    """(meta, arrays) of a bareprop .npz (``path`` or ``path/default_name``), read with
    allow_pickle=False; ModelFileError for anything missing, damaged or of another
    format or version."""
    path = Path(path)
    if path.is_dir():
        path = path / default_name
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except FileNotFoundError:
        raise ModelFileError(f"{path}: no such {what}") from None
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError) as exc:
        raise ModelFileError(f"{path}: not a readable bareprop {what} "
                             f"(truncated or corrupted: {exc})") from None
    if META_KEY not in arrays:
        raise ModelFileError(f"{path}: not a bareprop {what} (no {META_KEY} entry)")
    try:
        meta = json.loads(arrays.pop(META_KEY).tobytes().decode())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelFileError(f"{path}: corrupted {what} metadata ({exc})") from None
    if not isinstance(meta, dict) or meta.get("format") != fmt:
        raise ModelFileError(f"{path}: not a bareprop {what}")
    versions = version if isinstance(version, tuple) else (version,)
    if meta.get("version") not in versions:
        readable = " and ".join(str(v) for v in versions)
        raise ModelFileError(f"{path}: {what} format version {meta.get('version')!r} is not "
                             f"supported (this bareprop reads version {readable}); "
                             "upgrade bareprop or re-train")
    return meta, arrays
