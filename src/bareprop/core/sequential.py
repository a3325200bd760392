"""Sequential: layers applied in order; backward runs them in reverse. And ``walk``, the
one walk over a model's layers with their shapes.

Shapes are inferred when the container is built: from ``input_shape=``, from the
first layer that fixes its input (``Linear(784, 128)`` takes (784,)), or from the
first batch it sees. An impossible chain is refused there, naming the layer.
Also home of Keras-style ``summary()``. The seed notebook's delta clipping and
update order are layer hooks (core/notebook.py), not special cases here.
Not here: fast paths (fused layers, compiled kernels): fast/ plans those once per
training step, from the same modules.
"""
from __future__ import annotations

import inspect
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError
from .catalog import register_layer
from .init import weight_dtype
from .module import Module
from .notebook import DeltaClip

# How backward reaches each layer, decided once when the Sequential is built.
_PARAM, _PLAIN, _OWN = 0, 1, 2


def _backward_kind(layer: Module) -> tuple[int, bool, bool]:
    """(kind, takes need_dx, has parameters): a layer with parameters splits into
    accumulate_grads and input_grad (so hooks can run between them), one without is
    input_grad alone, and a layer that overrides backward itself (a nested Sequential, a
    user's layer written to the one-call contract) is called through its own backward."""
    params = layer.has_parameters()
    if type(layer).backward is not Module.backward:
        return _OWN, "need_dx" in inspect.signature(layer.backward).parameters, params
    return (_PARAM if params else _PLAIN), True, params


@dataclass(frozen=True)
class Step:
    """One layer of a walk: ``where`` is its state-dict prefix ("2.1" for layer 1 inside
    layer 2), ``in_shape``/``out_shape`` one example's shapes (None when the walk has no
    input shape)."""

    where: str
    layer: Module
    in_shape: tuple[int, ...] | None
    out_shape: tuple[int, ...] | None


def walk(model: Module, input_shape=None, nested: bool = True) -> Iterator[Step]:
    """Every layer of ``model`` in forward order with one example's input and output
    shapes, the layers of nested Sequentials in place of their container (``nested=False``:
    the top-level layers only). Shapes follow from ``input_shape`` (default: the model's
    recorded one; None: no shapes). ConfigError names the first layer that cannot take its
    input: "layer 2.1 (Conv2d): ..."."""
    if input_shape is None:
        input_shape = getattr(model, "input_shape", None)
    shape = tuple(input_shape) if input_shape is not None else None
    yield from _walk(model, shape, "", nested)


def _walk(model, shape, prefix: str, nested: bool):
    if not isinstance(model, Sequential):           # a lone layer is a walk of one
        yield _step("", model, shape)
        return
    for i, layer in enumerate(model.layers):
        where = f"{prefix}{i}"
        if nested and isinstance(layer, Sequential):
            for step in _walk(layer, shape, where + ".", nested):
                yield step
                shape = step.out_shape
            continue
        step = _step(where, layer, shape)
        yield step
        shape = step.out_shape


def _step(where: str, layer: Module, shape) -> Step:
    out = None
    if shape is not None:
        try:
            out = tuple(layer.output_shape(shape))
        except ConfigError as exc:
            raise ConfigError(f"layer {where or 0} ({type(layer).__name__}): {exc}") from None
    return Step(where, layer, shape, out)


