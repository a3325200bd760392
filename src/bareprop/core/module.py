"""Module: the base class of every layer and of Sequential.

A module owns Parameters (trainable) and buffers (state such as BatchNorm's
running mean, saved but not trained), and may own child modules. It knows
nothing about autograd. A layer implements:

  forward(x)               y, caching what the backward needs
  input_grad(dout)         dx = J^T dout, the vector-Jacobian product w.r.t. the input
  accumulate_grads(dout)   p.grad += dL/dp for each parameter (layers with parameters)
  output_shape(in_shape)   the shape of y for an input shape, batch axis excluded

``backward(dout, need_dx=True)`` is the two in order. Keeping them apart is what
lets the seed notebook's order (update a layer, then form the delta below it with
the updated weights) work for any layer with parameters (see core/notebook.py).
"""
from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np

from ..errors import ConfigError
from .parameter import Parameter


def flatten_hint(in_shape: tuple[int, ...], want: tuple[int, ...]) -> str:
    """The fix to name when a flat input was expected and an image arrived."""
    if len(in_shape) > 1 and len(want) == 1 and math.prod(in_shape) == want[0]:
        return " (images keep their shape: add bp.Flatten() before this layer)"
    return ""


class Module:
    """Base class. Subclasses set Parameters and child Modules as attributes.

    Registration is by attribute order (like ``torch.nn.Module``): ``parameters()``
    walks ``self.__dict__`` in insertion order, so names are stable and match the
    equivalent PyTorch model (``0.weight``, ``0.bias``, ``2.weight``, ...).
    """

    #: names of attributes holding non-trainable state arrays saved in state_dict
    _buffer_names: tuple[str, ...] = ()

    training: bool = True
    #: In eval mode a layer may drop what its backward needs (inference stays lean, and
    #: safe to run from several threads); an explanation, which back-propagates through
    #: the eval-mode model, sets this on every layer to keep it (explain/probe.py).
    keep_for_backward: bool = False

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.forward(x)

    def forward(self, x: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def backward(self, dout: np.ndarray, need_dx: bool = True) -> np.ndarray | None:
        """Fill every parameter's grad from dout = dL/dy; return dx = dL/dx (or None when
        ``need_dx`` is False: nobody reads the first layer's dx)."""
        self.accumulate_grads(dout)
        return self.input_grad(dout) if need_dx else None

    def input_grad(self, dout: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def accumulate_grads(self, dout: np.ndarray) -> None:
        """Layers without parameters have nothing to accumulate."""

    # -- shapes -------------------------------------------------------------------
    #: True when y has x's shape whatever it is (activations, dropout): Sequential may
    #: look past such a layer for the input shape a later layer declares
    preserves_shape: bool = False
    #: True when forward returns a new array that nobody else keeps (Linear, Conv2d):
    #: a ReLU that follows may overwrite it in place
    fresh_output: bool = False

    def output_shape(self, in_shape: tuple[int, ...]) -> tuple[int, ...]:
        """Shape of one output example for one input example (batch axis excluded).

        Raises ConfigError naming the layer when ``in_shape`` cannot be its input."""
        return self.check_input_shape(in_shape)

    def check_input_shape(self, in_shape) -> tuple[int, ...]:
        """``in_shape`` as a tuple, or ConfigError when this layer fixes its input shape
        (``input_shape_hint``) and ``in_shape`` is another one."""
        in_shape, want = tuple(in_shape), self.input_shape_hint()
        if want is not None and in_shape != want:
            raise ConfigError(f"{self.short_name()} expects inputs of shape {want}, got "
                              f"{in_shape}{flatten_hint(in_shape, want)}")
        return in_shape

    def short_name(self) -> str:
        """How errors name this layer: ``Linear(784, 128)``, not every setting."""
        return type(self).__name__

    def input_shape_hint(self) -> tuple[int, ...] | None:
        """The one input shape this layer accepts, when its constructor fixes it
        (Linear(784, 128): (784,)); None when it accepts many."""
        return None

    # -- registry -----------------------------------------------------------------
    def children(self) -> Iterator[tuple[str, "Module"]]:
        for name, value in self.__dict__.items():
            if isinstance(value, Module):
                yield name, value

    def modules(self) -> Iterator["Module"]:
        """This module and every module inside it, in registration order (pre-order)."""
        yield self
        for _, child in self.children():
            yield from child.modules()

    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, Parameter]]:
        for name, value in self.__dict__.items():
            if isinstance(value, Parameter):
                yield prefix + name, value
            elif isinstance(value, Module):
                yield from value.named_parameters(prefix + name + ".")

    def parameters(self) -> list[Parameter]:
        return [p for _, p in self.named_parameters()]

    def named_buffers(self, prefix: str = "") -> Iterator[tuple[str, np.ndarray]]:
        for name in self._buffer_names:
            yield prefix + name, getattr(self, name)
        for name, child in self.children():
            yield from child.named_buffers(prefix + name + ".")

    def num_parameters(self) -> int:
        return sum(p.size for p in self.parameters())

    def release_scratch(self) -> None:
        """Drop the scratch arrays this module and its children keep between steps (a
        conv's columns, an LSTM's gates: ``_ws``; a conv's eval-mode ones: ``_eval_ws``);
        the next step allocates them again. For a forward of an unusual batch size (an
        inspection probe) whose buffers would otherwise stay until the next step."""
        for m in self.modules():
            for ws in (getattr(m, "_ws", None), getattr(m, "_eval_ws", None)):
                if ws:
                    ws.clear()

    def zero_grad(self) -> None:
        """Forget every gradient (set to None), so the next backward starts clean."""
        for p in self.parameters():
            p.grad = None

    # -- modes --------------------------------------------------------------------
    def train(self, mode: bool = True) -> "Module":
        """Training mode: Dropout drops, BatchNorm uses batch statistics."""
        self.training = mode
        for _, child in self.children():
            child.train(mode)
        return self

    def eval(self) -> "Module":
        """Inference mode: Dropout is the identity, BatchNorm uses running statistics."""
        return self.train(False)

    # -- state --------------------------------------------------------------------
    def state_dict(self) -> dict[str, np.ndarray]:
        """Copies of every parameter and buffer array, keyed like PyTorch's."""
        state = {name: p.data.copy() for name, p in self.named_parameters()}
        state.update({name: np.array(b, copy=True) for name, b in self.named_buffers()})
        return state

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        """Copy arrays into this module's parameters and buffers, in place.

        Raises ValueError naming the key when a key is missing or unexpected or a
        shape does not fit; values are cast to each parameter's dtype.
        """
        own = dict(self.named_parameters())
        buffers = dict(self.named_buffers())
        expected = list(own) + list(buffers)
        missing = [k for k in expected if k not in state]
        unexpected = [k for k in state if k not in own and k not in buffers]
        if missing or unexpected:
            raise ValueError(
                f"state dict does not fit this model: missing keys {missing}, "
                f"unexpected keys {unexpected}"
            )
        for key in expected:
            target = own[key].data if key in own else buffers[key]
            value = np.asarray(state[key])
            if value.shape != target.shape:
                raise ValueError(
                    f"state dict entry {key!r} has shape {value.shape}, "
                    f"but the model expects {target.shape}"
                )
        for key in expected:
            target = own[key].data if key in own else buffers[key]
            target[...] = state[key]

    def astype(self, dtype) -> "Module":
        """Cast every parameter and buffer to ``dtype`` in place; returns self."""
        dtype = np.dtype(dtype)
        for p in self.parameters():
            p.replace(p.data.astype(dtype))
            p.grad = None
        for name in self._buffer_names:
            setattr(self, name, getattr(self, name).astype(dtype))
        for _, child in self.children():
            child.astype(dtype)
        return self

    # -- description --------------------------------------------------------------
    def spec(self) -> dict:
        """Constructor arguments that rebuild this layer (weights aside), for model files."""
        return {}

    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.extra_repr()})"

    def has_parameters(self) -> bool:
        return next(self.named_parameters(), None) is not None


class OnePassBackward(Module):
    """A layer whose parameter gradients and dx come out of one backward pass,
    ``_backprop(dout, grads) -> dx`` (attention, the encoder block): ``accumulate_grads``
    runs it once and keeps dx for the ``input_grad`` of the same ``dout``, so dx is formed
    with the forward's weights even when a hook steps the layer in between (the notebook's
    update order), and nothing is computed twice."""

    _kept = None

    def _backprop(self, dout, grads: bool):  # pragma: no cover - abstract
        raise NotImplementedError

    def accumulate_grads(self, dout):
        self._kept = (dout, self._backprop(dout, grads=True))

    def input_grad(self, dout):
        kept, self._kept = self._kept, None
        if kept is not None and kept[0] is dout:
            return kept[1]
        return self._backprop(dout, grads=False)
