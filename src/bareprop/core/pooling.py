"""Pooling over (N, C, H, W): MaxPool2d, AvgPool2d, GlobalAvgPool2d, as in torch.nn.

A pooling window is a set of kh*kw taps; tap (i, j) of every window at once is one
strided view of the input, ``x[:, :, i::sh, j::sw]`` cut to (OH, OW). So each pool is
a loop over taps of whole-array operations, and its backward adds each tap's share of
dout back through the same view (overlapping windows, stride < kernel, accumulate).
"""
from __future__ import annotations

import numpy as np

from ..errors import ConfigError
from .catalog import Arch, Arg, register_layer
from .image import as_pair, check_image_shape, image_input_error
from .module import Module
from .threads import over_batch


class _Pool2d(Module):
    """Shared shape logic of the windowed pools."""

    def __init__(self, kernel_size, stride=None):
        self.kernel_size = as_pair("kernel_size", kernel_size)
        self.stride = self.kernel_size if stride is None else as_pair("stride", stride)
        self._cache = None

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

    def _views(self, a, oh, ow, axis):
        """The window's taps along one axis of a (2: rows, 3: columns), each a strided view
        cut to the OH rows (or OW columns) of the output."""
        k, s, n = (self.kernel_size[0], self.stride[0], oh) if axis == 2 else \
            (self.kernel_size[1], self.stride[1], ow)
        return [a[(slice(None),) * axis + (slice(t, t + s * (n - 1) + 1, s),)] for t in range(k)]

    def _taps(self, x, oh, ow):
        """Every tap of the window, row-major: views (N, C, OH, OW) of x."""
        return [v for row in self._views(x, oh, ow, 2) for v in self._views(row, oh, ow, 3)]

    def short_name(self):
        k = self.kernel_size
        k = k[0] if k[0] == k[1] else k
        return f"{type(self).__name__}({k})"

    def spec(self):
        return {"kernel_size": list(self.kernel_size), "stride": list(self.stride)}

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}"


def _max_taps(views, out, arg) -> None:
    """out = running max over same-shaped views; arg = for each element the index of the
    first view holding it (strict ``>``: the first maximal tap wins ties, as PyTorch).

    Two views (the usual 2x2 pool) take two passes, with ``arg`` the bool ``v1 > v0``."""
    first, rest = views[0], views[1:]
    if len(rest) == 1:
        np.maximum(first, rest[0], out=out)                     # NaN propagates
        np.greater(rest[0], first, out=arg)
        return
    np.copyto(out, first)
    arg[...] = 0
    for t, v in enumerate(rest, 1):
        np.copyto(arg, t, where=v > out)
        np.maximum(out, v, out=out)


def _route(dout, arg, views, disjoint: bool) -> None:
    """Backward of _max_taps: views[t] += dout where arg == t (``=`` when the views are
    disjoint and start at zero: one pass fewer)."""
    if arg.dtype == np.bool_:                                    # two taps
        if disjoint:
            np.multiply(dout, arg, out=views[1])
            np.subtract(dout, views[1], out=views[0])            # exact: dout or 0
        else:
            hit = dout * arg
            views[1] += hit
            views[0] += dout - hit
        return
    for t, v in enumerate(views):
        v += dout * (arg == t)


def _pool(arch: str, onnx_op: str, torch_name: str, keras_name: str) -> dict:
    """The declarations of a windowed pool: no padding and a floored output size, as
    PyTorch's and Keras' ("valid") defaults and ONNX's."""
    return dict(
        arch=Arch(arch, Arg("kernel_size", "pair"), Arg("stride", "stride", None),
                  aliases=(arch + "2d",)),
        onnx=lambda g, m, x: g.node(onnx_op, [x], kernel_shape=list(m.kernel_size),
                                    strides=list(m.stride)),
        torch=lambda t, m: getattr(t.nn, torch_name)(m.kernel_size, m.stride),
        keras=lambda k, m, shape: [getattr(k.layers, keras_name)(m.kernel_size, m.stride,
                                                                 "valid")])


