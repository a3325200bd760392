"""A convolution block in a training step or a forward: Conv2d, then a BatchNorm2d, a
ReLU and a 2x2 max pool (each optional), with everything after the convolution's GEMM
in one compiled pass each way (convkernels.py; with batch norm in training, two more
for its statistics forward and its sums back) instead of the reference chain's passes:

    reference (core/conv.py, norm.py, activations.py,     FastConvBlock
    pooling.py)
    forward:  GEMM; bias add + transpose copy; batch      GEMM; [channel_sums x2];
              norm (sums, centring, variance, scale,      conv_epilogue
              shift); ReLU; row max; column max
    backward: route through the column max; the row       conv_epilogue_back, written
              max; ReLU mask multiply; batch norm's sums  straight into the conv's
              and dx; copy into the conv's delta layout;  delta buffer; [bn_back_sums,
              then its GEMMs                              bn_back_dx]; then its GEMMs

The convolution's GEMMs, im2col and col2im are the reference layer's own code
(Conv2d._gemm, accumulate_grads, input_grad), on the model's own Conv2d: its Parameters,
buffers and cache; batch norm's running statistics and Parameters are the model's
BatchNorm2d's, updated by its own formulas (count, update_running, inv_std). Without
batch norm the block equals the reference chain bit for bit (the same arithmetic in the
same order); with it, within float32 rounding (its sums accumulate in float64 here, in
float32 BLAS there). NaN, inf and pooling ties included: tests/fast/test_conv.py.
float64 runs the reference layers.
"""
from __future__ import annotations

import numpy as np

from ..core.threads import over_batch
from . import kernels
from .linear import _Unit


class FastConvBlock(_Unit):
    """Conv2d, then ``bn`` (a BatchNorm2d or None), ``relu`` (a ReLU or None) and ``pool``
    (a 2x2, stride-2 MaxPool2d or None), with compiled epilogues (see the module
    docstring)."""

    def __init__(self, conv, bn=None, relu=None, pool=None):
        self.conv, self.bn, self.relu, self.pool = conv, bn, relu, pool
        self._y = self._code = self._dy = self._ref = self._z = self._stats = None
        self._bn_grads = None
        self._fallback = False

    def stands_for(self):
        return [m for m in (self.conv, self.bn, self.relu, self.pool) if m is not None]

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
        shape = conv.output_shape(x.shape[1:])
        if self.bn is not None:
            self.bn.output_shape(shape)                              # channels match: or why
            self.bn.training = conv.training
        if self.pool is not None:
            self.pool.output_shape(shape)                            # window fits: or why
        if not conv.training:
            self._y = self._code = self._z = None
            return conv.forward_chunked(x, lambda part: self._epilogue(k, conv._gemm(part)[0])[0])
        z, conv._cache = conv._gemm(x)
        self._z = z
        self._y, self._code = self._epilogue(k, z)
        return self._y

    def _bias(self, like):
        b = self.conv.bias
        return (b.data, True) if b is not None else (like[:0], False)

    def _batch_stats(self, k, z):
        """(mu, 1 / std) of the batch norm: the batch's (its running statistics updated)
        in training, the running ones in eval; None without batch norm."""
        bn = self.bn
        if bn is None:
            return None
        if not bn.training:
            return bn.running_mean, bn.inv_std(bn.running_var)
        n = bn.count(z.shape)
        cb, has_bias = self._bias(bn.running_mean)
        sums = np.empty(z.shape[1])
        k.channel_sums(z, cb, has_bias, bn.running_mean, False, sums)
        mu = sums.astype(z.dtype) / z.dtype.type(n)                     # (O,)
        k.channel_sums(z, cb, has_bias, mu, True, sums)
        var = sums.astype(z.dtype) / z.dtype.type(n)                    # (O,) biased
        bn.update_running(mu, var, n)
        return mu, bn.inv_std(var)

    def _epilogue(self, k, z):
        """(y, code) from the GEMM's output view z (N, O, OH, OW)."""
        n, o, oh, ow = z.shape
        pool = self.pool is not None
        y = np.empty((n, o, oh // 2, ow // 2) if pool else z.shape, z.dtype)
        code = np.empty(y.shape if pool else (0, 0, 0, 0), np.uint8)
        cb, has_bias = self._bias(y.reshape(-1))
        stats = self._batch_stats(k, z)
        if self.conv.training:
            self._stats = stats
        bn = self.bn
        mu, inv = stats if stats is not None else (cb[:0], cb[:0])
        gamma, beta = (bn.weight.data, bn.bias.data) if bn is not None else (mu, mu)
        relu = self.relu is not None
        over_batch(lambda s: k.conv_epilogue(z[s], cb, has_bias, bn is not None, mu, inv, gamma,
                                             beta, relu, pool, y[s], code[s] if pool else code),
                   n, z.size)
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
        if self.bn is not None:
            self._bn_grads = self._bn_back(k, dv)
        self.conv.keep_delta(dout, d)
        self._dy = dout

    def _bn_back(self, k, dv):
        """dv: dL/d(batch norm's output) -> dL/dz in place; returns (dgamma, dbeta)."""
        bn, z, (mu, inv) = self.bn, self._z, self._stats
        cb, has_bias = self._bias(mu)
        sums = np.empty((2, len(mu)))
        k.bn_back_sums(dv, z, cb, has_bias, mu, inv, sums)
        dbeta, dgamma = sums.astype(z.dtype)                            # (O,) each
        kk = bn.weight.data * inv                                       # gamma / std
        m = z.dtype.type(bn.count(z.shape))
        c1, c2 = -kk * dgamma / m, kk * dbeta / m                       # as BatchNorm2d
        over_batch(lambda s: k.bn_back_dx(dv[s], z[s], cb, has_bias, mu, inv, c1, kk, c2),
                   dv.shape[0], dv.size)
        return dgamma, dbeta

    def _conv_dout(self, dout):
        """The fallback's dL/d(conv output): the reference layers' backward (once)."""
        if self._ref is None or self._ref[0] is not dout:
            d = dout
            for m in reversed(self.stands_for()[1:]):
                if m is self.bn:
                    m.accumulate_grads(d)
                d = m.input_grad(d)
            self._ref = (dout, d)
        return self._ref[1]

    def accumulate_grads(self, dout):
        if self._fallback:
            self.conv.accumulate_grads(self._conv_dout(dout))
            return
        self._delta(dout)
        if self.bn is not None:
            dgamma, dbeta = self._bn_grads
            self.bn.weight.accumulate(dgamma)
            self.bn.bias.accumulate(dbeta)
        self.conv.accumulate_grads(dout)

    def input_grad(self, dout):
        if self._fallback:
            return self.conv.input_grad(self._conv_dout(dout))
        self._delta(dout)
        self._dy = None
        return self.conv.input_grad(dout)
