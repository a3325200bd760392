"""Flatten, the layer that only changes the shape of its input."""
from __future__ import annotations

import math

from ..errors import ConfigError
from .catalog import Arch, register_layer
from .module import Module


def _flatten_keras(k, m, shape):
    """An image is NHWC in Keras: Permute to NCHW first, so it flattens in bareprop's
    (C, H, W) order and the next Dense takes bareprop's weights unchanged."""
    image = len(shape) == 3
    return ([k.layers.Permute((3, 1, 2))] if image else []) + [k.layers.Flatten()]


@register_layer(arch=Arch("flatten"), onnx=lambda g, m, x: g.node("Flatten", [x], axis=1),
                torch=lambda t, m: t.nn.Flatten(), keras=_flatten_keras, shows_output=False)
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