@register_layer
class Sequential(Module):
    """A chain of modules: ``forward`` in order, ``backward`` in reverse.

    input_shape: the shape of one example (batch axis excluded), e.g. (28, 28); optional
        when the first layer fixes it (Linear) or until the first call records it.
    clip_delta: None, or c > 0 to clip, as the seed notebook did, every delta (the
        gradient w.r.t. the output of each layer with parameters) element-wise to
        [-c, c] before that layer's backward uses it. The notebook's deltas are per
        example; ours carry the mean loss's 1/N, so the bound applied is c / N.
    dtype: when given, every layer's parameters and buffers are cast to it.

    Shape: x (N, *input_shape) -> y (N, *output_shape).

    >>> import bareprop as bp
    >>> net = bp.Sequential(bp.Linear(784, 128, rng=0), bp.ReLU(), bp.Linear(128, 10, rng=1))
    >>> net.num_parameters(), net.output_shape()
    (101770, (10,))
    """

    def __init__(self, *layers: Module, clip_delta: float | None = None,
                 input_shape: tuple[int, ...] | None = None, dtype=None):
        for i, layer in enumerate(layers):
            if not isinstance(layer, Module):
                raise TypeError(f"Sequential takes Modules, got {type(layer).__name__} at {i}")
            setattr(self, str(i), layer)  # registered as "0", "1", ... like torch
        self.layers = list(layers)
        self.clip_delta = clip_delta
        if dtype is not None:
            dtype = weight_dtype(dtype)
            self.astype(dtype)
        self._kinds = [_backward_kind(layer) for layer in self.layers]
        # layers before the first one with parameters need no backward at all, and that
        # one needs no dx, unless the caller asks for the gradient w.r.t. the input
        self._first = next((i for i, (k, _, _) in enumerate(self._kinds) if k != _PLAIN), 0)
        self.input_shape: tuple[int, ...] | None = None
        self.shapes: list[tuple[int, ...]] = []
        shape = input_shape if input_shape is not None else self._declared_input_shape()
        if shape is not None:
            self.build(shape)

    @property
    def clip_delta(self) -> float | None:
        return self._clip_delta

    @clip_delta.setter
    def clip_delta(self, c: float | None) -> None:
        if c is not None and not c > 0:
            raise ConfigError(f"clip_delta must be positive or None, got {c}")
        self._clip_delta = c
        self._clip_hook = DeltaClip(c) if c is not None else None

    def _declared_input_shape(self):
        """The input shape the first shape-fixing layer declares, looking past layers
        that keep any shape (Dropout, activations)."""
        for layer in self.layers:
            hint = layer.input_shape_hint()
            if hint is not None:
                return hint
            if not layer.preserves_shape:
                return None
        return None

    def build(self, input_shape) -> "Sequential":
        """Infer every layer's output shape from ``input_shape``; ConfigError naming the
        first layer that cannot take its input."""
        try:
            shape = tuple(int(d) for d in input_shape)
        except (TypeError, ValueError):
            raise ConfigError(f"input_shape must be a tuple of positive ints, got "
                              f"{input_shape!r}") from None
        if any(d < 1 for d in shape):
            raise ConfigError(f"input_shape must be a tuple of positive ints, got {shape}")
        self.input_shape = shape
        self.shapes = [s.out_shape for s in walk(self, shape, nested=False)]
        return self

    def output_shape(self, in_shape=None):
        """The shape of one output example: for ``in_shape``, or for the built input shape
        (None while not built)."""
        if in_shape is None:
            if self.input_shape is None:
                return None
            return self.shapes[-1] if self.shapes else self.input_shape
        shapes = [s.out_shape for s in walk(self, tuple(in_shape), nested=False)]
        return shapes[-1] if shapes else tuple(in_shape)

    def input_shape_hint(self):
        return self.input_shape

    def __len__(self):
        return len(self.layers)

    def __getitem__(self, i):
        return self.layers[i]

    def forward(self, x: np.ndarray) -> np.ndarray:
        if self.input_shape is None:      # shapes recorded from the first batch seen
            self.build(x.shape[1:])
        for layer in self.layers:
            x = layer.forward(x)
        return x

    def backward(self, dout: np.ndarray, need_dx: bool = False,
                 layer_hook=None) -> np.ndarray | None:
        """Back-propagate dL/d(output) through every layer in reverse, filling each ``p.grad``.

        Returns dL/dx when ``need_dx`` is True; otherwise the layers below the first one
        with parameters are skipped and that one forms no dx.

        layer_hook: an object with ``before(dout) -> dout`` and ``after(layer)``, run
        around each layer with parameters: ``before`` sees the delta that layer is
        about to use (the notebook clips it), ``after`` runs once its grads are filled
        and before its dx is formed (the notebook updates the layer there, so the delta
        below uses the updated weights). Defaults to the model's ``clip_delta``.
        """
        hook = layer_hook if layer_hook is not None else self._clip_hook
        stop = 0 if need_dx else self._first
        for i in range(len(self.layers) - 1, stop - 1, -1):
            layer = self.layers[i]
            kind, takes_need_dx, has_params = self._kinds[i]
            wants_dx = need_dx or i > stop
            if kind == _PLAIN:
                dout = layer.input_grad(dout)
            elif kind == _PARAM:
                if hook is not None:
                    dout = hook.before(dout)
                layer.accumulate_grads(dout)
                if hook is not None:
                    hook.after(layer)              # the notebook steps the layer here
                dout = layer.input_grad(dout) if wants_dx else None
            else:
                if hook is not None and has_params:
                    dout = hook.before(dout)
                dout = layer.backward(dout, need_dx=wants_dx) if takes_need_dx \
                    else layer.backward(dout)
                if hook is not None and has_params:
                    hook.after(layer)
        return dout

    def input_grad(self, dout):
        return self.backward(dout, need_dx=True)

    @property
    def dtype(self) -> np.dtype:
        params = self.parameters()
        return params[0].dtype if params else np.dtype(np.float32)

    def summary(self, print_fn=print) -> str:
        """Keras-style table: each layer, its output shape and parameter count, and totals."""
        rows = [("Layer (type)", "Output Shape", "Param #")]
        for i, layer in enumerate(self.layers):
            shape = (str((None, *self.shapes[i])).replace(",)", ")")
                     if self.input_shape is not None else "? (not built)")
            rows.append((f"{i} {type(layer).__name__}", shape, f"{layer.num_parameters():,}"))
        w0 = max(len(r[0]) for r in rows) + 2
        w1 = max(len(r[1]) for r in rows) + 2
        rule = "=" * (w0 + w1 + max(len(r[2]) for r in rows))
        lines = [f"{rows[0][0]:<{w0}}{rows[0][1]:<{w1}}{rows[0][2]}", rule]
        lines += [f"{a:<{w0}}{b:<{w1}}{c}" for a, b, c in rows[1:]]
        total = self.num_parameters()
        lines += [rule, f"Total params: {total:,}", f"Trainable params: {total:,}",
                  f"dtype: {self.dtype}"]
        text = "\n".join(lines)
        if print_fn is not None:
            print_fn(text)
        return text

    def spec(self):
        from .catalog import layer_spec

        spec = {"layers": [layer_spec(layer) for layer in self.layers],
                "clip_delta": self.clip_delta}
        if self.input_shape is not None:
            spec["input_shape"] = list(self.input_shape)
        return spec

    @classmethod
    def from_spec(cls, spec: dict, dtype=np.float32) -> "Sequential":
        from .catalog import build_layer

        layers = spec.get("layers")
        if not isinstance(layers, list):
            raise ConfigError("a Sequential spec needs a list of layers")
        shape = spec.get("input_shape")
        return cls(*[build_layer(s, dtype) for s in layers], clip_delta=spec.get("clip_delta"),
                   input_shape=tuple(shape) if shape is not None else None)

    def extra_repr(self):
        inner = ",\n  ".join(repr(layer) for layer in self.layers)
        clip = f",\n  clip_delta={self.clip_delta}" if self.clip_delta is not None else ""
        return f"\n  {inner}{clip}\n"
