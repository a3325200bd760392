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
from pathlib import Path

import numpy as np

from . import core
from .archive import atomic_write, read_archive, write_archive  # noqa: F401 (re-exported)
from .errors import ModelFileError

FORMAT = "bareprop-model"
VERSION = 1


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


def save(model: core.Sequential, path, extra: dict | None = None) -> Path:
    """Write ``model`` (architecture + weights + ``extra`` JSON) to ``path`` atomically."""
    meta = {"format": FORMAT, "version": VERSION, "architecture": architecture(model),
            "dtype": str(model.dtype), "extra": extra or {}}
    write_archive(path, meta, model.state_dict())
    return Path(path)


def load(path, with_meta: bool = False):
    """Rebuild the model saved at ``path`` (a file, or a run folder holding model.npz)."""
    meta, arrays = read_archive(path, "model.npz", FORMAT, VERSION, "model file")
    try:
        model = build(meta["architecture"], np.dtype(meta.get("dtype", "float32")))
        model.load_state_dict(arrays)
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelFileError(f"{path}: weights do not fit the saved architecture ({exc})") from None
    return (model, meta) if with_meta else model
