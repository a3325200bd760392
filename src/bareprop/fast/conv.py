"""A convolution block in a training step or a forward: Conv2d, then a ReLU and/or a 2x2
max pool, with everything after the convolution's GEMM in one compiled pass each way
(convkernels.py) instead of the reference chain's separate passes:

    reference (core/conv.py, activations.py, pooling.py)     FastConvBlock
    forward:  GEMM; bias add + transpose copy; ReLU;          GEMM; conv_epilogue
              row max; column max (two index arrays)
    backward: route through the column max; through the       conv_epilogue_back, written
              row max; ReLU mask multiply; copy into the      straight into the conv's
              conv's delta layout; then its GEMMs             delta buffer; then its GEMMs

The convolution's GEMMs, im2col and col2im are the reference layer's own code
(Conv2d._gemm, accumulate_grads, input_grad), on the model's own Conv2d: its Parameters,
buffers and cache. Equal to the reference chain within float32 rounding, NaN, inf and
pooling ties included (tests/fast/test_conv.py); float64 runs the reference layers.
"""
from __future__ import annotations

import numpy as np

from ..core.threads import over_batch
from . import kernels
from .linear import _Unit


class FastConvBlock(_Unit):
    """Conv2d, then ``relu`` (a ReLU or None), then ``pool`` (a 2x2, stride-2 MaxPool2d
    or None), with compiled epilogues (see the module docstring)."""

    def __init__(self, conv, relu=None, pool=None):
        self.conv, self.relu, self.pool = conv, relu, pool
        self._y = self._code = self._dy = self._ref = None
        self._fallback = False

    def stands_for(self):
        return [m for m in (self.conv, self.relu, self.pool) if m is not None]

    def forward(self, x):
        conv = self.conv
        k = kernels.get(conv.weight.data.dtype)
        self._dy = self._ref = None
        self._fallback = k is None
        if k is None:                             # float64, or no numba: the layers as written
            for m in self.stands_for():
                m.training = conv.training
                x = m.forward(x)
            return x
        x = conv.prepare(x)
        if self.pool is not None:
            self.pool.output_shape(conv.output_shape(x.shape[1:]))   # window fits: or why
        if not conv.training:
            self._y = self._code = None
            return conv.forward_chunked(x, lambda part: self._epilogue(k, conv._gemm(part)[0])[0])
        z, conv._cache = conv._gemm(x)
        self._y, self._code = self._epilogue(k, z)
        return self._y

    def _epilogue(self, k, z):
        """(y, code) from the GEMM's output view z (N, O, OH, OW)."""
        n, o, oh, ow = z.shape
        pool, b = self.pool is not None, self.conv.bias
        y = np.empty((n, o, oh // 2, ow // 2) if pool else z.shape, z.dtype)
        code = np.empty(y.shape if pool else (0, 0, 0, 0), np.uint8)
        bias = b.data if b is not None else y[:0, 0, 0, 0]           # unused: any float32
        over_batch(lambda s: k.conv_epilogue(z[s], bias, b is not None, self.relu is not None,
                                             pool, y[s], code[s] if pool else code), n, z.size)
        return y, code

    def _delta(self, dout):
        """Fill the conv's delta buffer with dL/dz from ``dout`` (once per dout)."""
        if self._dy is dout:
            return
        if self._y is None:
            raise RuntimeError(f"{self.conv.short_name()}: backward needs a forward in "
                               "training mode")
        k = kernels.get(self._y.dtype)
        dy = np.asarray(dout, self._y.dtype)
        d, dv = self.conv.delta_view(dy.dtype)
        pool = self.pool is not None
        over_batch(lambda s: k.conv_epilogue_back(dy[s], self._code[s] if pool else self._code,
                                                  self._y[s], self.relu is not None, pool,
                                                  dv[s]), dy.shape[0], dv.size)
        self.conv.keep_delta(dout, d)
        self._dy = dout

    def _conv_dout(self, dout):
        """The fallback's dL/d(conv output): the reference layers' backward (once)."""
        if self._ref is None or self._ref[0] is not dout:
            d = dout
            for m in reversed(self.stands_for()[1:]):
                d = m.input_grad(d)
            self._ref = (dout, d)
        return self._ref[1]

    def accumulate_grads(self, dout):
        if self._fallback:
            self.conv.accumulate_grads(self._conv_dout(dout))
            return
        self._delta(dout)
        self.conv.accumulate_grads(dout)

    def input_grad(self, dout):
        if self._fallback:
            return self.conv.input_grad(self._conv_dout(dout))
        self._delta(dout)
        self._dy = None
        return self.conv.input_grad(dout)
