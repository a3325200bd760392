"""The layer registry: every layer type a model file may name, by name.

A layer rebuilds itself from ``{"type": name, **layer.spec()}`` (Keras'
get_config/from_config): ``spec()`` returns the constructor arguments that matter,
weights aside, and ``build_layer`` calls the constructor with them. A user's own
layer joins with the decorator, and then saves and loads like a built-in:

    @bp.register_layer
    class Scale(bp.Module):
        def __init__(self, k=2.0): self.k = k
        def spec(self): return {"k": self.k}
        ...
"""
from __future__ import annotations

import inspect

import numpy as np

from ..errors import ConfigError, unknown_name

LAYERS: dict[str, type] = {}


def register_layer(cls=None, *, name: str | None = None):
    """Class decorator: make ``cls`` loadable from model files under ``name`` (default:
    the class name). Registering a different class under a taken name is refused."""
    def register(c):
        key = name or c.__name__
        if LAYERS.get(key, c) is not c:
            raise ConfigError(f"layer name {key!r} is already registered to "
                              f"{LAYERS[key].__module__}.{LAYERS[key].__qualname__}; pass name=")
        LAYERS[key] = c
        return c
    return register(cls) if cls is not None else register


def layer_spec(layer) -> dict:
    """JSON description of one layer (enough to rebuild it, weights aside)."""
    kind = next((k for k, c in LAYERS.items() if c is type(layer)), type(layer).__name__)
    return {"type": kind, **layer.spec()}


def build_layer(spec: dict, dtype=np.float32):
    """The layer ``spec`` describes, built with ``dtype`` when its constructor takes one.

    Weights are drawn by the constructor and are to be overwritten by the caller
    (load_state_dict); unknown types and arguments raise ConfigError naming them."""
    spec = dict(spec)
    kind = spec.pop("type", None)
    cls = LAYERS.get(kind)
    if cls is None:
        raise unknown_name("layer type", kind, LAYERS)
    if hasattr(cls, "from_spec"):              # containers rebuild their children
        return cls.from_spec(spec, dtype)
    params = inspect.signature(cls).parameters
    if "dtype" in params:
        spec["dtype"] = dtype
    if "rng" in params:
        spec.setdefault("rng", 0)           # weights come from the file
    try:
        return cls(**spec)
    except TypeError as exc:
        raise ConfigError(f"cannot rebuild layer {kind}: {exc}") from None
