"""Layers that only change the shape of their input."""
from __future__ import annotations

import math

from ..errors import ConfigError
from .module import Module


class Flatten(Module):
    """y = x.reshape(N, -1): (N, d1, d2, ...) -> (N, d1 * d2 * ...), as torch.nn.Flatten().

    A view, not a copy; dx = dout.reshape(x.shape). Images stay (N, H, W) or
    (N, C, H, W) until a model flattens them here.
    """

    def forward(self, x):
        self._shape = x.shape
        return x.reshape(x.shape[0], -1)                 # (N, D)

    def input_grad(self, dout):
        return dout.reshape(self._shape)                 # (N, d1, d2, ...)

    def output_shape(self, in_shape):
        if len(in_shape) == 0:
            raise ConfigError("Flatten needs inputs with at least one axis besides the batch")
        return (math.prod(in_shape),)
