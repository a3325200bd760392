"""BatchNorm1d and BatchNorm2d: batch normalisation, whose statistics depend on
train/eval mode.

Not here: dropout (dropout.py).
"""
from __future__ import annotations

import math

import numpy as np

from ..errors import ConfigError, positive_int
from .catalog import Arch, Arg, register_layer, width
from .image import check_image_shape
from .module import Module
from .parameter import Parameter


def _bn_params(s):
    d = width(s, "num_features")
    return {name: (d,) for name in ("weight", "bias", "running_mean", "running_var")}


def _batchnorm(torch_name: str, rank: int) -> dict:
    """The declarations of a batch norm over inputs of ``rank`` axes (batch excluded):
    ``batchnorm`` in --arch is BatchNorm1d for (D,) and BatchNorm2d for (C, H, W)."""
    return dict(
        arch=Arch("batchnorm", Arg("eps", "number", 1e-5), Arg("momentum", "number", 0.1),
                  aliases=("bn",), sizes=lambda shape: {"num_features": shape[0]},
                  when=lambda shape: len(shape) == rank),
        params=_bn_params,
        # eval: the running statistics
        onnx=lambda g, m, x: g.node("BatchNormalization", [x, *g.params(
            "weight", "bias", "running_mean", "running_var")], epsilon=m.eps),
        torch=lambda t, m: getattr(t.nn, torch_name)(m.num_features, eps=m.eps,
                                                     momentum=m.momentum),
        keras=lambda k, m, shape: [k.TorchBatchNorm(m.momentum, axis=-1, epsilon=m.eps)],
        # torch counts batches beside the running statistics; bareprop always uses its
        # momentum, and torch reads the count only when momentum is None: 0 here
        torch_extra=lambda m: {"num_batches_tracked": np.zeros((), np.int64)})


