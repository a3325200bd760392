"""``--arch``: any Sequential in one command-line string, built from the layer catalog.

    conv(32,3,padding=1) relu maxpool(2) flatten linear(128) relu dropout(0.5) linear(10)

Each call names a layer as its catalog entry declares it (core/catalog.py: ``arch``), with
the same arguments as its constructor except the input sizes: in_channels, in_features
and num_features are read off the shape flowing into the layer, so a Linear after
Flatten cannot have the wrong width. The grammar itself (tokens, calls, positions) is
grammar.py; the names, their arguments and the ``--arch`` help all come from the
catalog, so a layer declared there is usable here with nothing else to change.

Every error is one ConfigError line with the character position (from 0) and the layer
number (from 1); an unknown name suggests the closest valid one.

Not here: which image shape and class count a dataset has (experiment/checks.py
passes them), or training.
"""
from __future__ import annotations

import inspect
import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from .. import core
from ..core.catalog import MAX_PARAMETERS, REQUIRED, LayerInfo
from ..core.init import get_initializer
from ..errors import ConfigError, closest
from .grammar import Call, parse, tokenize  # noqa: F401 (the grammar's public names)


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _is_pair(v):
    return _is_int(v) or (isinstance(v, tuple) and all(_is_int(x) for x in v))


# argument types: (what to call it in an error, the test)
def _is_number(v):
    """A finite int or float (not a bool): 1e400 is inf, and an int beyond a float's
    range cannot be computed with either."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return False
    try:
        return math.isfinite(v)
    except OverflowError:
        return False


TYPES: dict[str, tuple[str, Callable]] = {
    "int": ("an integer", _is_int),
    "number": ("a finite number", _is_number),
    "bool": ("True or False", lambda v: isinstance(v, bool)),
    "pair": ("an integer or a pair such as (3,5)", _is_pair),
    "stride": ("an integer, a pair or None", lambda v: v is None or _is_pair(v)),
    "padding": ("an integer, a pair, 'same' or 'valid'",
                lambda v: _is_pair(v) or isinstance(v, str)),
    "word": ("a name", lambda v: isinstance(v, str)),
}


@dataclass(frozen=True)
class Kind:
    """A layer name of the grammar: its arguments (catalog Args, in constructor order)
    and the catalog entries it may build (several when the shape decides: batchnorm)."""

    params: tuple
    entries: tuple[LayerInfo, ...]

    @property
    def classes(self) -> tuple[type, ...]:
        return tuple(e.cls for e in self.entries)


def kinds() -> dict[str, Kind]:
    """name -> Kind for every layer the catalog gives an --arch name, now (a user's layer
    registered with an ``arch`` joins too)."""
    out: dict[str, list] = {}
    for entry in core.catalog.entries():
        if entry.arch is not None:
            out.setdefault(entry.arch.name, []).append(entry)
    return {name: Kind(es[0].arch.args, tuple(es)) for name, es in out.items()}


def aliases() -> dict[str, str]:
    """alias -> name, as the catalog declares them (dense -> linear ...)."""
    return {a: e.arch.name for e in core.catalog.entries() if e.arch is not None
            for a in e.arch.aliases}


def __getattr__(name):       # KINDS, ALIASES, NAMES: read live from the catalog
    if name == "KINDS":
        return kinds()
    if name == "ALIASES":
        return aliases()
    if name == "NAMES":
        return sorted([*kinds(), *aliases()])
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def help_text() -> str:
    """The layer names, for ``--arch``'s help."""
    return " ".join(kinds())


class _Context:
    """What every layer of one build shares: the weights' generator, dtype and default
    init, the previous layer (an in-place ReLU is safe only after some), and the count of
    array elements so far against its limits (checked before a layer is allocated: the
    one bound every model shares, core.catalog.MAX_PARAMETERS, and the caller's).
    ``shapes_only``: draw no weights (a model built to check its shapes and sizes)."""

    def __init__(self, seed, dtype, init, max_params, shapes_only: bool = False):
        self.rng = np.random.default_rng(seed)
        self.dtype, self.init, self.shapes_only = np.dtype(dtype), init, shapes_only
        self.limits = ([max_params] if max_params is not None else []) + [
            (MAX_PARAMETERS, "any model bareprop builds")]
        self.params, self.prev = 0, None

    def reserve(self, n: int) -> None:
        self.params += n
        for limit, why in self.limits:
            if self.params > limit:
                raise ConfigError(f"would bring the model to {self.params:,} parameters, "
                                  f"more than {why} ({limit:,}); use fewer or narrower layers")

    def construct(self, entry: LayerInfo, shape, kw: dict):
        """The layer of ``entry`` for inputs of ``shape``: sizes read off the shape, its
        arrays counted against the limits before anything is allocated, then built with
        this build's generator, init and dtype where its constructor takes them."""
        args = {**(entry.arch.sizes(shape) if entry.arch.sizes else {}), **kw}
        self.reserve(entry.param_count(args))
        takes = inspect.signature(entry.cls).parameters
        if "init" in takes:
            args.setdefault("init", self.init)
            if self.shapes_only:            # the name is still checked; nothing is drawn
                get_initializer(args["init"])
                args["init"] = None
        if "rng" in takes:
            args["rng"] = self.rng
        if "dtype" in takes:
            args["dtype"] = self.dtype
        if "inplace" in takes and "inplace" not in args:
            # in place only over a fresh output nobody keeps (a Linear's, a Conv2d's, a
            # batch norm's; not an activation's cached y, not Flatten's view)
            args["inplace"] = bool(getattr(self.prev, "fresh_output", False))
        return entry.cls(**args)


