"""Model files: a versioned ``.npz`` that cannot execute code on load.

Format ``bareprop-model`` version 2 (docs/format.md):
  - one array per parameter/buffer, keyed by its state-dict name (``1.weight`` ...)
  - ``__meta__``: UTF-8 JSON: format, version, architecture (the model's layer spec,
    rebuilt through the layer registry), dtype, input_shape (one example, e.g.
    [28, 28]), classes, scaling (how raw uint8 inputs become the model's inputs) and
    free-form ``extra``.
Version 1 files (input shape, classes and scaling kept in ``extra``) still load.
Read with ``allow_pickle=False``; written atomically by archive.atomic_write.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from . import core
from .archive import atomic_write, read_archive, write_archive  # noqa: F401 (re-exported)
from .errors import BarepropError, ModelFileError

FORMAT = "bareprop-model"
VERSION = 2
READABLE = (1, 2)
# Bounds on the architecture a file may declare (docs/format.md): checked before any
# layer is built, since building allocates every weight the file claims.
MAX_LAYERS = 1000
MAX_WIDTH = 1 << 20


def architecture(model: core.Sequential) -> dict:
    """The model's spec: {"type": "Sequential", "layers": [...], "clip_delta": ...}."""
    return core.layer_spec(model)


def build(arch: dict, dtype=np.float32) -> core.Sequential:
    """Rebuild a model from its architecture (weights to be loaded after)."""
    if not isinstance(arch, dict) or not isinstance(arch.get("layers"), list):
        raise ModelFileError("the architecture is not a Sequential spec")
    return core.build_layer({"type": "Sequential", **arch}, dtype)


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


def save(model: core.Sequential, path, *, input_shape=None, classes=None, scaling=None,
         extra: dict | None = None) -> Path:
    """Write ``model`` and what inference needs beside it to ``path`` atomically.

    input_shape: one example's shape (default: the model's built input shape);
    classes: class names in output order; scaling: a ``Scaler.to_dict()`` (how raw
    uint8 pixels map to the model's inputs), or None when inputs are used as given.
    """
    if input_shape is None:
        input_shape = getattr(model, "input_shape", None)
    meta = {"format": FORMAT, "version": VERSION, "architecture": architecture(model),
            "dtype": str(model.dtype),
            "input_shape": list(input_shape) if input_shape is not None else None,
            "classes": list(classes) if classes is not None else None,
            "scaling": scaling, "extra": extra or {}}
    write_archive(path, meta, model.state_dict())
    return Path(path)


def _upgrade(meta: dict) -> dict:
    """A version 1 meta in version 2's shape (its inference facts lived in ``extra``)."""
    if meta.get("version") == 1:
        extra = meta.get("extra") or {}
        meta = {**meta, "input_shape": extra.get("input_shape"), "classes": extra.get("classes"),
                "scaling": extra.get("scaler")}
    return meta


def load(path, with_meta: bool = False):
    """Rebuild the model saved at ``path`` (a file, or a run folder holding model.npz).

    With ``with_meta``, returns (model, meta) where meta has the version 2 keys
    (input_shape, classes, scaling, extra) whatever the file's version."""
    meta, arrays = read_archive(path, "model.npz", FORMAT, READABLE, "model file")
    meta = _upgrade(meta)
    check_architecture(meta.get("architecture"), sum(a.size for a in arrays.values()), path)
    try:
        model = build(meta["architecture"], np.dtype(meta.get("dtype", "float32")))
        if meta.get("input_shape") and model.input_shape is None:
            model.build(tuple(meta["input_shape"]))
        model.load_state_dict(arrays)
    except (KeyError, TypeError, ValueError, BarepropError) as exc:
        raise ModelFileError(f"{path}: weights do not fit the saved architecture ({exc})") from None
    return (model, meta) if with_meta else model
