"""Rows and Cols: an image read as a sequence, for the recurrent layers (recurrent.py).

A grey image (1, H, W) or (H, W) becomes H steps of W features (its rows, top to
bottom) or W steps of H features (its columns, left to right), so
``rows lstm(128) linear(10)`` reads an MNIST digit row by row, as the classic
Keras and PyTorch examples do. Neither copies in the forward pass (a reshape, and a
transposed view for Cols); each backward is the inverse rearrangement of dout.

Not here: the recurrent layers (recurrent.py), flattening (flatten.py).
"""
from __future__ import annotations

import numpy as np

from ..errors import ConfigError
from .catalog import Arch, register_layer
from .module import Module


def _image_hw(name: str, shape) -> tuple[int, int]:
    """(H, W) of a grey image shape (1, H, W) or (H, W), or a one-line ConfigError."""
    shape = tuple(shape)
    if len(shape) == 2 or (len(shape) == 3 and shape[0] == 1):
        return shape[-2], shape[-1]
    what = (f"{shape[0]} channels" if len(shape) == 3 else
            "flat features" if len(shape) == 1 else f"{len(shape)} axes")
    raise ConfigError(f"{name} reads a grey image (1, H, W) or (H, W) as a sequence, but "
                      f"its input has shape {shape} ({what})")


def _as_hw(g, x):
    """ONNX: (N, 1, H, W) or (N, H, W) -> (N, H, W), W read off the input's shape, so the
    same nodes serve both (Reshape to (0, -1, W): N kept, H inferred)."""
    w = g.node("Shape", [x], start=-1)                             # (1,): W
    n_h = g.const("keep_n_infer_h", np.array([0, -1], np.int64))
    return g.node("Reshape", [x, g.node("Concat", [n_h, w], axis=0)])


def _rows_keras(k, m, shape):
    h, w = _image_hw("Rows", shape)
    return [k.layers.Reshape((h, w))]                 # Keras' (H, W, 1) or (H, W) -> (H, W)


def _cols_keras(k, m, shape):
    return _rows_keras(k, m, shape) + [k.layers.Permute((2, 1))]


def _grey(name: str, x):
    """Grey images (N, 1, H, W) or (N, H, W) as (N, H, W), a view; ValueError naming the
    layer for anything else."""
    if x.ndim == 4 and x.shape[1] == 1:
        return x.reshape(x.shape[0], x.shape[2], x.shape[3])
    if x.ndim != 3:
        raise ValueError(f"{name} expects images (N, 1, H, W) or (N, H, W), got {x.shape}")
    return x


@register_layer(arch=Arch("rows"), onnx=lambda g, m, x: _as_hw(g, x),
                torch=lambda t, m: t.nn.Flatten(1, -2), keras=_rows_keras, shows_output=False)
class Rows(Module):
    """An image as the sequence of its rows: (N, 1, H, W) or (N, H, W) -> (N, H, W),
    H steps of W features: y[n, t, :] = x[n, (0,) t, :]. A view; dx = dout.reshape(x.shape).

    >>> import numpy as np, bareprop as bp
    >>> bp.Rows()(np.zeros((2, 1, 28, 28))).shape
    (2, 28, 28)
    """

    def forward(self, x):
        self._shape = x.shape
        return _grey("Rows", x)

    def input_grad(self, dout):
        return dout.reshape(self._shape)

    def output_shape(self, in_shape):
        return _image_hw("Rows", in_shape)


@register_layer(arch=Arch("cols"),
                onnx=lambda g, m, x: g.node("Transpose", [_as_hw(g, x)], perm=[0, 2, 1]),
                torch=lambda t, m: t.recurrent(m), keras=_cols_keras, shows_output=False)
class Cols(Module):
    """An image as the sequence of its columns: (N, 1, H, W) or (N, H, W) -> (N, W, H),
    W steps of H features: y[n, t, :] = x[n, (0,) :, t]. A transposed view;
    dx = dout transposed back, reshaped to x's shape.

    >>> import numpy as np, bareprop as bp
    >>> bp.Cols()(np.zeros((2, 1, 28, 20))).shape
    (2, 20, 28)
    """

    def forward(self, x):
        self._shape = x.shape
        return _grey("Cols", x).transpose(0, 2, 1)                     # (N, W, H)

    def input_grad(self, dout):
        return dout.transpose(0, 2, 1).reshape(self._shape)

    def output_shape(self, in_shape):
        h, w = _image_hw("Cols", in_shape)
        return (w, h)