@register_layer(**_pool("maxpool", "MaxPool", "MaxPool2d", "MaxPooling2D"))
class MaxPool2d(_Pool2d):
    """y[n, c, p, q] = max over the window at (s_h p, s_w q) of x.

    Shape: x (N, C, H, W) -> y (N, C, OH, OW), OH = (H - kh) // s_h + 1 (floor, as PyTorch);
    stride defaults to the kernel size.

    Backward: the max is x at one tap t*(window), so dy routes to that pixel alone:
        dx[tap t*] += dy,  every other pixel of the window gets 0.
    Ties go to the first maximal tap in row-major order, as PyTorch's CPU kernel; a NaN
    in the window makes the output NaN (propagated, as PyTorch), though its gradient may
    go to another tap than PyTorch's (the loss is NaN by then anyway).

    Computed separably, which the max allows: first the max over each window's kw
    columns for every input row (h, with the winning column), then the max of kh such
    row maxima (with the winning row). The first maximal row, then its first maximal
    column, is exactly the first maximal tap in row-major order. For the 2x2 pool that
    is four whole-array passes forward instead of a pass per tap.
    """

    def forward(self, x):
        _, oh, ow = self._check(x)
        (kh, kw), sh = self.kernel_size, self.stride[0]
        n, c = x.shape[:2]
        rows = sh * (oh - 1) + kh                                # input rows any window reads
        h = np.empty((n, c, rows, ow), x.dtype)                  # max over each row's taps
        y = np.empty((n, c, oh, ow), x.dtype)
        # the winning tap's index: bool for two taps, else the smallest int that holds k - 1
        harg = np.empty(h.shape, np.bool_ if kw == 2 else np.min_scalar_type(kw - 1))
        varg = np.empty(y.shape, np.bool_ if kh == 2 else np.min_scalar_type(kh - 1))

        def work(s):
            _max_taps(self._views(x[s, :, :rows], oh, ow, 3), h[s], harg[s])
            _max_taps(self._views(h[s], oh, ow, 2), y[s], varg[s])

        over_batch(work, n, x.size)
        self._cache = (x.shape, harg, varg, rows, oh, ow) \
            if self.training or self.keep_for_backward else None
        return y

    def input_grad(self, dout):
        if self._cache is None:
            raise RuntimeError(f"{self.short_name()}: backward needs a forward in training mode")
        shape, harg, varg, rows, oh, ow = self._cache
        n, c = shape[:2]
        (kh, kw), (sh, sw) = self.kernel_size, self.stride
        dh = np.zeros((n, c, rows, ow), dout.dtype)              # d(row maxima)
        dx = np.zeros(shape, dout.dtype)                         # (N, C, H, W)

        def work(s):
            _route(dout[s], varg[s], self._views(dh[s], oh, ow, 2), disjoint=sh >= kh)
            _route(dh[s], harg[s], self._views(dx[s, :, :rows], oh, ow, 3), disjoint=sw >= kw)

        over_batch(work, n, dx.size)
        return dx


@register_layer(**_pool("avgpool", "AveragePool", "AvgPool2d", "AveragePooling2D"))
class AvgPool2d(_Pool2d):
    """y[n, c, p, q] = mean of x over the window at (s_h p, s_w q).

    Shape: as MaxPool2d. Backward: every pixel of a window gets dy / (kh kw) (summed
    over the windows that contain it when they overlap).
    """

    def forward(self, x):
        _, oh, ow = self._check(x)
        first, *rest = self._taps(x, oh, ow)
        y = first.copy()
        for v in rest:
            y += v
        y *= y.dtype.type(1.0 / (self.kernel_size[0] * self.kernel_size[1]))
        self._cache = (x.shape, oh, ow)
        return y

    def input_grad(self, dout):
        if self._cache is None:
            raise RuntimeError(f"{self.short_name()}: backward needs a forward first")
        shape, oh, ow = self._cache
        share = dout * dout.dtype.type(1.0 / (self.kernel_size[0] * self.kernel_size[1]))
        dx = np.zeros(shape, dout.dtype)
        for view in self._taps(dx, oh, ow):
            view += share
        return dx


@register_layer(
    arch=Arch("gap", aliases=("globalavgpool", "globalavgpool2d")),
    onnx=lambda g, m, x: g.node("Flatten", [g.node("GlobalAveragePool", [x])], axis=1),
    # (N, C, H, W) -> (N, C, 1, 1) -> (N, C); no parameters, so indices stay aligned
    torch=lambda t, m: t.nn.Sequential(t.nn.AdaptiveAvgPool2d(1), t.nn.Flatten()),
    keras=lambda k, m, shape: [k.layers.GlobalAveragePooling2D()])
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

    _shape = None

    def input_grad(self, dout):
        if self._shape is None:
            raise RuntimeError("GlobalAvgPool2d: backward needs a forward first")
        n, c, h, w = self._shape
        dx = np.empty(self._shape, dout.dtype)
        dx[...] = (dout * dout.dtype.type(1.0 / (h * w)))[:, :, None, None]
        return dx

    def output_shape(self, in_shape):
        c, _, _ = check_image_shape("GlobalAvgPool2d", None, in_shape)
        return (c,)
