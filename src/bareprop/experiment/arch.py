"""``--arch``: any Sequential in one command-line string, parsed without eval.

    conv(32,3,padding=1) relu maxpool(2) flatten linear(128) relu dropout(0.5) linear(10)

One whitespace-separated call per layer, named as its constructor (lowercase) with the
same arguments, except the input sizes: in_channels, in_features and num_features are
read off the shape flowing into the layer, so a Linear after Flatten cannot have the
wrong width. Grammar:

    arch  := call+
    call  := NAME [ "(" [ arg ("," arg)* [","] ] ")" ]
    arg   := [ NAME "=" ] value
    value := NUMBER | True | False | None | WORD | 'text' | "text" | "(" NUMBER "," NUMBER ")"

A tokenizer and a recursive-descent parser written here: the string is data, never
code (no eval, no ast.literal_eval). Every error is one ConfigError line with the
character position (from 0) and the layer number (from 1); an unknown name suggests
the closest valid one.

Not here: which image shape and class count a dataset has (experiment/config.py
passes them), or training.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from .. import core
from ..core.conv import as_pair, check_image_shape
from ..errors import ConfigError, closest

# -- tokens ---------------------------------------------------------------------------

_TOKEN = re.compile(r"""
    (?P<space>\s+)
  | (?P<number>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<string>'[^']*'|"[^"]*")
  | (?P<punct>[(),=])
