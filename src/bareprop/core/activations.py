"""Element-wise activations and Softmax: forward(x) caches, backward(dout) returns dx.

Every forward is numerically stable for any finite input (the notebook's
``exp(z)/(1+exp(z))`` sigmoid and max-free softmax overflow at |z| ~ 89 in float32).
Not here: layers with parameters (layers.py) and losses (losses.py).
"""
from __future__ import annotations

import math

import numpy as np

from ..errors import ConfigError
from . import kernels
from .module import Module

_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_INV_SQRT_2 = 1.0 / math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
# math.erf is correctly rounded to ~1 ulp; NumPy has no erf and SciPy is not a dependency.
# Applied element by element in Python, so exact GELU costs ~0.1 us per element: use
# GELU("tanh") for wide layers when speed matters more than matching torch's exact GELU.
_erf = np.frompyfunc(math.erf, 1, 1)


class Identity(Module):
    """y = x; dx = dout."""

    preserves_shape = True

    def forward(self, x):
        return x

    def input_grad(self, dout):
        return dout


class ReLU(Module):
    """y = max(x, 0); dx = dout * [y > 0] (0 at x == 0, as PyTorch).

    inplace=True overwrites x with y (as torch's ``ReLU(inplace=True)``): safe after
    a Linear, whose output nobody else keeps, and it saves an (N, D) array per call.
    The notebook used 1 at x == 0; with real-valued inputs the two never differ in practice.
    """

    preserves_shape = True

    def __init__(self, inplace: bool = False):
        self.inplace = bool(inplace)

    def forward(self, x):
        y = np.maximum(x, 0, out=x if self.inplace else None)   # (N, D)
        self._y = y
        return y

    def input_grad(self, dout):
        y = self._y
        k = kernels.get(dout.dtype)
        if k is not None and y.dtype == dout.dtype and _same_layout(dout, y):
            dx = np.empty_like(dout)                  # dout's layout: ravel(order="K") views
            k.relu_back(dx.ravel(order="K"), dout.ravel(order="K"), y.ravel(order="K"))
            return dx
        return dout * (y > 0)               # (N, D); multiply beats boolean assignment 20x

    def spec(self):
        return {"inplace": self.inplace}


def _same_layout(a, b) -> bool:
    """Both C- or both F-contiguous with one shape: their K-order ravels line up."""
    if a.shape != b.shape:
        return False
    return ((a.flags.c_contiguous and b.flags.c_contiguous)
            or (a.flags.f_contiguous and b.flags.f_contiguous))


class LeakyReLU(Module):
    """y = x if x > 0 else a x; dx = dout * (1 if x > 0 else a)."""

    preserves_shape = True

    def __init__(self, negative_slope: float = 0.01):
        self.negative_slope = float(negative_slope)

    def forward(self, x):
        self._pos = x > 0
        return np.where(self._pos, x, x * self.negative_slope)

    def input_grad(self, dout):
        return np.where(self._pos, dout, dout * self.negative_slope)

    def spec(self):
        return {"negative_slope": self.negative_slope}

    def extra_repr(self):
        return f"negative_slope={self.negative_slope}"


def stable_sigmoid(x: np.ndarray) -> np.ndarray:
    """1 / (1 + e^-x) computed through e = exp(-|x|) <= 1, so nothing overflows.

    x >= 0: 1 / (1 + e);  x < 0: e / (1 + e).
    """
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e)).astype(x.dtype, copy=False)


class Sigmoid(Module):
    """y = 1 / (1 + e^-x); dx = dout * y (1 - y)."""

    preserves_shape = True

    def forward(self, x):
        self._y = stable_sigmoid(x)
        return self._y

    def input_grad(self, dout):
        y = self._y
        return dout * y * (1 - y)


class Tanh(Module):
    """y = tanh x; dx = dout * (1 - y^2)."""

    preserves_shape = True

    def forward(self, x):
        self._y = np.tanh(x)
        return self._y

    def input_grad(self, dout):
        return dout * (1 - self._y * self._y)


class GELU(Module):
    """GELU as torch.nn.GELU.

    approximate="none":  y = x Phi(x) = x/2 (1 + erf(x / sqrt 2));  dy/dx = Phi(x) + x phi(x)
    approximate="tanh":  y = x/2 (1 + tanh u),  u = sqrt(2/pi) (x + 0.044715 x^3)
                         dy/dx = (1 + tanh u)/2 + x/2 (1 - tanh^2 u) sqrt(2/pi) (1 + 3 * 0.044715 x^2)
    """

    preserves_shape = True

    def __init__(self, approximate: str = "none"):
        if approximate not in ("none", "tanh"):
            raise ConfigError(f"GELU approximate must be 'none' or 'tanh', got {approximate!r}")
        self.approximate = approximate

    def forward(self, x):
        self._x = x
        if self.approximate == "tanh":
            self._t = np.tanh(_SQRT_2_OVER_PI * (x + 0.044715 * x * x * x))
            return 0.5 * x * (1 + self._t)
        cdf = (0.5 * (1.0 + _erf(x * _INV_SQRT_2))).astype(x.dtype)   # Phi(x)
        self._cdf = cdf
        return x * cdf

    def input_grad(self, dout):
        x = self._x
        if self.approximate == "tanh":
            t = self._t
            du = _SQRT_2_OVER_PI * (1 + 3 * 0.044715 * x * x)
            return dout * (0.5 * (1 + t) + 0.5 * x * (1 - t * t) * du)
        pdf = _INV_SQRT_2PI * np.exp(-0.5 * x * x)                       # phi(x)
        return dout * (self._cdf + x * pdf)

    def spec(self):
        return {"approximate": self.approximate}

    def extra_repr(self):
        return f"approximate={self.approximate!r}"


def stable_softmax(z: np.ndarray) -> np.ndarray:
    """softmax over the last axis, shifted by the row max so exp never overflows.

    softmax(z) == softmax(z - c) for any c; with c = max, every exponent is <= 0.
    """
    e = np.exp(z - z.max(axis=-1, keepdims=True))   # (N, C), each <= 1
    e /= e.sum(axis=-1, keepdims=True)
    return e


class Softmax(Module):
    """y = softmax(x) over the last axis; dx = y * (dout - sum(dout * y)).

    For classification use CrossEntropyLoss on logits instead: it fuses the two, and
    its gradient p - onehot stays finite where -1/p through this layer overflows.
    """

    preserves_shape = True

    def forward(self, x):
        self._y = stable_softmax(x)
        return self._y

    def input_grad(self, dout):
        y = self._y
        return y * (dout - (dout * y).sum(axis=-1, keepdims=True))


ACTIVATIONS: dict[str, type[Module]] = {
    "relu": lambda: ReLU(inplace=True),  # type: ignore[dict-item]  # CLI nets: after a Linear
    "leaky_relu": LeakyReLU,
    "sigmoid": Sigmoid,
    "tanh": Tanh,
    "gelu": GELU,
    "gelu_tanh": lambda: GELU("tanh"),  # type: ignore[dict-item]
    "identity": Identity,
}


def get_activation(name: str) -> Module:
    """Build an activation layer from its CLI name."""
    try:
        return ACTIVATIONS[name]()
    except KeyError:
        from ..errors import unknown_name

        raise unknown_name("activation", name, ACTIVATIONS) from None
