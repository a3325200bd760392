"""Element-wise activations and Softmax: forward(x) caches, backward(dout) returns dx.

Every forward is numerically stable for any finite input (the notebook's
``exp(z)/(1+exp(z))`` sigmoid and max-free softmax overflow at |z| ~ 89 in float32).
Each is declared once (core/catalog.py): its --arch name, ONNX operator and twins.
Not here: layers with parameters (linear.py, conv.py) and losses (losses.py).
"""
from __future__ import annotations

import math

import numpy as np

from ..errors import ConfigError
from .catalog import Arch, Arg, register_layer
from .module import Module

_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_INV_SQRT_2 = 1.0 / math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
# math.erf is correctly rounded to ~1 ulp; NumPy has no erf and SciPy is not a dependency.
# Applied element by element in Python, so exact GELU costs ~0.1 us per element: use
# GELU("tanh") for wide layers when speed matters more than matching torch's exact GELU.
_erf = np.frompyfunc(math.erf, 1, 1)


class Activation(Module):
    """An element-wise layer without parameters (what ``--activation`` may name)."""

    preserves_shape = True


def _simple(arch: str, onnx_op: str, torch_name: str, keras_name: str, **arch_kw):
    """The declarations of an activation that PyTorch, Keras and ONNX each compute with
    one operator of their own, without arguments."""
    return dict(arch=Arch(arch, **arch_kw),
                onnx=lambda g, m, x: g.node(onnx_op, [x]),
                torch=lambda t, m: getattr(t.nn, torch_name)(),
                keras=lambda k, m, shape: [k.layers.Activation(keras_name)])


@register_layer(arch=Arch("identity"), onnx=lambda g, m, x: x,
                torch=lambda t, m: t.nn.Identity(),
                keras=lambda k, m, shape: [k.layers.Activation("linear")])
class Identity(Activation):
    """y = x; dx = dout."""

    def forward(self, x):
        return x

    def input_grad(self, dout):
        return dout


@register_layer(arch=Arch("relu"), onnx=lambda g, m, x: g.node("Relu", [x]),
                torch=lambda t, m: t.nn.ReLU(inplace=m.inplace),
                keras=lambda k, m, shape: [k.layers.ReLU()])
class ReLU(Activation):
    """y = max(x, 0); dx = dout * [y > 0] (0 at x == 0, as PyTorch).

    inplace=True overwrites x with y (as torch's ``ReLU(inplace=True)``): safe after
    a Linear, whose output nobody else keeps, and it saves an (N, D) array per call
    (--arch makes a ReLU in place after any layer with a ``fresh_output``).
    The notebook used 1 at x == 0; with real-valued inputs the two never differ in practice.
    """

    def __init__(self, inplace: bool = False):
        self.inplace = bool(inplace)

    def forward(self, x):
        y = np.maximum(x, 0, out=x if self.inplace else None)   # (N, D)
        self._y = y
        return y

    def input_grad(self, dout):
        return dout * (self._y > 0)         # (N, D); multiply beats boolean assignment 20x

    def spec(self):
        return {"inplace": self.inplace}


@register_layer(
    arch=Arch("leakyrelu", Arg("negative_slope", "number", 0.01), aliases=("leaky_relu",)),
    onnx=lambda g, m, x: g.node("LeakyRelu", [x], alpha=m.negative_slope),
    torch=lambda t, m: t.nn.LeakyReLU(m.negative_slope),
    keras=lambda k, m, shape: [k.layers.LeakyReLU(negative_slope=m.negative_slope)])
class LeakyReLU(Activation):
    """y = x if x > 0 else a x; dx = dout * (1 if x > 0 else a)."""

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


@register_layer(**_simple("sigmoid", "Sigmoid", "Sigmoid", "sigmoid"))
class Sigmoid(Activation):
    """y = 1 / (1 + e^-x); dx = dout * y (1 - y)."""

    def forward(self, x):
        self._y = stable_sigmoid(x)
        return self._y

    def input_grad(self, dout):
        y = self._y
        return dout * y * (1 - y)


@register_layer(**_simple("tanh", "Tanh", "Tanh", "tanh"))
class Tanh(Activation):
    """y = tanh x; dx = dout * (1 - y^2)."""

    def forward(self, x):
        self._y = np.tanh(x)
        return self._y

    def input_grad(self, dout):
        return dout * (1 - self._y * self._y)