""", re.VERBOSE)
_WORDS = {"True": True, "False": False, "None": None}


@dataclass(frozen=True)
class Token:
    kind: str        # number, name, string, punct, end
    text: str
    pos: int         # character offset in the arch string


def tokenize(text: str) -> list[Token]:
    """The tokens of ``text``, whitespace dropped, ending with an ``end`` token."""
    tokens, pos = [], 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            ch = text[pos]
            what = ("an unterminated string" if ch in "'\"" else f"unexpected character {ch!r}")
            raise ConfigError(f"--arch: {what} at character {pos}")
        if m.lastgroup != "space":
            tokens.append(Token(m.lastgroup, m.group(), pos))
        pos = m.end()
    tokens.append(Token("end", "", len(text)))
    return tokens


# -- parse ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Call:
    """One layer as written: ``name(args, key=value)``, with where it stands."""

    name: str
    index: int                   # 1-based layer number
    start: int                   # character span in the arch string
    end: int
    args: tuple = ()             # ((value, pos), ...)
    kwargs: dict = field(default_factory=dict)   # key -> (value, pos of "key=")
    text: str = ""               # the call as typed, e.g. "conv(32,3,padding=1)"

    def where(self, pos: int | None = None) -> str:
        return f"at character {self.start if pos is None else pos} (layer {self.index})"


class _Parser:
    def __init__(self, text: str):
        self.text, self.tokens, self.i = text, tokenize(text), 0

    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def take(self) -> Token:
        t = self.tokens[self.i]
        self.i += t.kind != "end"           # the end token is never passed
        return t

    def fail(self, t: Token, wanted: str, layer: int) -> ConfigError:
        got = "the end of the string" if t.kind == "end" else repr(t.text)
        return ConfigError(f"--arch: expected {wanted}, got {got} at character {t.pos} "
                           f"(layer {layer})")

    def calls(self) -> list[Call]:
        calls = []
        while self.tok.kind != "end":
            calls.append(self.call(len(calls) + 1))
        return calls

    def call(self, index: int) -> Call:
        t = self.take()
        if t.kind != "name":
            raise self.fail(t, "a layer name such as conv, linear or relu", index)
        args, kwargs = [], {}
        if self.tok.text == "(":
            self.take()
            while self.tok.text != ")":
                key = None
                if self.tok.kind == "name" and self.tokens[self.i + 1].text == "=":
                    key = self.take()
                    self.take()
                    if key.text in kwargs:
                        raise ConfigError(f"--arch: {t.text} got {key.text}= twice at "
                                          f"character {key.pos} (layer {index})")
                elif kwargs:
                    raise ConfigError(f"--arch: a positional argument after keyword arguments "
                                      f"at character {self.tok.pos} (layer {index})")
                pos = self.tok.pos if key is None else key.pos    # where the argument starts
                value = self.value(index)
                if key is None:
                    args.append((value, pos))
                else:
                    kwargs[key.text] = (value, pos)
                if self.tok.text == ",":
                    self.take()
                elif self.tok.text != ")":
                    raise self.fail(self.tok, "',' or ')'", index)
            self.take()
        end = self.tokens[self.i - 1]
        stop = end.pos + len(end.text)
        return Call(t.text, index, t.pos, stop, tuple(args), kwargs, self.text[t.pos:stop])

    def value(self, index: int):
        t = self.take()
        if t.kind == "number":
            return _number(t)
        if t.kind == "string":
            return t.text[1:-1]
        if t.kind == "name":
            return _WORDS.get(t.text, t.text)
        if t.text == "(":                                   # a pair: (3, 5)
            first = self.take()
            comma = self.take()
            second = self.take()
            close = self.take()
            if not (first.kind == second.kind == "number" and comma.text == ","
                    and close.text == ")"):
                raise ConfigError(f"--arch: a pair is two numbers such as (3,5), at character "
                                  f"{t.pos} (layer {index})")
            return (_number(first), _number(second))
        raise self.fail(t, "a value (a number, True/False, a word or a pair)", index)


def _number(tok):
    """The value of a number token; ConfigError (with its position) for one Python cannot
    hold (an integer of more than 4,300 digits)."""
    text = tok.text
    try:
        return float(text) if any(c in text for c in ".eE") else int(text)
    except ValueError:
        raise ConfigError(f"--arch: the number at character {tok.pos} is too long "
                          f"({len(text)} characters)") from None


def parse(text: str) -> list[Call]:
    """The calls of an arch string; ConfigError (one line, with the position) if malformed."""
    if not isinstance(text, str) or not text.strip():
        raise ConfigError("--arch is empty: give layers such as "
                          "'conv(32,3) relu maxpool(2) flatten linear(10)'")
    return _Parser(text).calls()


# -- the layers -----------------------------------------------------------------------

_REQUIRED = object()


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _is_pair(v):
    return _is_int(v) or (isinstance(v, tuple) and all(_is_int(x) for x in v))


# argument types: (what to call it in an error, the test)
TYPES: dict[str, tuple[str, Callable]] = {
    "int": ("an integer", _is_int),
    "number": ("a number", lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)),
    "bool": ("True or False", lambda v: isinstance(v, bool)),
    "pair": ("an integer or a pair such as (3,5)", _is_pair),
    "stride": ("an integer, a pair or None", lambda v: v is None or _is_pair(v)),
    "padding": ("an integer, a pair, 'same' or 'valid'",
                lambda v: _is_pair(v) or isinstance(v, str)),
    "word": ("a name", lambda v: isinstance(v, str)),
}


class _Context:
    """What every layer of one build shares: the weights' generator, dtype and default
    init, the previous layer (an in-place ReLU is safe only after some), and the
    parameter count so far against its limit (checked before a weight is allocated)."""

    def __init__(self, seed, dtype, init, max_params):
        self.rng = np.random.default_rng(seed)
        self.dtype, self.init = np.dtype(dtype), init
        self.max_params = max_params        # None, or (limit, "what the limit is")
        self.params, self.prev = 0, None

    def reserve(self, n: int, call: Call) -> None:
        self.params += n
        if self.max_params is not None and self.params > self.max_params[0]:
            limit, why = self.max_params
            raise ConfigError(f"would bring the model to {self.params:,} parameters, more "
                              f"than {why} ({limit:,}); use fewer or narrower layers")

    def weights(self, kw: dict) -> dict:
        return dict(kw, init=kw.get("init", self.init), rng=self.rng, dtype=self.dtype)


def _flat(name: str, shape) -> int:
    if len(shape) != 1:
        raise ConfigError(f"{name} takes flat features (D,) but its input has shape {shape}; "
                          "put flatten (or gap) before it")
    return shape[0]


def _conv(call, shape, kw, ctx):
    c, _, _ = check_image_shape(call.name, None, shape)
    kh, kw_ = as_pair("kernel_size", kw["kernel_size"])
    out = kw["out_channels"]
    ctx.reserve(c * out * kh * kw_ + (out if kw.get("bias", True) else 0), call)
    return core.Conv2d(c, **ctx.weights(kw))


def _linear(call, shape, kw, ctx):
    d, out = _flat(call.name, shape), kw["out_features"]
    ctx.reserve(d * out + (out if kw.get("bias", True) else 0), call)
    return core.Linear(d, **ctx.weights(kw))


def _batchnorm(call, shape, kw, ctx):
    if len(shape) not in (1, 3):
        raise ConfigError(f"{call.name} normalises features (D,) or images (C, H, W), got "
                          f"input of shape {shape}")
    ctx.reserve(2 * shape[0], call)
    cls = core.BatchNorm1d if len(shape) == 1 else core.BatchNorm2d
    return cls(shape[0], dtype=ctx.dtype, **kw)


def _dropout2d(call, shape, kw, ctx):
    if len(shape) != 3:
        raise ConfigError(f"{call.name} drops whole channels of images (C, H, W), but its "
                          f"input has shape {shape}; use dropout here")
    return core.Dropout2d(**kw)


def _relu(call, shape, kw, ctx):
    # in place only over a fresh output nobody keeps: a Linear's, a Conv2d's, a batch
    # norm's (not an activation's cached y, not Flatten's view of the layer before)
    fresh = isinstance(ctx.prev, (core.Linear, core.Conv2d, core.BatchNorm1d, core.BatchNorm2d))
    return core.ReLU(inplace=fresh)


def _plain(cls):
    return lambda call, shape, kw, ctx: cls(**kw)


@dataclass(frozen=True)
class Kind:
    """A layer name of the grammar: its arguments (name, type, default) in constructor
    order, how it is built from the incoming shape, and the classes it builds."""

    params: tuple
    build: Callable
    classes: tuple


_CONV = (("out_channels", "int", _REQUIRED), ("kernel_size", "pair", _REQUIRED),
         ("stride", "pair", 1), ("padding", "padding", 0), ("bias", "bool", True),
         ("init", "word", None))
_POOL = (("kernel_size", "pair", _REQUIRED), ("stride", "stride", None))
_P = (("p", "number", 0.5),)

KINDS: dict[str, Kind] = {
    "conv": Kind(_CONV, _conv, (core.Conv2d,)),
    "linear": Kind((("out_features", "int", _REQUIRED), ("bias", "bool", True),
                    ("init", "word", None)), _linear, (core.Linear,)),
    "maxpool": Kind(_POOL, _plain(core.MaxPool2d), (core.MaxPool2d,)),
    "avgpool": Kind(_POOL, _plain(core.AvgPool2d), (core.AvgPool2d,)),
    "gap": Kind((), _plain(core.GlobalAvgPool2d), (core.GlobalAvgPool2d,)),
    "batchnorm": Kind((("eps", "number", 1e-5), ("momentum", "number", 0.1)), _batchnorm,
                      (core.BatchNorm1d, core.BatchNorm2d)),
    "dropout": Kind(_P, _plain(core.Dropout), (core.Dropout,)),
    "dropout2d": Kind(_P, _dropout2d, (core.Dropout2d,)),
    "flatten": Kind((), _plain(core.Flatten), (core.Flatten,)),
    "relu": Kind((), _relu, (core.ReLU,)),
    "leakyrelu": Kind((("negative_slope", "number", 0.01),), _plain(core.LeakyReLU),
                      (core.LeakyReLU,)),
    "sigmoid": Kind((), _plain(core.Sigmoid), (core.Sigmoid,)),
    "tanh": Kind((), _plain(core.Tanh), (core.Tanh,)),
    "gelu": Kind((("approximate", "word", "none"),), _plain(core.GELU), (core.GELU,)),
    "softmax": Kind((), _plain(core.Softmax), (core.Softmax,)),
    "identity": Kind((), _plain(core.Identity), (core.Identity,)),
}
ALIASES = {"conv2d": "conv", "dense": "linear", "maxpool2d": "maxpool",
           "avgpool2d": "avgpool", "globalavgpool": "gap", "globalavgpool2d": "gap",
           "bn": "batchnorm", "leaky_relu": "leakyrelu"}
NAMES = sorted([*KINDS, *ALIASES])


def _arguments(call: Call, kind_name: str) -> dict:
    """The call's arguments by parameter name, type-checked; defaults left out so the
    constructor's own apply."""
    params = KINDS[kind_name].params
    names = [p[0] for p in params]
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
    for name, kind, default in params:
        if default is _REQUIRED and name not in given:
            raise ConfigError(f"--arch: {call.name} needs {name} {call.where()} ({sig})")
    out = {}
    for name, kind, _ in params:
        if name in given:
            value, pos = given[name]
            what, ok = TYPES[kind]
            if not ok(value):
                raise ConfigError(f"--arch: {call.name}'s {name} must be {what}, got "
                                  f"{value!r} {call.where(pos)}")
            out[name] = value
    return out


