"""Model files: a versioned ``.npz`` that cannot execute code on load.

Format ``bareprop-model`` version 2 (docs/format.md):
  - one array per parameter/buffer, keyed by its state-dict name (``1.weight`` ...)
  - ``__meta__``: UTF-8 JSON: format, version, architecture (the model's layer spec,
    rebuilt through the layer catalog, core/catalog.py), dtype, input_shape (one example, e.g.
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
from .errors import BarepropError, ConfigError, ModelFileError, closest
from .runs.layout import MODEL

FORMAT = "bareprop-model"
VERSION = 2
READABLE = (1, 2)
# Bounds on the architecture a file may declare (docs/format.md): checked before any
# layer is built, since building allocates every weight the file claims.
MAX_LAYERS = 1000           # layers in all, those of nested Sequentials included
MAX_DEPTH = 16              # Sequentials inside Sequentials (rebuilding recurses)
MAX_WIDTH = 1 << 20         # any integer a layer's spec holds (features, channels, units)
MAX_WINDOW = 1024           # kernel size, stride and padding, per axis
MAX_VALUES = 1 << 26        # one example's input, and each layer's output, in elements
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
    """Elements of the weight arrays a layer of ``spec`` allocates when built, as its
    catalog entry declares them (ConfigError for sizes that are not sane integers; 0
    for a layer that declares none)."""
    entry = core.catalog.info(core.LAYERS.get(spec.get("type"), object))
    return entry.param_count(spec) if entry is not None else 0


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


def _unknown_type(kind, where: str, path) -> ModelFileError:
    """The one line for a layer type this session has not registered: a typo of a
    built-in's name, or a user's own layer whose module was not imported (or whose class
    was never decorated)."""
    close = closest(kind, core.LAYERS) if isinstance(kind, str) else None
    hint = f" Did you mean {close!r}?" if close else ""
    return ModelFileError(
        f"{path}: layer {where}: unknown layer type {kind!r}.{hint} If it is a layer of "
        "your own, decorate its class with @bp.register_layer and import the module that "
        "defines it before loading")


def check_architecture(arch, n_stored: int, path) -> None:
    """Refuse an architecture that is malformed, beyond the bounds, names a layer type
    this session does not know, or declares more weights than the ``n_stored`` array
    elements the file holds: the sizes each layer's catalog entry reads (features,
    channels) and the windows (kernel size, stride, padding) are checked before
    ``build`` allocates anything."""
    def bad(reason):
        return ModelFileError(f"{path}: refused as a model file: {reason}")

    implied = 0
    for n, (where, spec) in enumerate(_layer_specs(
            arch.get("layers") if isinstance(arch, dict) else None, bad), start=1):
        if n > MAX_LAYERS:
            raise bad(f"more than {MAX_LAYERS} layers")
        kind = spec.get("type")
        if not isinstance(kind, str) or kind not in core.LAYERS:
            raise _unknown_type(kind, where, path)
        for key, value in spec.items():        # sizes: whatever a layer calls them
            if _is_int(value) and value > MAX_WIDTH:
                raise bad(f"layer {where} {key} = {value!r} (must be an integer in "
                          f"1..{MAX_WIDTH})")
        for key, (least, words) in WINDOWS.items():
            value = spec.get(key)
            if value is not None and _window(value, least, words) is None:
                also = "".join(f" or {w!r}" for w in words)
                raise bad(f"layer {where} {key} = {value!r} (must be an integer or a pair "
                          f"of integers in {least}..{MAX_WINDOW}{also})")
        try:
            implied += _declared(spec)
        except ConfigError as exc:
            raise bad(f"layer {where} {exc}") from None
    if implied > core.catalog.MAX_PARAMETERS:
        raise bad(f"its architecture declares {implied} weights, more than any model "
                  f"bareprop builds ({core.catalog.MAX_PARAMETERS})")
    if implied > n_stored:
        raise bad(f"its architecture declares {implied} weights but the file holds {n_stored}")


def per_example(model: core.Module, shape: tuple[int, ...]):
    """(where, what, elements) for one example's input, each layer's scratch arrays (a
    layer's ``scratch(in_shape)``: Conv2d's padded input and im2col columns ...) and each
    layer's output, nested Sequentials included."""
    yield "", "its input", math.prod(shape)
    for step in core.walk(model, shape):
        where = f"layer {step.where} ({type(step.layer).__name__})"
        scratch = getattr(step.layer, "scratch", None)
        for what, size in (scratch(step.in_shape) if scratch is not None else {}).items():
            yield where, what, size
        yield where, "output", math.prod(step.out_shape)