def _entry_for(name: str, kind: Kind, shape) -> LayerInfo:
    """The entry of ``kind`` that takes inputs of ``shape`` (batchnorm: 1d or 2d)."""
    for entry in kind.entries:
        if entry.arch.when is None or entry.arch.when(shape):
            return entry
    takes = " or ".join(e.cls.__name__ for e in kind.entries)
    raise ConfigError(f"{name} ({takes}) cannot take input of shape {tuple(shape)}")


def _arguments(call: Call, params: tuple) -> dict:
    """The call's arguments by parameter name, type-checked; defaults left out so the
    constructor's own apply."""
    names = [p.name for p in params]
    sig = f"{call.name}({', '.join(names)})"
    if (call.args or call.kwargs) and not names:
        raise ConfigError(f"--arch: {call.name} takes no arguments {call.where()}; write "
                          f"{call.name} alone")
    if len(call.args) > len(params):
        value, pos = call.args[len(params)]
        raise ConfigError(f"--arch: {call.name} takes at most {len(params)} positional "
                          f"argument{'s' if len(params) != 1 else ''}, got {len(call.args)}, "
                          f"{call.where(pos)} ({sig})")
    given = {names[i]: a for i, a in enumerate(call.args)}
    for key, (value, pos) in call.kwargs.items():
        if key not in names:
            close = closest(key, names)
            hint = f"; did you mean {close!r}?" if close else ""
            raise ConfigError(f"--arch: {call.name} has no argument {key!r} {call.where(pos)}"
                              f"{hint} ({sig})")
        if key in given:
            raise ConfigError(f"--arch: {call.name} got {key} both by position and as "
                              f"{key}= {call.where(pos)}")
        given[key] = (value, pos)
    for p in params:
        if p.default is REQUIRED and p.name not in given:
            raise ConfigError(f"--arch: {call.name} needs {p.name} {call.where()} ({sig})")
    out = {}
    for p in params:
        if p.name in given:
            value, pos = given[p.name]
            what, ok = TYPES[p.type]
            if not ok(value):
                raise ConfigError(f"--arch: {call.name}'s {p.name} must be {what}, got "
                                  f"{value!r} {call.where(pos)}")
            out[p.key] = value
    return out


def kind_of(call: Call, table: dict[str, Kind] | None = None) -> str:
    """The canonical layer name of a call, or ConfigError suggesting the closest one."""
    table = kinds() if table is None else table
    names = aliases()
    key = call.name.lower()
    key = names.get(key, key)
    if key not in table:
        valid = sorted([*table, *names])
        close = closest(call.name.lower(), valid)
        hint = f"; did you mean {close!r}?" if close else f"; valid: {', '.join(valid)}"
        raise ConfigError(f"--arch: unknown layer {call.name!r} {call.where()}{hint}")
    return key


def build_layers(calls: list[Call], input_shape, ctx: _Context) -> tuple[list, tuple]:
    """The layers ``calls`` name, for examples of ``input_shape``; (layers, output shape)."""
    table = kinds()
    names = [kind_of(c, table) for c in calls]
    args = [_arguments(c, table[k].params) for c, k in zip(calls, names)]
    shape, layers = tuple(input_shape), []
    for call, name, kw in zip(calls, names, args):
        try:
            layer = ctx.construct(_entry_for(name, table[name], shape), shape, kw)
            shape = tuple(layer.output_shape(shape))
        except ConfigError as exc:
            raise ConfigError(f"--arch: {call.text} {call.where()}: {exc}") from None
        layers.append(layer)
        ctx.prev = layer
    return layers, shape