def kind_of(call: Call) -> str:
    """The canonical layer name of a call, or ConfigError suggesting the closest one."""
    key = call.name.lower()
    key = ALIASES.get(key, key)
    if key not in KINDS:
        close = closest(call.name.lower(), NAMES)
        hint = f"; did you mean {close!r}?" if close else f"; valid: {', '.join(NAMES)}"
        raise ConfigError(f"--arch: unknown layer {call.name!r} {call.where()}{hint}")
    return key


def build(text: str, input_shape, *, n_classes: int | None = None, dataset: str = "the data",
          seed: int = 0, dtype=np.float32, init="torch", clip_delta=None,
          max_params: tuple[int, str] | None = None) -> core.Sequential:
    """The Sequential ``text`` describes, for examples of ``input_shape`` (e.g. (1, 28, 28)).

    Weights are drawn in layer order from ``default_rng(seed)`` with ``init`` unless a
    layer names its own. With ``n_classes``, the output must be (n_classes,). With
    ``max_params`` = (limit, why), a layer that would take the count past ``limit`` is
    refused before its weights are allocated. Every refusal is one ConfigError line
    naming the layer as typed and its position.

    >>> build("conv(4,3) relu flatten linear(10)", (1, 8, 8)).output_shape()
    (10,)
    """
    calls = parse(text)
    kinds = [kind_of(c) for c in calls]
    if kinds[-1] == "softmax":
        raise ConfigError(f"--arch ends in softmax {calls[-1].where()}, but the loss takes "
                          "logits (CrossEntropyLoss applies the softmax itself): drop it")
    args = [_arguments(c, k) for c, k in zip(calls, kinds)]
    ctx = _Context(seed, dtype, init, max_params)
    shape, layers = tuple(input_shape), []
    for call, kind, kw in zip(calls, kinds, args):
        try:
            layer = KINDS[kind].build(call, shape, kw, ctx)
            shape = tuple(layer.output_shape(shape))
        except ConfigError as exc:
            raise ConfigError(f"--arch: {call.text} {call.where()}: {exc}") from None
        layers.append(layer)
        ctx.prev = layer
    if n_classes is not None and shape != (n_classes,):
        ends = f"{shape[0]} outputs" if len(shape) == 1 else f"outputs of shape {shape}"
        fix = f"linear({n_classes})" if len(shape) == 1 else f"flatten linear({n_classes})"
        raise ConfigError(f"--arch ends in {ends} but {dataset} has {n_classes} classes: "
                          f"end with {fix}")
    return core.Sequential(*layers, clip_delta=clip_delta, input_shape=tuple(input_shape))


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
        name = next((n for n, k in KINDS.items() if type(layer) in k.classes), None)
        if name is None:
            raise ConfigError(f"layer {i} ({type(layer).__name__}) has no --arch name")
        spec, args, skipped = layer.spec(), [], False
        for key, kind, default in KINDS[name].params:
            value = spec.get(key, default)
            if (_fmt(value) == _fmt(default)
                    or (kind == "stride" and value == spec["kernel_size"])):  # pool default
                skipped = True                  # later arguments go by keyword
            elif default is _REQUIRED or not skipped:
                args.append(_fmt(value))
            else:
                args.append(f"{key}={_fmt(value)}")
        parts.append(f"{name}({','.join(args)})" if args else name)
    return " ".join(parts)


def activation_sizes(model: core.Sequential) -> list[int]:
    """Values per example of the input and of every layer's output."""
    return [math.prod(s) for s in (model.input_shape, *model.shapes)]
