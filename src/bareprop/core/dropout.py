"""Dropout and Dropout2d: the identity at inference, random masks in training.

Not here: batch normalisation (norm.py), the other layer whose behaviour depends on
train/eval mode.
"""
from __future__ import annotations

import math

import numpy as np

from ..errors import ConfigError
from .catalog import Arch, Arg, register_layer
from .module import Module


def _dropout(arch: str, torch_name: str, **arch_kw) -> dict:
    """The declarations of a dropout layer: no ONNX node (the identity at inference), and
    twins that replay the mask bareprop drew (their own masks would differ)."""
    return dict(arch=Arch(arch, Arg("p", "number", 0.5), **arch_kw), onnx=lambda g, m, x: x,
                torch=lambda t, m: t.replay(m) or getattr(t.nn, torch_name)(m.p),
                keras=lambda k, m, shape: [k.MaskReplay(m)], shows_output=False)


def bernoulli_keep(rng: np.random.Generator, shape, p: float) -> np.ndarray:
    """A boolean array of ``shape``, each entry True with probability 1 - p: 32 random bits
    per entry, kept when they read at least round(p 2^32) (within 2^-33 of 1 - p).

    The bits come straight from the generator's raw 64-bit output, two entries per word:
    half the time of ``rng.random(shape, dtype=float32) >= p``, which converts each draw
    to a float first (dropout's masks were a fifth of a small transformer's step)."""
    n = math.prod(shape)
    words = rng.bit_generator.random_raw((n + 1) // 2)                  # uint64
    bits = words.view(np.uint32)[:n].reshape(shape)
    return bits >= np.uint32(min(round(p * 2.0 ** 32), 2 ** 32 - 1))


def _channels_only(shape) -> dict:
    if len(shape) != 3:
        raise ConfigError(f"dropout2d drops whole channels of images (C, H, W), but its "
                          f"input has shape {tuple(shape)}; use dropout here")
    return {}


@register_layer(**_dropout("dropout", "Dropout"))
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

    @property
    def mask(self) -> np.ndarray | None:
        """The mask of the last training forward, already scaled by 1/(1-p) (None after an
        eval forward or with p = 0): what a twin replays."""
        return self._mask

    def forward(self, x):
        if not self.training or self.p == 0.0:
            self._mask = None
            return x
        shape = self._mask_shape(x)
        if not (self.freeze_mask and self._mask is not None and self._mask.shape == shape):
            keep = bernoulli_keep(self.rng, shape, self.p)
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


@register_layer(**_dropout("dropout2d", "Dropout2d", sizes=_channels_only))
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