def build(text: str, input_shape, *, n_classes: int | None = None, dataset: str = "the data",
          seed: int = 0, dtype=np.float32, init="torch", clip_delta=None,
          max_params: tuple[int, str] | None = None,
          shapes_only: bool = False) -> core.Sequential:
    """The Sequential ``text`` describes, for examples of ``input_shape`` (e.g. (1, 28, 28)).

    Weights are drawn in layer order from ``default_rng(seed)`` with ``init`` unless a
    layer names its own. With ``n_classes``, the output must be (n_classes,). With
    ``max_params`` = (limit, why), a layer that would take the count past ``limit`` (or
    past core.catalog.MAX_PARAMETERS) is refused before its weights are allocated; with
    ``shapes_only`` no weights are drawn at all (a model built to be checked). Every
    refusal is one ConfigError line naming the layer as typed and its position.

    >>> build("conv(4,3) relu flatten linear(10)", (1, 8, 8)).output_shape()
    (10,)
    """
    calls = parse(text)
    table = kinds()
    if [kind_of(c, table) for c in calls][-1] == "softmax":
        raise ConfigError(f"--arch ends in softmax {calls[-1].where()}, but the loss takes "
                          "logits (CrossEntropyLoss applies the softmax itself): drop it")
    layers, shape = build_layers(calls, input_shape,
                                 _Context(seed, dtype, init, max_params, shapes_only))
    if n_classes is not None and shape != (n_classes,):
        ends = f"{shape[0]} outputs" if len(shape) == 1 else f"outputs of shape {shape}"
        fix = f"linear({n_classes})" if len(shape) == 1 else f"flatten linear({n_classes})"
        raise ConfigError(f"--arch ends in {ends} but {dataset} has {n_classes} classes: "
                          f"end with {fix}")
    return core.Sequential(*layers, clip_delta=clip_delta, input_shape=tuple(input_shape))


# -- what kind of network a string builds (labels in the web app) ------------------------
#: the families of --arch names, most telling first: a model is labelled by the first
#: family any of its layers belongs to
FAMILIES = (("transformer", ("mha", "transformer", "patches")), ("rnn", ("rnn", "lstm", "gru")),
            ("cnn", ("conv",)))


def family(text) -> str | None:
    """"transformer", "rnn", "cnn" or "mlp" for an --arch string (None: no arch, the
    MLP of --hidden, is "mlp" too); None for a string that does not parse (it comes from
    a run folder: never trusted)."""
    if not isinstance(text, str):
        return "mlp" if text is None else None
    try:
        names = {kind_of(c) for c in parse(text)}
    except ConfigError:
        return None
    return next((kind for kind, members in FAMILIES if names & set(members)), "mlp")


# -- the MLP's --activation: any activation the catalog names -------------------------------
#: names --activation took before it read the catalog, as the calls they stand for
_OLD_ACTIVATIONS = {"gelu_tanh": "gelu(approximate='tanh')"}


def activation_names() -> list[str]:
    """What ``--activation`` accepts: the --arch name of every activation in the catalog
    (core.activations.Activation), with their aliases and gelu_tanh."""
    acts = {name for name, kind in kinds().items()
            if all(issubclass(c, core.activations.Activation) for c in kind.classes)}
    return sorted([*acts, *(a for a, n in aliases().items() if n in acts), *_OLD_ACTIVATIONS])


def activation(name: str, prev=None):
    """The activation layer ``--activation name`` stands for (in place after a layer with
    a fresh output, ``prev``); ConfigError suggesting the closest name."""
    if name not in activation_names():
        from ..errors import unknown_name

        raise unknown_name("activation", name, activation_names())
    ctx = _Context(0, np.float32, "torch", None)
    ctx.prev = prev
    layers, _ = build_layers(parse(_OLD_ACTIVATIONS.get(name, name)), (1,), ctx)
    return layers[0]


# -- back to a string -------------------------------------------------------------------

def _fmt(value) -> str:
    if isinstance(value, (list, tuple)):
        a, b = value
        return str(a) if a == b else f"({a},{b})"
    if isinstance(value, str):
        return repr(value)
    return repr(value) if isinstance(value, float) else str(value)


def format_arch(model: core.Sequential) -> str:
    """The arch string that rebuilds ``model``'s layers (weights and inits aside): the
    inverse of ``build``. ConfigError for a layer the grammar cannot name."""
    parts = []
    for i, layer in enumerate(model.layers):
        entry = core.info(layer)
        if entry is None or entry.arch is None:
            raise ConfigError(f"layer {i} ({type(layer).__name__}) has no --arch name")
        spec, args, skipped = layer.spec(), [], False
        for p in entry.arch.args:
            value = spec.get(p.key, p.default)
            if (_fmt(value) == _fmt(p.default)
                    or (p.type == "stride" and value == spec["kernel_size"])):  # pool default
                skipped = True                  # later arguments go by keyword
            elif p.default is REQUIRED or not skipped:
                args.append(_fmt(value))
            else:
                args.append(f"{p.name}={_fmt(value)}")
        parts.append(f"{entry.arch.name}({','.join(args)})" if args else entry.arch.name)
    return " ".join(parts)


def activation_sizes(model: core.Sequential) -> list[int]:
    """Values per example of the input and of every layer's output."""
    return [math.prod(model.input_shape), *(math.prod(s.out_shape) for s in core.walk(model))]
