"""Dropout and BatchNorm1d: layers whose behaviour depends on train/eval mode."""
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
        if not (self.freeze_mask and self._mask is not None and self._mask.shape == x.shape):
            keep = self.rng.random(x.shape, dtype=np.float32) >= self.p
            self._mask = keep.astype(x.dtype) * x.dtype.type(1.0 / (1.0 - self.p))  # (N, D)
        return x * self._mask

    preserves_shape = True

    def input_grad(self, dout):
        return dout if self._mask is None else dout * self._mask

    def spec(self):
        return {"p": self.p}

    def extra_repr(self):
        return f"p={self.p}"


class BatchNorm1d(Module):
    """Batch normalisation over the batch axis (Ioffe & Szegedy 2015), as torch.nn.BatchNorm1d.

    train: mu, var = mean and biased variance of x over N;  xh = (x - mu) / sqrt(var + eps)
           y = gamma xh + beta;  running stats <- (1 - momentum) running + momentum batch
           (running_var takes the unbiased variance, N / (N - 1) var, as torch)
    eval:  xh uses running_mean / running_var.
    Backward (train), with g = dout * gamma:
        dx = (1 / sqrt(var + eps)) (g - mean(g) - xh mean(g xh))
        dgamma = sum(dout xh),  dbeta = sum(dout)
    """

    _buffer_names = ("running_mean", "running_var")

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1,
                 dtype=np.float32):
        self.num_features = positive_int("num_features", num_features)
        self.eps, self.momentum = float(eps), float(momentum)
        dtype = np.dtype(dtype)
        self.weight = Parameter(np.ones(num_features, dtype))
        self.bias = Parameter(np.zeros(num_features, dtype))
        self.running_mean = np.zeros(num_features, dtype)
        self.running_var = np.ones(num_features, dtype)

    def forward(self, x):
        if x.ndim != 2 or x.shape[1] != self.num_features:
            raise ValueError(f"BatchNorm1d expects (N, {self.num_features}), got {x.shape}")
        if self.training:
            n = x.shape[0]
            if n < 2:
                raise ValueError("BatchNorm1d needs more than 1 example per batch in training "
                                 "(use a batch size >= 2 or --drop-last)")
            mu = x.mean(axis=0)                                   # (D,)
            var = x.var(axis=0)                                   # (D,) biased
            m = self.momentum
            self.running_mean *= 1 - m
            self.running_mean += m * mu
            self.running_var *= 1 - m
            self.running_var += (m * n / (n - 1)) * var
        else:
            mu, var = self.running_mean, self.running_var
        inv_std = 1.0 / np.sqrt(var + self.eps)                   # (D,)
        xh = (x - mu) * inv_std                                   # (N, D)
        self._xh, self._inv_std, self._train_mode = xh, inv_std, self.training
        return xh * self.weight.data + self.bias.data

    def accumulate_grads(self, dout):
        self.weight.accumulate((dout * self._xh).sum(axis=0))    # (D,)
        self.bias.accumulate(dout.sum(axis=0))                   # (D,)

    def input_grad(self, dout):
        xh, inv_std = self._xh, self._inv_std
        g = dout * self.weight.data                               # (N, D)
        if not self._train_mode:
            return g * inv_std
        return inv_std * (g - g.mean(axis=0) - xh * (g * xh).mean(axis=0))

    def input_shape_hint(self):
        return (self.num_features,)

    def short_name(self):
        return f"BatchNorm1d({self.num_features})"

    def spec(self):
        return {"num_features": self.num_features, "eps": self.eps, "momentum": self.momentum}

    def extra_repr(self):
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}"
