"""The layer catalog: every layer type, declared once, next to its class.

A layer states with ``@register_layer(...)`` everything the rest of bareprop needs to
know about it, and nothing else keeps a list of layers:

    @register_layer(
        arch=Arch("linear", Arg("out_features", "int"), Arg("bias", "bool", True),
                  sizes=lambda shape: {"in_features": flat_features(shape)}),
        params=lambda s: {"weight": (s["out_features"], s["in_features"]), ...},
        onnx=lambda g, m, x: g.node("Gemm", [x, *g.params("weight", "bias")], transB=1),
        torch=lambda t, m: t.nn.Linear(m.in_features, m.out_features, bias=...),
        keras=lambda k, m, shape: [k.layers.Dense(m.out_features, use_bias=...)])
    class Linear(Module): ...

* ``name`` (default: the class name): the layer's type in model files. A layer rebuilds
  itself from ``{"type": name, **layer.spec()}`` (Keras' get_config/from_config):
  ``spec()`` returns the constructor arguments that matter, weights aside.
* ``arch``: its name and arguments in the ``--arch`` grammar (experiment/arch.py), and
  the constructor arguments read off the incoming shape (``in_features``...).
* ``params``: spec -> {state-dict name: shape} of every array the constructor allocates
  (parameters and buffers). Model files are checked against it before a layer is built,
  and the memory estimate and the parameter bounds are derived from it; it is called on
  untrusted specs, so it reads sizes through ``width`` (a ConfigError for anything that is
  not a sane positive integer).
* ``onnx``: ``(g, layer, x) -> output`` appends the layer's ONNX nodes on tensor ``x``
  through the exporter's per-layer builder ``g`` (interop/onnx_export.py); None: no
  standard operator computes it (export refuses it, naming it).
* ``torch``: ``(t, layer) -> torch.nn.Module`` its PyTorch twin, built from the namespace
  ``t`` (``t.nn``, ``t.replay(layer)``: reference/torch_twin.py); the weights are copied
  by ``load_state_dict`` afterwards, which proves the names and layouts are PyTorch's.
* ``keras``: ``(k, layer, in_shape) -> [keras layers]`` its Keras twin, channels last
  (reference/keras_twin.py); its weights are the state dict's arrays in order, kernels
  transposed (interop/keras_layout.py).
* ``torch_extra``: ``layer -> {name: array}`` what PyTorch's state_dict holds beyond
  bareprop's (BatchNorm's ``num_batches_tracked``).
* ``shows_output``: False for layers whose output the look inside the network skips
  (their values equal their input's at inference: Flatten, Dropout).

The mappings receive their framework from the caller, so this package stays NumPy-only.
A user's own layer joins with the plain decorator and then saves and loads like a
built-in (with no --arch name, ONNX operator or twin unless it declares them):

    @bp.register_layer
    class Scale(bp.Module):
        def __init__(self, k=2.0): self.k = k
        def spec(self): return {"k": self.k}
        ...
"""
from __future__ import annotations

import inspect
import math
import numbers
from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..errors import ConfigError, unknown_name

REQUIRED = object()      # an --arch argument without a default
#: the most array elements (weights, biases, statistics) a model built from untrusted
#: settings or files may hold: --arch and --hidden (CLI and web form), checkpoints and
#: model files share this one bound, checked from the declared shapes before anything
#: is allocated. 2^27: 512 MiB of float32 weights, ~70x the largest preset (best-mlp).
MAX_PARAMETERS = 1 << 27


@dataclass(frozen=True)
class Arg:
    """One ``--arch`` argument: its name, its type (a key of experiment/arch.py's TYPES:
    int, number, bool, pair, stride, padding, word), its default (REQUIRED: none) and the
    constructor parameter it sets (``param``; default: the same name), so a short
    spelling may stand for PyTorch's (``lstm(128, layers=2)`` sets ``num_layers``)."""

    name: str
    type: str
    default: object = REQUIRED
    param: str | None = None

    @property
    def key(self) -> str:
        """The constructor parameter (and spec key) this argument sets."""
        return self.param or self.name


@dataclass(frozen=True)
class Arch:
    """How the ``--arch`` grammar names a layer.

    sizes: in_shape -> the constructor arguments read off the shape flowing in (e.g.
        ``{"in_features": 784}``); raises ConfigError when the layer cannot take it.
    when: in_shape -> bool, for names that build one of several classes by shape
        (``batchnorm``: BatchNorm1d for (D,), BatchNorm2d for (C, H, W)).
    """

    name: str
    args: tuple[Arg, ...] = ()
    aliases: tuple[str, ...] = ()
    sizes: Callable | None = None
    when: Callable | None = None

    def __init__(self, name, *args, aliases=(), sizes=None, when=None):
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "args", tuple(args))
        object.__setattr__(self, "aliases", tuple(aliases))
        object.__setattr__(self, "sizes", sizes)
        object.__setattr__(self, "when", when)


