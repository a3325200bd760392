"""Dropout, Dropout2d, BatchNorm1d and BatchNorm2d: layers whose behaviour depends on
train/eval mode."""
from __future__ import annotations

import numpy as np

from ..errors import ConfigError, positive_int
from .module import Module
from .parameter import Parameter


class Dropout(Module):
    """Inverted dropout (Srivastava et al. 2014).

    train: y = x * m / (1 - p), m_i ~ Bernoulli(1 - p);  dx = dout * m / (1 - p)
    eval:  y = x (no rescaling needed: the 1/(1-p) was applied in training)

    The mask comes from ``self.rng`` (a numpy Generator). ``fit`` reseeds it from
    (seed, epoch, layer) at every epoch so a resumed run draws the same masks.
    ``freeze_mask`` reuses the last mask (gradient checks need a fixed function).
    """

    def __init__(self, p: float = 0.5, rng=None):
        if not 0.0 <= p < 1.0:
            raise ConfigError(f"dropout probability must be in [0, 1), got {p}")
        self.p = float(p)
        self.rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
        self.freeze_mask = False
        self._mask = None

    def reseed(self, rng: np.random.Generator) -> None:
        self.rng = rng

    def forward(self, x):
        if not self.training or self.p == 0.0:
            self._mask = None
            return x
        shape = self._mask_shape(x)
        if not (self.freeze_mask and self._mask is not None and self._mask.shape == shape):
            keep = self.rng.random(shape, dtype=np.float32) >= self.p
            self._mask = keep.astype(x.dtype) * x.dtype.type(1.0 / (1.0 - self.p))  # (N, D)
        return x * self._mask

    preserves_shape = True

    def input_grad(self, dout):
        return dout if self._mask is None else dout * self._mask

    def _mask_shape(self, x):
        return x.shape

    def spec(self):
        return {"p": self.p}

    def extra_repr(self):
        return f"p={self.p}"


class Dropout2d(Dropout):
    """Channel dropout (Tompson et al. 2015), as torch.nn.Dropout2d on (N, C, H, W):
    whole feature maps are kept or zeroed, since neighbouring pixels are too correlated
    for pixel dropout to regularise a conv layer.

    train: y = x * m / (1 - p), m (N, C, 1, 1) ~ Bernoulli(1 - p) broadcast over H, W
    Backward: dx = dout * m / (1 - p).
    """

    def _mask_shape(self, x):
        if x.ndim != 4:
            raise ValueError(f"Dropout2d expects images of shape (N, C, H, W), got {x.shape}")
        return x.shape[:2] + (1, 1)


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
            n = x.size // self.num_features                       # m: values per feature
            if n < 2:
                what = "example per batch" if self._ndim == 2 else "value per channel"
                raise ConfigError(f"{type(self).__name__} needs more than 1 {what} in training "
                                  "(use a batch size >= 2 or --drop-last)")
            mu = self._sum(x) / x.dtype.type(n)                   # (D,)
            xh = x - b(mu)                                        # x - mu, x's shape
            var = self._dot(xh, xh) / x.dtype.type(n)             # (D,) biased, two-pass
            m = self.momentum
            self.running_mean *= 1 - m
            self.running_mean += m * mu
            self.running_var *= 1 - m
            self.running_var += (m * n / (n - 1)) * var
        else:
            mu, var = self.running_mean, self.running_var
            xh = x - b(mu)
        inv_std = 1.0 / np.sqrt(var + self.eps)                   # (D,)
        xh *= b(inv_std)                                          # xh = (x - mu) / std
        self._xh, self._inv_std, self._train_mode = xh, inv_std, self.training
        self._sums = None
        y = xh * b(self.weight.data)
        y += b(self.bias.data)
        return y

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


class BatchNorm1d(_BatchNorm):
    """Batch normalisation of (N, D) features, statistics over N (see _BatchNorm)."""

    def input_shape_hint(self):
        return (self.num_features,)


class BatchNorm2d(_BatchNorm):
    """Batch normalisation of (N, C, H, W) images, statistics per channel over N, H and W
    (see _BatchNorm), as torch.nn.BatchNorm2d."""

    _ndim, _axes = 4, (0, 2, 3)
    preserves_shape = False

    def output_shape(self, in_shape):
        from .conv import check_image_shape

        return check_image_shape(self.short_name(), self.num_features, in_shape)
