"""LayerNorm: normalisation over each example's trailing axes, as torch.nn.LayerNorm.

Unlike batch normalisation (norm.py) its statistics are per example (per token of a
sequence), so it behaves the same in training and at inference and keeps no running
statistics. Not here: the transformer block that uses it (transformer.py).
"""
from __future__ import annotations

import math
import numbers

import numpy as np

from ..errors import ConfigError
from .catalog import Arch, Arg, register_layer, width
from .linear import ones
from .init import weight_dtype
from .module import Module
from .parameter import Parameter


#: the most trailing axes one LayerNorm normalises (torch sets none; the bound keeps a
#: model file from naming a million axes, each read before its size is checked)
MAX_AXES = 16


def _normalized_shape(value) -> tuple[int, ...]:
    """An int or a non-empty sequence of at most MAX_AXES ints >= 1, as a tuple;
    ConfigError otherwise (the value may come from a model file)."""
    dims = [value] if isinstance(value, numbers.Integral) else value
    if not isinstance(dims, (list, tuple)) or not dims:
        raise ConfigError(f"normalized_shape must be an int or a non-empty tuple of ints, "
                          f"got {value!r}")
    if len(dims) > MAX_AXES:
        raise ConfigError(f"normalized_shape may name at most {MAX_AXES} axes, got "
                          f"{len(dims)}")
    return tuple(width({"normalized_shape": d}, "normalized_shape") for d in dims)


