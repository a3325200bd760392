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

import math
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
MAX_LAYERS = 1000           # layers in all, those of nested Sequentials included
MAX_DEPTH = 16              # Sequentials inside Sequentials (rebuilding recurses)
MAX_WIDTH = 1 << 20         # features and channels of one layer
MAX_WINDOW = 1024           # kernel size, stride and padding, per axis
MAX_VALUES = 1 << 26        # one example's input, and each layer's output, in elements
WIDTHS = ("in_features", "out_features", "num_features", "in_channels", "out_channels")
# spec key -> (least valid value, the words it may be instead of numbers)
WINDOWS = {"kernel_size": (1, ()), "stride": (1, ()), "padding": (0, ("same", "valid"))}


def architecture(model: core.Sequential) -> dict:
    """The model's spec: {"type": "Sequential", "layers": [...], "clip_delta": ...}."""
    return core.layer_spec(model)


def build(arch: dict, dtype=np.float32) -> core.Sequential:
    """Rebuild a model from its architecture (weights to be loaded after)."""
    if not isinstance(arch, dict) or not isinstance(arch.get("layers"), list):
        raise ModelFileError("the architecture is not a Sequential spec")
    return core.build_layer({"type": "Sequential", **arch}, dtype)


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _window(value, least: int, words=()) -> tuple[int, ...] | None:
    """A kernel size, stride or padding as its (h, w) ints, () for one of ``words``
    ("same" padding), or None when it is neither that nor an int or a pair of ints in
    least..MAX_WINDOW."""
    if isinstance(value, str) and value in words:
        return ()
    pair = value if isinstance(value, list) else [value, value]
    if len(pair) == 2 and all(_is_int(v) and least <= v <= MAX_WINDOW for v in pair):
        return tuple(pair)
    return None


def _declared(spec: dict) -> int:
    """Elements of the weight array a layer of ``spec`` allocates when built (the
    built-in layers with weights; 0 for the rest)."""
    kind = spec.get("type")
    if kind == "Linear":
        return spec.get("in_features", 0) * spec.get("out_features", 0)
    if kind == "Conv2d":
        kh, kw = _window(spec.get("kernel_size", 1), 1)
        return spec.get("in_channels", 0) * spec.get("out_channels", 0) * kh * kw
    if kind in ("BatchNorm1d", "BatchNorm2d"):
        return spec.get("num_features", 0)
    return 0


def _layer_specs(layers, bad, prefix="", depth=0):
    """(where, spec) of every layer, those of nested Sequentials after their container
    (where = "2.1" for layer 1 inside layer 2)."""
    if not isinstance(layers, list) or not all(isinstance(s, dict) for s in layers):
        raise bad(f"{'layer ' + prefix[:-1] if prefix else 'its architecture'} has no "
                  "list of layers")
    for i, spec in enumerate(layers):
        yield f"{prefix}{i}", spec
        if spec.get("type") == "Sequential":
            if depth + 1 >= MAX_DEPTH:
                raise bad(f"layer {prefix}{i} nests Sequentials more than {MAX_DEPTH} deep")
            yield from _layer_specs(spec.get("layers"), bad, f"{prefix}{i}.", depth + 1)


def check_architecture(arch, n_stored: int, path) -> None:
    """Refuse an architecture that is malformed, beyond the bounds, or that declares more
    weights than the ``n_stored`` array elements the file holds: widths (features,
    channels) and windows (kernel size, stride, padding) are checked before ``build``
    allocates anything."""
    def bad(reason):
        return ModelFileError(f"{path}: refused as a model file: {reason}")

    implied = 0
    for n, (where, spec) in enumerate(_layer_specs(
            arch.get("layers") if isinstance(arch, dict) else None, bad), start=1):
        if n > MAX_LAYERS:
            raise bad(f"more than {MAX_LAYERS} layers")
        for key in WIDTHS:
            width = spec.get(key, 1)
            if not _is_int(width) or not 1 <= width <= MAX_WIDTH:
                raise bad(f"layer {where} {key} = {width!r} (must be an integer in "
                          f"1..{MAX_WIDTH})")
        for key, (least, words) in WINDOWS.items():
            value = spec.get(key)
            if value is not None and _window(value, least, words) is None:
                also = "".join(f" or {w!r}" for w in words)
                raise bad(f"layer {where} {key} = {value!r} (must be an integer or a pair "
                          f"of integers in {least}..{MAX_WINDOW}{also})")
        implied += _declared(spec)
    if implied > n_stored:
        raise bad(f"its architecture declares {implied} weights but the file holds {n_stored}")


def _per_example(model: core.Sequential, shape: tuple[int, ...], prefix: str = ""):
    """(where, what, elements) for one example's input, each layer's output and each
    Conv2d's scratch arrays (padded input, im2col columns), nested Sequentials included."""
    if not prefix:
        yield "", "its input", math.prod(shape)
    for i, layer in enumerate(model.layers):
        where = f"layer {prefix}{i} ({type(layer).__name__})"
        if isinstance(layer, core.Sequential):
            yield from _per_example(layer, shape, f"{prefix}{i}.")
        elif isinstance(layer, core.Conv2d):
            c, hp, wp, oh, _ = layer.geometry(shape)
            kh, kw = layer.kernel_size
            yield where, "padded input", c * hp * wp
            yield where, "im2col columns", c * kh * kw * oh * wp   # the stride-1 layout's bound
        shape = tuple(layer.output_shape(shape))
        yield where, "output", math.prod(shape)


def check_sizes(model: core.Sequential, path, shape=None) -> None:
    """Refuse a model whose input, a layer's output or a convolution's scratch holds more
    than MAX_VALUES numbers per example: tiny weights with a huge padding, kernel or
    input shape would make one forward pass allocate gigabytes. ``shape``: one example's
    shape (default: the model's recorded input shape; nothing to check without one)."""
    shape = model.input_shape if shape is None else tuple(shape)
    if shape is None:
        return
    for where, what, size in _per_example(model, shape):
        if size > MAX_VALUES:
            raise ModelFileError(f"{path}: refused as a model file: {where + ' ' if where else ''}"
                                 f"{what} of {size:,} values per example (at most "
                                 f"{MAX_VALUES:,})")


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
    except (KeyError, TypeError, ValueError, BarepropError) as exc:
        raise ModelFileError(f"{path}: weights do not fit the saved architecture ({exc})") from None
    check_sizes(model, path)
    try:
        model.load_state_dict(arrays)
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelFileError(f"{path}: weights do not fit the saved architecture ({exc})") from None
    return (model, meta) if with_meta else model
