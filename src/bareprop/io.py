"""Model files: a versioned ``.npz`` that cannot execute code on load.

Format (``bareprop-model`` version 1, see docs/format.md):
  - one array per parameter/buffer, keyed by its state-dict name (``0.weight`` ...)
  - ``__meta__``: UTF-8 JSON as a uint8 array: format, version, architecture (a
    list of layer specs), dtype, and free-form ``extra`` (scaler, dataset, classes)
Read with ``allow_pickle=False``; written to a temporary file, fsynced, then
renamed, so a model file is always the complete old one or the complete new one.
"""
from __future__ import annotations

import inspect
import io
import json
import os
import zipfile
from pathlib import Path

import numpy as np

from . import core
from .errors import ModelFileError

FORMAT = "bareprop-model"
VERSION = 1
META_KEY = "__meta__"


def layer_spec(layer) -> dict:
    """JSON description of one layer (enough to rebuild it, weights aside)."""
    return {"type": type(layer).__name__, **layer.spec()}


def architecture(model: core.Sequential) -> dict:
    return {"type": "Sequential", "clip_delta": model.clip_delta,
            "layers": [layer_spec(layer) for layer in model.layers]}


def build(arch: dict, dtype=np.float32) -> core.Sequential:
    """Rebuild a Sequential from its architecture dict (weights to be loaded after)."""
    layers = []
    for spec in arch["layers"]:
        spec = dict(spec)
        kind = spec.pop("type")
        cls = core.LAYER_TYPES.get(kind)
        if cls is None:
            raise ModelFileError(f"unknown layer type {kind!r} in model file")
        if kind == "Linear":
            spec.update(init="torch", rng=0, dtype=dtype)  # weights come from the file
        elif "dtype" in inspect.signature(cls).parameters:
            spec["dtype"] = dtype
        layers.append(cls(**spec))
    return core.Sequential(*layers, clip_delta=arch.get("clip_delta"))


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


def save(model: core.Sequential, path, extra: dict | None = None) -> Path:
    """Write ``model`` (architecture + weights + ``extra`` JSON) to ``path`` atomically."""
    meta = {"format": FORMAT, "version": VERSION, "architecture": architecture(model),
            "dtype": str(model.dtype), "extra": extra or {}}
    write_archive(path, meta, model.state_dict())
    return Path(path)


def read_archive(path, default_name: str, fmt: str, version: int, what: str):
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
    if meta.get("version") != version:
        raise ModelFileError(f"{path}: {what} format version {meta.get('version')!r} is not "
                             f"supported (this bareprop reads version {version}); "
                             "upgrade bareprop or re-train")
    return meta, arrays


def load(path, with_meta: bool = False):
    """Rebuild the model saved at ``path`` (a file, or a run folder holding model.npz)."""
    meta, arrays = read_archive(path, "model.npz", FORMAT, VERSION, "model file")
    try:
        model = build(meta["architecture"], np.dtype(meta.get("dtype", "float32")))
        model.load_state_dict(arrays)
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelFileError(f"{path}: weights do not fit the saved architecture ({exc})") from None
    return (model, meta) if with_meta else model