def layer_norm_eps(value, layer: str = "LayerNorm") -> float:
    """eps as a float: a finite number > 0 (not a bool or a string, which a model file
    may hold), or a one-line ConfigError naming ``layer``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) \
            or not (math.isfinite(value) and value > 0):
        raise ConfigError(f"{layer} needs eps > 0 (a finite number), got {value!r}")
    return float(value)


def _ln_params(s) -> dict:
    shape = _normalized_shape(s.get("normalized_shape"))
    if not s.get("elementwise_affine", True):
        return {}
    return {"weight": shape, **({"bias": shape} if s.get("bias", True) else {})}


def layernorm_onnx(g, m, x):
    """LayerNormalization (opset 17) over the last len(normalized_shape) axes."""
    scale = g.params("weight") or [g.const("ones", np.ones(m.normalized_shape, np.float32))]
    return g.node("LayerNormalization", [x, *scale, *g.params("bias")],
                  axis=-len(m.normalized_shape), epsilon=m.eps)


@register_layer(
    arch=Arch("layernorm", Arg("eps", "number", 1e-5),
              Arg("affine", "bool", True, param="elementwise_affine"),
              sizes=lambda shape: {"normalized_shape": shape[-1]}),
    params=_ln_params, onnx=layernorm_onnx,
    # no Keras twin: Keras 3's LayerNormalization on the torch backend fails on any axis
    # but the last (an image's W axis is axis 2 of NHWC)
    torch=lambda t, m: t.nn.LayerNorm(m.normalized_shape, eps=m.eps,
                                      elementwise_affine=m.weight is not None,
                                      bias=m.bias is not None))
class LayerNorm(Module):
    """Layer normalisation (Ba et al. 2016) over the trailing ``normalized_shape`` axes,
    as torch.nn.LayerNorm.

    Per row x of D = prod(normalized_shape) values (one token, one example):

        mu = mean(x),  var = mean((x - mu)^2)  (biased),  rstd = 1 / sqrt(var + eps)
        xh = (x - mu) rstd;  y = gamma xh + beta        (gamma: ``weight``, beta: ``bias``)

    Backward, with g = dout * gamma and means over the row's D values:
        dx = rstd (g - mean(g) - xh mean(g xh))
        dgamma = sum over rows of dout xh,  dbeta = sum over rows of dout
    The two means are what the row's mean and variance contribute: the same formula as
    BatchNorm's (norm.py), transposed: per row instead of per feature.

    Shape: x (N, ..., *normalized_shape) -> y of x's shape; weight and bias
    normalized_shape (ones and zeros), or neither with ``elementwise_affine=False``
    (``bias=False``: weight alone, as torch's).

    >>> import numpy as np, bareprop as bp
    >>> ln = bp.LayerNorm(4, dtype=np.float64)
    >>> ln(np.array([[1.0, 2.0, 3.0, 6.0]])).round(3)
    array([[-1.069, -0.535,  0.   ,  1.604]])
    """

    #: its output is a new array nobody else keeps (xh is kept, not y)
    fresh_output = True

    def __init__(self, normalized_shape, eps: float = 1e-5, elementwise_affine: bool = True,
                 bias: bool = True, dtype=np.float32):
        self.normalized_shape = _normalized_shape(normalized_shape)
        self.eps = layer_norm_eps(eps)
        dtype = weight_dtype(dtype)
        shape = self.normalized_shape
        self.weight = Parameter(np.ones(shape, dtype)) if elementwise_affine else None
        self.bias = Parameter(np.zeros(shape, dtype)) if elementwise_affine and bias else None
        self._dtype = dtype
        self._xh = self._rstd = None

    @property
    def dim(self) -> int:
        """D: the values each row is normalised over."""
        return int(np.prod(self.normalized_shape))

    def _check(self, x):
        k = len(self.normalized_shape)
        if x.ndim <= k or x.shape[-k:] != self.normalized_shape:
            raise ValueError(f"{self.short_name()} expects inputs of shape (N, ..., "
                             f"{', '.join(map(str, self.normalized_shape))}), got {x.shape}")
        dtype = self.weight.data.dtype if self.weight is not None else self._dtype
        return x if x.dtype == dtype else x.astype(dtype)

    def astype(self, dtype):
        self._dtype = np.dtype(dtype)            # the compute dtype when there is no weight
        return super().astype(dtype)

    def forward(self, x):
        x = self._check(x)
        d = self.dim
        xc = x.reshape(-1, d) - x.reshape(-1, d).mean(axis=1, keepdims=True)   # (M, D)
        var = np.einsum("ij,ij->i", xc, xc) / xc.dtype.type(d)                  # (M,)
        rstd = 1.0 / np.sqrt(var + xc.dtype.type(self.eps))                      # (M,)
        xc *= rstd[:, None]                                                      # xh
        self._xh, self._rstd, self._shape = xc, rstd, x.shape
        if self.weight is None:              # a copy: xh is kept, the output is fresh
            return xc.reshape(x.shape).copy()
        y = xc * self.weight.data.reshape(-1)                                    # (M, D)
        if self.bias is not None:
            y += self.bias.data.reshape(-1)
        return y.reshape(x.shape)

    def _rows(self, dout):
        if self._xh is None:
            raise RuntimeError(f"{self.short_name()}: backward needs a forward first")
        return dout.reshape(-1, self.dim)                                        # (M, D)

    def accumulate_grads(self, dout):
        d = self._rows(dout)
        if self.weight is not None:
            dgamma = np.einsum("ij,ij->j", d, self._xh)                          # (D,)
            self.weight.accumulate(dgamma.reshape(self.normalized_shape))
        if self.bias is not None:
            self.bias.accumulate((ones(len(d), d.dtype) @ d).reshape(self.normalized_shape))

    def input_grad(self, dout):
        """dx = rstd (g - mean(g) - xh mean(g xh)), g = dout gamma, means per row."""
        d, xh = self._rows(dout), self._xh
        g = d * self.weight.data.reshape(-1) if self.weight is not None else d   # (M, D)
        n = xh.dtype.type(self.dim)
        mean_g = g.sum(axis=1) / n                                               # (M,)
        mean_gx = np.einsum("ij,ij->i", g, xh) / n                               # (M,)
        dx = xh * -mean_gx[:, None]                                              # (M, D)
        dx += g
        dx -= mean_g[:, None]
        dx *= self._rstd[:, None]
        return dx.reshape(self._shape)

    def output_shape(self, in_shape):
        in_shape = tuple(in_shape)
        k = len(self.normalized_shape)
        if len(in_shape) < k or in_shape[-k:] != self.normalized_shape:
            raise ConfigError(f"{self.short_name()} normalises trailing axes "
                              f"{self.normalized_shape}, but its input has shape {in_shape}")
        return in_shape

    def short_name(self):
        return f"LayerNorm({', '.join(map(str, self.normalized_shape))})"

    def spec(self):
        return {"normalized_shape": list(self.normalized_shape), "eps": self.eps,
                "elementwise_affine": self.weight is not None, "bias": self.bias is not None}

    def extra_repr(self):
        return (f"{self.normalized_shape}, eps={self.eps}, "
                f"elementwise_affine={self.weight is not None}, bias={self.bias is not None}")