def _gelu_onnx(g, m, x):
    """GELU: the Gelu operator from opset 20; before it the formula in Erf or Tanh nodes.
        none: y = x * 0.5 (1 + erf(x / sqrt 2))
        tanh: y = x * 0.5 (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))"""
    if g.opset >= 20:
        return g.node("Gelu", [x], approximate=m.approximate)
    f32 = np.float32
    if m.approximate == "tanh":
        x3 = g.node("Mul", [g.node("Mul", [x, x], name="x2"), x], name="x3")
        cx3 = g.node("Mul", [x3, g.const("c", f32(0.044715))], name="cx3")
        inner = g.node("Add", [x, cx3], name="inner")
        u = g.node("Mul", [inner, g.const("k", f32(_SQRT_2_OVER_PI))], name="u")
        t = g.node("Tanh", [u])
    else:
        scaled = g.node("Mul", [x, g.const("k", f32(_INV_SQRT_2))], name="scaled")
        t = g.node("Erf", [scaled])
    one_plus = g.node("Add", [t, g.const("one", f32(1.0))], name="1p")
    half_x = g.node("Mul", [x, g.const("half", f32(0.5))], name="halfx")
    return g.node("Mul", [half_x, one_plus], name="gelu")


@register_layer(
    arch=Arch("gelu", Arg("approximate", "word", "none")), onnx=_gelu_onnx,
    torch=lambda t, m: t.nn.GELU(approximate=m.approximate),
    keras=lambda k, m, shape: [k.layers.Activation(
        lambda x: k.keras.activations.gelu(x, approximate=m.approximate == "tanh"))])
class GELU(Activation):
    """GELU as torch.nn.GELU.

    approximate="none":  y = x Phi(x) = x/2 (1 + erf(x / sqrt 2));  dy/dx = Phi(x) + x phi(x)
    approximate="tanh":  y = x/2 (1 + tanh u),  u = sqrt(2/pi) (x + 0.044715 x^3)
                         dy/dx = (1 + tanh u)/2 + x/2 (1 - tanh^2 u) sqrt(2/pi) (1 + 3 * 0.044715 x^2)
    """

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


@register_layer(arch=Arch("silu"),
                onnx=lambda g, m, x: g.node("Mul", [x, g.node("Sigmoid", [x])]),
                torch=lambda t, m: t.nn.SiLU(),
                keras=lambda k, m, shape: [k.layers.Activation("silu")])
class SiLU(Activation):
    """SiLU (swish) as torch.nn.SiLU: y = x s, s = sigmoid(x);
    dy/dx = s + x s (1 - s) = s (1 + x (1 - s)).

    s comes from the stable sigmoid (nothing overflows); once s rounds to 1 or 0 the
    derivative is 1 or 0, as the true one is to within rounding.
    """

    def forward(self, x):
        self._x, self._s = x, stable_sigmoid(x)
        return x * self._s

    def input_grad(self, dout):
        x, s = self._x, self._s
        return dout * (s * (1 + x * (1 - s)))


def stable_softmax(z: np.ndarray) -> np.ndarray:
    """softmax over the last axis, shifted by the row max so exp never overflows.

    softmax(z) == softmax(z - c) for any c; with c = max, every exponent is <= 0.
    """
    e = np.exp(z - z.max(axis=-1, keepdims=True))   # (N, C), each <= 1
    e /= e.sum(axis=-1, keepdims=True)
    return e


@register_layer(
    arch=Arch("softmax"), onnx=lambda g, m, x: g.node("Softmax", [x], axis=-1),
    torch=lambda t, m: t.nn.Softmax(dim=-1),
    # bareprop's last axis: W of an image, which is axis 2 of Keras' NHWC
    keras=lambda k, m, shape: [k.layers.Softmax(axis=2 if len(shape) == 3 else -1)])
class Softmax(Activation):
    """y = softmax(x) over the last axis; dx = y * (dout - sum(dout * y)).

    For classification use CrossEntropyLoss on logits instead: it fuses the two, and
    its gradient p - onehot stays finite where -1/p through this layer overflows.
    """

    def forward(self, x):
        self._y = stable_softmax(x)
        return self._y

    def input_grad(self, dout):
        y = self._y
        return y * (dout - (dout * y).sum(axis=-1, keepdims=True))
