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
# Bounds on the architecture a file may declare (docs/format.md): checked before any
# layer is built, since building allocates every weight the file claims.
MAX_LAYERS = 1000
MAX_WIDTH = 1 << 20


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


def check_architecture(arch, n_stored: int, path) -> None:
    """Refuse an architecture that is malformed, beyond the bounds, or that declares more
    weights than the ``n_stored`` array elements the file holds: widths are checked
    before ``build`` allocates them."""
    def bad(reason):
        return ModelFileError(f"{path}: refused as a model file: {reason}")

    layers = arch.get("layers") if isinstance(arch, dict) else None
    if not isinstance(layers, list) or not all(isinstance(s, dict) for s in layers):
        raise bad("its architecture has no list of layers")
    if len(layers) > MAX_LAYERS:
        raise bad(f"{len(layers)} layers (at most {MAX_LAYERS})")
    implied = 0
    for i, spec in enumerate(layers):
        for key in ("in_features", "out_features", "num_features"):
            if key not in spec:
                continue
            width = spec[key]
            if isinstance(width, bool) or not isinstance(width, int) or not 1 <= width <= MAX_WIDTH:
                raise bad(f"layer {i} {key} = {width!r} (must be an integer in 1..{MAX_WIDTH})")
        if spec.get("type") == "Linear" and "in_features" in spec and "out_features" in spec:
            implied += spec["in_features"] * spec["out_features"]   # the weight matrix alone
    if implied > n_stored:
        raise bad(f"its architecture declares {implied} weights but the file holds {n_stored}")


def save(model: core.Sequential, path, extra: dict | None = None) -> Path:
    """Write ``model`` (architecture + weights + ``extra`` JSON) to ``path`` atomically."""
    meta = {"format": FORMAT, "version": VERSION, "architecture": architecture(model),
            "dtype": str(model.dtype), "extra": extra or {}}
    write_archive(path, meta, model.state_dict())
    return Path(path)


def load(path, with_meta: bool = False):
    """Rebuild the model saved at ``path`` (a file, or a run folder holding model.npz)."""
    meta, arrays = read_archive(path, "model.npz", FORMAT, VERSION, "model file")
    check_architecture(meta.get("architecture"), sum(a.size for a in arrays.values()), path)
    try:
        model = build(meta["architecture"], np.dtype(meta.get("dtype", "float32")))
        model.load_state_dict(arrays)
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelFileError(f"{path}: weights do not fit the saved architecture ({exc})") from None
    return (model, meta) if with_meta else model
