"""Pooling over (N, C, H, W): MaxPool2d, AvgPool2d, GlobalAvgPool2d, as in torch.nn.

A pooling window is a set of kh*kw taps; tap (i, j) of every window at once is one
strided view of the input, ``x[:, :, i::sh, j::sw]`` cut to (OH, OW). So each pool is
a loop over taps of whole-array operations, and its backward adds each tap's share of
dout back through the same view (overlapping windows, stride < kernel, accumulate).
"""
from __future__ import annotations

import numpy as np

from ..errors import ConfigError
from .conv import as_pair, check_image_shape, image_input_error
from .module import Module


class _Pool2d(Module):
    """Shared shape logic of the windowed pools."""

    def __init__(self, kernel_size, stride=None):
        self.kernel_size = as_pair("kernel_size", kernel_size)
        self.stride = self.kernel_size if stride is None else as_pair("stride", stride)

    def output_shape(self, in_shape):
        c, h, w = check_image_shape(self.short_name(), None, in_shape)
        (kh, kw), (sh, sw) = self.kernel_size, self.stride
        if h < kh or w < kw:
            raise ConfigError(f"{self.short_name()}: the {kh}x{kw} window is larger than its "
                              f"input {h}x{w}; use a smaller window or fewer layers before it")
        return (c, (h - kh) // sh + 1, (w - kw) // sw + 1)

    def _check(self, x):
        if x.ndim != 4:
            raise ValueError(image_input_error(self.short_name(), x.shape[1] if x.ndim > 1 else 1,
                                               x.shape).replace("(N, 1, H, W)", "(N, C, H, W)"))
        return self.output_shape(x.shape[1:])

    def _taps(self, x, oh, ow):
        """(t, view) for every tap of the window, row-major: view (N, C, OH, OW) of x."""
        (kh, kw), (sh, sw) = self.kernel_size, self.stride
        for i in range(kh):
            for j in range(kw):
                yield i * kw + j, x[:, :, i:i + sh * (oh - 1) + 1:sh, j:j + sw * (ow - 1) + 1:sw]

    def short_name(self):
        k = self.kernel_size
        k = k[0] if k[0] == k[1] else k
        return f"{type(self).__name__}({k})"

    def spec(self):
        return {"kernel_size": list(self.kernel_size), "stride": list(self.stride)}

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}"


class MaxPool2d(_Pool2d):
    """y[n, c, p, q] = max over the window at (s_h p, s_w q) of x.

    Shape: x (N, C, H, W) -> y (N, C, OH, OW), OH = (H - kh) // s_h + 1 (floor, as PyTorch);
    stride defaults to the kernel size.

    Backward: the max is x at one tap t*(window), so dy routes to that pixel alone:
        dx[tap t*] += dy,  every other pixel of the window gets 0.
    Ties go to the first maximal tap in row-major order, as PyTorch's CPU kernel; a NaN
    in the window makes the output NaN (propagated, as PyTorch).
    """

    def forward(self, x):
        _, oh, ow = self._check(x)
        taps = self._taps(x, oh, ow)
        _, first = next(taps)
        y = first.copy()                                          # (N, C, OH, OW)
        arg = np.zeros(y.shape, np.uint8) if self.training else None
        for t, v in taps:
            if arg is not None:
                np.copyto(arg, t, where=v > y)                    # strict: first tap wins ties
            np.maximum(y, v, out=y)                               # NaN propagates
        self._cache = (x.shape, arg, oh, ow)
        return y

    def input_grad(self, dout):
        shape, arg, oh, ow = self._cache
        if arg is None:
            raise RuntimeError(f"{self.short_name()}: backward needs a forward in training mode")
        dx = np.zeros(shape, dout.dtype)                          # (N, C, H, W)
        for t, view in self._taps(dx, oh, ow):
            view += dout * (arg == t)
        return dx


class AvgPool2d(_Pool2d):
    """y[n, c, p, q] = mean of x over the window at (s_h p, s_w q).

    Shape: as MaxPool2d. Backward: every pixel of a window gets dy / (kh kw) (summed
    over the windows that contain it when they overlap).
    """

    def forward(self, x):
        _, oh, ow = self._check(x)
        taps = self._taps(x, oh, ow)
        _, first = next(taps)
        y = first.copy()
        for _, v in taps:
            y += v
        y *= y.dtype.type(1.0 / (self.kernel_size[0] * self.kernel_size[1]))
        self._cache = (x.shape, oh, ow)
        return y

    def input_grad(self, dout):
        shape, oh, ow = self._cache
        share = dout * dout.dtype.type(1.0 / (self.kernel_size[0] * self.kernel_size[1]))
        dx = np.zeros(shape, dout.dtype)
        for _, view in self._taps(dx, oh, ow):
            view += share
        return dx


class GlobalAvgPool2d(Module):
    """y[n, c] = mean over (h, w) of x[n, c, h, w] (Keras' GlobalAveragePooling2D; in
    PyTorch, AdaptiveAvgPool2d(1) followed by Flatten).

    Shape: x (N, C, H, W) -> y (N, C). Backward: dx[n, c, h, w] = dy[n, c] / (H W).
    """

    def forward(self, x):
        if x.ndim != 4:
            raise ValueError(image_input_error("GlobalAvgPool2d", x.shape[1] if x.ndim > 1 else 1,
                                               x.shape))
        self._shape = x.shape
        return x.mean(axis=(2, 3))                                # (N, C)

    def input_grad(self, dout):
        n, c, h, w = self._shape
        dx = np.empty(self._shape, dout.dtype)
        dx[...] = (dout * dout.dtype.type(1.0 / (h * w)))[:, :, None, None]
        return dx

    def output_shape(self, in_shape):
        c, _, _ = check_image_shape("GlobalAvgPool2d", None, in_shape)
        return (c,)