def check_sizes(model: core.Sequential, path, shape=None) -> None:
    """Refuse a model whose input, a layer's output or a convolution's scratch holds more
    than MAX_VALUES numbers per example: tiny weights with a huge padding, kernel or
    input shape would make one forward pass allocate gigabytes. ``shape``: one example's
    shape (default: the model's recorded input shape; nothing to check without one)."""
    shape = model.input_shape if shape is None else tuple(shape)
    if shape is None:
        return
    for where, what, size in per_example(model, shape):
        if size > MAX_VALUES:
            raise ModelFileError(f"{path}: refused as a model file: {where + ' ' if where else ''}"
                                 f"{what} of {size:,} values per example (at most "
                                 f"{MAX_VALUES:,})")


def n_outputs(model, input_shape=None) -> int | None:
    """The number of outputs (classes) of a model whose output is flat (K,), for one
    example of ``input_shape`` (default: the model's recorded one); None without a shape
    or when the output is not flat."""
    if not hasattr(model, "output_shape"):
        return None
    out = model.output_shape(tuple(input_shape) if input_shape is not None else None)
    return out[0] if out is not None and len(out) == 1 else None


def class_names(classes, n_out: int | None) -> list[str] | None:
    """``classes`` as the list of strings a model file records: one name per output
    (``n_out``; not checked when None). None stays None; ConfigError naming what is
    wrong otherwise (a number, names that are not strings, too few or too many)."""
    if classes is None:
        return None
    if isinstance(classes, np.ndarray) and classes.ndim == 1:
        classes = classes.tolist()
    if isinstance(classes, (str, bytes)) or not isinstance(classes, (list, tuple)):
        raise ConfigError(f"classes must be a list of class names (strings), one per "
                          f"output, got {type(classes).__name__} {_short(classes)}")
    odd = [i for i, c in enumerate(classes) if not isinstance(c, str)][:1]
    if odd:
        raise ConfigError(f"classes must be a list of class names (strings), one per "
                          f"output; item {odd[0]} is {_short(classes[odd[0]])}, not a string "
                          "(give [str(c) for c in classes])")
    if n_out is not None and len(classes) != n_out:
        raise ConfigError(f"classes has {len(classes)} names but the model has {n_out} "
                          "outputs; give one name per output")
    return list(classes)


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _unregistered(model: core.Module) -> None:
    """ConfigError naming the first layer whose class is not in the layer catalog: a
    file holding it could be written but never loaded (nothing could rebuild it)."""
    for step in core.walk(model):
        if core.catalog.info(step.layer) is None:
            name = type(step.layer).__name__
            raise ConfigError(
                f"cannot save layer {step.where or 0} ({name}): its class is not registered, "
                f"so bp.load could not rebuild it; decorate the class with "
                f"@bp.register_layer (and import it before bp.load)")


def save(model: core.Sequential, path, *, input_shape=None, classes=None, scaling=None,
         extra: dict | None = None) -> Path:
    """Write ``model`` and what inference needs beside it to ``path`` atomically.

    input_shape: one example's shape (default: the model's built input shape);
    classes: class names (strings) in output order, one per output; scaling: a
    ``Scaler.to_dict()`` (how raw uint8 pixels map to the model's inputs), or None when
    inputs are used as given. A layer of your own must be registered
    (``@bp.register_layer``), or the file could not be loaded: ConfigError here.
    """
    if input_shape is None:
        input_shape = getattr(model, "input_shape", None)
    _unregistered(model)
    meta = {"format": FORMAT, "version": VERSION, "architecture": architecture(model),
            "dtype": str(model.dtype),
            "input_shape": list(input_shape) if input_shape is not None else None,
            "classes": class_names(classes, n_outputs(model, input_shape)),
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
    meta, arrays = read_archive(path, MODEL, FORMAT, READABLE, "model file")
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
        meta["classes"] = class_names(meta.get("classes"), n_outputs(model))
    except ConfigError as exc:
        raise ModelFileError(f"{path}: refused as a model file: {exc}") from None
    try:
        model.load_state_dict(arrays)
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelFileError(f"{path}: weights do not fit the saved architecture ({exc})") from None
    return (model, meta) if with_meta else model