class _BatchNorm(Module):
    """Batch normalisation (Ioffe & Szegedy 2015) over every axis but the feature axis 1:
    one core for BatchNorm1d ((N, D): statistics over N) and BatchNorm2d ((N, C, H, W):
    over N, H, W per channel), as torch.nn.BatchNorm1d / BatchNorm2d.

    train: mu, var = mean and biased variance of x over the reduced axes (m values each)
           xh = (x - mu) / sqrt(var + eps);  y = gamma xh + beta
           running stats <- (1 - momentum) running + momentum batch
           (running_var takes the unbiased variance, m / (m - 1) var, as torch)
    eval:  xh uses running_mean / running_var.
    Backward (train), with g = dout * gamma and means over the same axes:
        dx = (1 / sqrt(var + eps)) (g - mean(g) - xh mean(g xh))
        dgamma = sum(dout xh),  dbeta = sum(dout)
    """

    _buffer_names = ("running_mean", "running_var")
    #: its output is a new array nobody else keeps: a ReLU after it may work in place
    fresh_output = True
    #: the rank of x this layer takes (batch axis included) and the axes it reduces
    _ndim, _axes = 2, (0,)

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1,
                 dtype=np.float32):
        self.num_features = positive_int("num_features", num_features)
        self.eps, self.momentum = float(eps), float(momentum)
        if not self.eps > 0 or not 0 <= self.momentum <= 1:
            raise ConfigError(f"{type(self).__name__} needs eps > 0 and momentum in [0, 1], "
                              f"got eps={eps}, momentum={momentum}")
        self._xh = self._sums = None
        dtype = np.dtype(dtype)
        self.weight = Parameter(np.ones(num_features, dtype))
        self.bias = Parameter(np.zeros(num_features, dtype))
        self.running_mean = np.zeros(num_features, dtype)
        self.running_var = np.ones(num_features, dtype)

    def _b(self, v):
        """A per-feature vector (D,) shaped to broadcast against x."""
        return v.reshape((-1,) + (1,) * (self._ndim - 2))

    def _check(self, x):
        if x.ndim != self._ndim or x.shape[1] != self.num_features:
            want = ("N", self.num_features) + ("H", "W")[:self._ndim - 2]
            raise ValueError(f"{type(self).__name__} expects input of shape "
                             f"({', '.join(map(str, want))}), got {x.shape}")

    def _sum(self, a):
        """Per-feature sums of ``a`` (x's shape) -> (D,). One GEMV with a ones vector over
        the batch axis, then the spatial axis: ~5x faster than ``a.sum(axis=(0, 2, 3))``
        at (128, 32, 28, 28)."""
        n = a.shape[0]
        return (np.ones(n, a.dtype) @ a.reshape(n, -1)).reshape(self.num_features, -1).sum(axis=1)

    def _dot(self, a, b):
        """Per-feature sums of a * b -> (D,), in one pass without the product array."""
        n, d = a.shape[:2]
        return np.einsum("ncl,ncl->c", a.reshape(n, d, -1), b.reshape(n, d, -1))

    def forward(self, x):
        self._check(x)
        if x.dtype != self.weight.data.dtype:       # uint8 pixels, float64 data: compute
            x = x.astype(self.weight.data.dtype)    # in the layer's dtype, as Linear does
        b = self._b
        if self.training:
            n = self.count(x.shape)                               # m: values per feature
            mu = self._sum(x) / x.dtype.type(n)                   # (D,)
            xh = x - b(mu)                                        # x - mu, x's shape
            var = self._dot(xh, xh) / x.dtype.type(n)             # (D,) biased, two-pass
            self.update_running(mu, var, n)
        else:
            mu, var = self.running_mean, self.running_var
            xh = x - b(mu)
        inv_std = self.inv_std(var)                               # (D,)
        xh *= b(inv_std)                                          # xh = (x - mu) / std
        self._xh, self._inv_std, self._train_mode = xh, inv_std, self.training
        self._sums = None
        y = xh * b(self.weight.data)
        y += b(self.bias.data)
        return y

    def count(self, shape) -> int:
        """m, the values per feature of a training batch of ``shape``; more than one, or a
        one-line ConfigError."""
        n = math.prod(shape) // self.num_features
        if n < 2:
            what = "example per batch" if self._ndim == 2 else "value per channel"
            raise ConfigError(f"{type(self).__name__} needs more than 1 {what} in training "
                              "(use a batch size >= 2 or --drop-last)")
        return n

    def update_running(self, mu, var, n: int) -> None:
        """running <- (1 - momentum) running + momentum batch (the variance unbiased)."""
        m = self.momentum
        self.running_mean *= 1 - m
        self.running_mean += m * mu
        self.running_var *= 1 - m
        self.running_var += (m * n / (n - 1)) * var

    def inv_std(self, var):
        """1 / sqrt(var + eps), (D,) in var's dtype."""
        return 1.0 / np.sqrt(var + self.eps)

    def _grad_sums(self, dout):
        """(sum dout, sum dout * xh) per feature: dbeta and dgamma, which dx needs too."""
        if self._xh is None:
            raise RuntimeError(f"{self.short_name()}: backward needs a forward first")
        if self._sums is None or self._sums[0] is not dout:
            self._sums = (dout, self._sum(dout), self._dot(dout, self._xh))
        return self._sums[1:]

    def accumulate_grads(self, dout):
        dbeta, dgamma = self._grad_sums(dout)
        self.weight.accumulate(dgamma.copy())                     # (D,)
        self.bias.accumulate(dbeta.copy())                        # (D,)

    def input_grad(self, dout):
        """With k = gamma / std and means over the reduced axes (m values):
        dx = k (dout - mean(dout) - xh mean(dout xh))   (train)
        dx = k dout                                      (eval: mu, std are constants)
        (mean(g) = gamma mean(dout) and mean(g xh) = gamma mean(dout xh) for g = dout gamma,
        so the class docstring's form is this one.)"""
        b, xh = self._b, self._xh
        if xh is None:
            raise RuntimeError(f"{self.short_name()}: backward needs a forward first")
        k = self.weight.data * self._inv_std                      # (D,)
        if not self._train_mode:
            return dout * b(k)
        dbeta, dgamma = self._grad_sums(dout)
        m = xh.dtype.type(xh.size // self.num_features)
        dx = xh * b(-k * dgamma / m)                              # x's shape
        dx += dout * b(k)
        dx -= b(k * dbeta / m)
        self._sums = None
        return dx

    def short_name(self):
        return f"{type(self).__name__}({self.num_features})"

    def spec(self):
        return {"num_features": self.num_features, "eps": self.eps, "momentum": self.momentum}

    def extra_repr(self):
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}"


@register_layer(**_batchnorm("BatchNorm1d", 1))
class BatchNorm1d(_BatchNorm):
    """Batch normalisation of (N, D) features, statistics over N (see _BatchNorm)."""

    def input_shape_hint(self):
        return (self.num_features,)


@register_layer(**_batchnorm("BatchNorm2d", 3))
class BatchNorm2d(_BatchNorm):
    """Batch normalisation of (N, C, H, W) images, statistics per channel over N, H and W
    (see _BatchNorm), as torch.nn.BatchNorm2d."""

    _ndim, _axes = 4, (0, 2, 3)
    preserves_shape = False

    def output_shape(self, in_shape):
        return check_image_shape(self.short_name(), self.num_features, in_shape)