@dataclass(frozen=True)
class LayerInfo:
    """Everything bareprop knows about one layer class (see the module docstring)."""

    cls: type
    name: str
    arch: Arch | None = None
    params: Callable | None = None
    onnx: Callable | None = None
    torch: Callable | None = None
    keras: Callable | None = None
    torch_extra: Callable | None = None
    shows_output: bool = True
    public: bool = False

    def param_shapes(self, spec: dict) -> dict[str, tuple[int, ...]]:
        """{state-dict name: shape} of the arrays a layer of ``spec`` allocates ({} for a
        layer that declares none); ConfigError for sizes that are not sane integers."""
        return dict(self.params(spec)) if self.params is not None else {}

    def param_count(self, spec: dict) -> int:
        """Elements of every array a layer of ``spec`` allocates."""
        return sum(math.prod(shape) for shape in self.param_shapes(spec).values())


#: model-file type name -> class, every layer that may be saved and loaded
LAYERS: dict[str, type] = {}
_INFO: dict[type, LayerInfo] = {}


def register_layer(cls=None, *, name: str | None = None, **declared):
    """Class decorator: make ``cls`` loadable from model files under ``name`` (default:
    the class name), with the declarations of the module docstring. Registering a
    different class under a taken name is refused."""
    def register(c):
        key = name or c.__name__
        if LAYERS.get(key, c) is not c:
            raise ConfigError(f"layer name {key!r} is already registered to "
                              f"{LAYERS[key].__module__}.{LAYERS[key].__qualname__}; pass name=")
        public = c.__module__.startswith(__name__.rsplit(".", 1)[0] + ".")
        LAYERS[key] = c
        _INFO[c] = LayerInfo(c, key, public=public and not key.startswith("_"), **declared)
        return c
    return register(cls) if cls is not None else register


def info(layer_or_cls) -> LayerInfo | None:
    """The catalog entry of a layer (or layer class), None for an unregistered one."""
    cls = layer_or_cls if isinstance(layer_or_cls, type) else type(layer_or_cls)
    return _INFO.get(cls)


def entries() -> list[LayerInfo]:
    """Every registered layer's entry, in registration order."""
    return list(_INFO.values())


def public_layers() -> dict[str, type]:
    """The layer classes bareprop itself defines, by class name: ``bp.Linear`` ..."""
    return {i.cls.__name__: i.cls for i in _INFO.values() if i.public}


def layer_spec(layer) -> dict:
    """JSON description of one layer (enough to rebuild it, weights aside)."""
    entry = info(layer)
    return {"type": entry.name if entry else type(layer).__name__, **layer.spec()}


def build_layer(spec: dict, dtype=np.float32):
    """The layer ``spec`` describes, built with ``dtype`` when its constructor takes one.

    The weights are the caller's to load (load_state_dict): a built-in layer draws none
    (``init=None``; its ``init`` then reads as its constructor's default, as files do not
    record it). Unknown types and arguments raise ConfigError naming them."""
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
        spec.setdefault("rng", 0)
    skip_init = "init" in params and _INFO[cls].public
    if skip_init:
        spec["init"] = None                 # weights come from the file: none drawn
    try:
        layer = cls(**spec)
    except TypeError as exc:
        raise ConfigError(f"cannot rebuild layer {kind}: {exc}") from None
    if skip_init:
        layer.init = params["init"].default
    return layer


# -- helpers for the declarations ---------------------------------------------------------
def width(spec: dict, key: str, default=REQUIRED) -> int:
    """``spec[key]`` as a size (features, channels, units): a positive integer, or a
    ConfigError naming it (specs come from model files too; how large a size may be is
    the caller's bound: a parameter budget, a model file's MAX_WIDTH)."""
    value = spec.get(key, default)
    if value is REQUIRED or isinstance(value, bool) or not isinstance(value, numbers.Integral) \
            or value < 1:
        raise ConfigError(f"{key} must be a positive integer, got "
                          f"{'nothing' if value is REQUIRED else repr(value)}")
    return int(value)


def with_bias(spec: dict, shapes: dict, out: int) -> dict:
    """``shapes`` plus ``bias: (out,)`` when the spec keeps a bias (the default)."""
    return {**shapes, "bias": (out,)} if spec.get("bias", True) else shapes


def flat_features(shape) -> int:
    """The width of a flat (D,) input, or ConfigError saying to flatten first."""
    if len(shape) != 1:
        raise ConfigError(f"this layer takes flat features (D,) but its input has shape "
                          f"{tuple(shape)}; put flatten (or gap) before it")
    return shape[0]

