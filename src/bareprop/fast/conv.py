"""A convolution block in a training step or a forward: Conv2d, then a BatchNorm2d, a
ReLU and a 2x2 max or average pool (each optional), with everything after the convolution's GEMM
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

The convolution runs on the model's own Conv2d (its Parameters, buffers and cache),
through convsplit.py: a layer with a long reduction (channel-major columns) at stride 1
on exact columns (no shifted-row garbage: 12-18% less GEMM work), the batch shared by
BLAS's threads inside a convnet's step; otherwise the reference layer's own code
(Conv2d._gemm, accumulate_grads, input_grad). Batch norm's running statistics and
Parameters are the model's BatchNorm2d's, updated by its own formulas (count,
update_running, inv_std). On the reference layer's own code, without batch norm, the
block equals the reference chain bit for bit (the same arithmetic in the same order);
otherwise within float32 rounding (other columns round their own way; batch norm's sums
accumulate in float64 here, in float32 BLAS there). NaN, inf and pooling ties included:
tests/fast/test_conv.py. float64 runs the reference layers.
"""
from __future__ import annotations

import numpy as np

from ..core.pooling import MaxPool2d
from . import convsplit, kernels
from .linear import _Unit



class FastConvBlock(_Unit):
    """Conv2d, then ``bn`` (a BatchNorm2d or None), ``relu`` (a ReLU or None) and ``pool``
    (a 2x2, stride-2 MaxPool2d or AvgPool2d, or None), with compiled epilogues (see the
    module docstring)."""

    def __init__(self, conv, bn=None, relu=None, pool=None):
        self.conv, self.bn, self.relu, self.pool = conv, bn, relu, pool
        self._y = self._code = self._dy = self._ref = self._z = self._stats = None
        self._bn_grads = None
        self._fallback = False
        self._team = convsplit.Team(1)
        self._exact = False             # the last training forward ran on exact columns

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
            return conv.forward_chunked(x, lambda part: self._epilogue(k, self._gemm(part))[0])
        out = self._gemm(x)
        conv._cache = out[3]
        self._z, self._shape = out[:3], self._out_shape(out)
        self._y, self._code = self._epilogue(k, out)
        return self._y

    def _gemm(self, x):
        """Conv2d._gemm's (full, batch, OW, cache), with the batch shared by the threads
        of a Team (convsplit.py) at stride 1; its Team kept for the backward."""
        conv = self.conv
        n, (o, oh, ow) = x.shape[0], conv.output_shape(x.shape[1:])
        team = convsplit.team_for(n, n * o * oh * ow, x.dtype)
        exact = convsplit.exact(conv, team)
        if conv.training:
            self._team, self._exact = team, exact
        if exact:
            return convsplit.exact_forward(team, conv, x, kernels.get(x.dtype))
        if conv.stride != (1, 1):
            return conv._gemm(x)
        g = conv.shifted(conv._padded(x))
        convsplit.forward_gemm(team, g)
        return g.output(), g.batch, g.ow, conv.cache_of(x, g)

    def _constants(self, o: int, dtype):
        """Per-channel (conv bias, mu, 1/std, gamma, beta) for the kernels: zeros and
        ones where the block has no bias or no batch norm (exact: see convkernels)."""
        zeros, ones = np.zeros(o, dtype), np.ones(o, dtype)
        b, bn = self.conv.bias, self.bn
        cb = b.data if b is not None else zeros
        if bn is None:
            return cb, zeros, ones, ones, zeros
        return cb, None, None, bn.weight.data, bn.bias.data

    def _batch_stats(self, k, gemm, cb):
        """(mu, 1 / std) of the batch norm: the batch's (its running statistics updated)
        in training, the running ones in eval."""
        bn = self.bn
        if not bn.training:
            return bn.running_mean, bn.inv_std(bn.running_var)
        full, bf, ow, _ = gemm
        n = bn.count(self._out_shape(gemm))
        team, examples = self._team, self._out_shape(gemm)[0]
        sums = np.empty((team.parts, len(cb)))                          # per range, added

        def pass_(centre, centred):
            team.run(lambda i, lo, hi: k.channel_sums(full, bf, ow, cb, centre, centred,
                                                      sums[i], lo, hi), examples)
            return sums.sum(axis=0).astype(full.dtype) / full.dtype.type(n)
        mu = pass_(cb, False)                                           # (O,)
        var = pass_(mu, True)                                           # (O,) biased
        bn.update_running(mu, var, n)
        return mu, bn.inv_std(var)

    @staticmethod
    def _out_shape(gemm):
        full, bf, ow, _ = gemm
        a, b, oh = full.shape[:3]
        return (a, b, oh, ow) if bf else (b, a, oh, ow)

    def _avg(self) -> bool:
        return self.pool is not None and not isinstance(self.pool, MaxPool2d)

    def _epilogue(self, k, gemm):
        """(y, code) from the conv's GEMM output (_gemm's (full, batch, OW, cache))."""
        full, bf, ow, _ = gemm
        n, o, oh, _ = self._out_shape(gemm)
        pool = self.pool is not None
        y = np.empty((n, o, oh // 2, ow // 2) if pool else (n, o, oh, ow), full.dtype)
        code = np.empty(y.shape if pool else (0, 0, 0, 0), np.uint8)
        cb, mu, inv, gamma, beta = self._constants(o, full.dtype)
        if self.bn is not None:
            mu, inv = self._batch_stats(k, gemm, cb)
            if self.conv.training:
                self._stats = (cb, mu, inv)
        relu, avg = self.relu is not None, self._avg()
        self._team_of(n, y.size).run(lambda _, lo, hi: k.conv_epilogue(
            full, bf, ow, cb, mu, inv, gamma, beta, relu, pool, avg, y, code, lo, hi), n)
        return y, code

    def _team_of(self, n: int, values: int):
        """The training step's Team; in eval mode (a forward's chunk, perhaps on one of a
        server's threads) one of its own, kept nowhere."""
        if self.conv.training:
            return self._team
        return convsplit.team_for(n, values, self.conv.weight.data.dtype)

    def _delta(self, dout):
        """Fill the conv's delta buffer with dL/dz from ``dout`` (once per dout)."""
        if self._dy is dout:
            return
        if self._y is None:
            raise RuntimeError(f"{self.conv.short_name()}: backward needs a forward in "
                               "training mode")
        k = kernels.get(self._y.dtype)
        dy = np.ascontiguousarray(dout, self._y.dtype)       # rows unit-stride for the loop
        d, bf = self._delta_buffer(dy.dtype)
        ow = self._z[2]
        relu, pool, avg = self.relu is not None, self.pool is not None, self._avg()
        self._team.run(lambda _, lo, hi: k.conv_epilogue_back(
            dy, self._code, self._y, relu, pool, avg, d, bf, ow, lo, hi), len(dy))
        if self.bn is not None:
            self._bn_grads = self._bn_back(k, d, bf, ow)
        self.conv.keep_delta(dout, d)
        self._dy = dout

    def _delta_buffer(self, dtype):
        """(d, batch): the conv's delta buffer, laid out as its forward's GEMM output."""
        if not self._exact:
            return self.conv.delta_buffer(dtype)
        return self.conv._buffer("delta", self._z[0].shape, dtype), False   # (O, N, OH, OW)

    def _split(self) -> bool:
        """Whether the backward's GEMMs run through convsplit (exact columns, or the
        batch shared by threads at stride 1) rather than the conv's own."""
        return self._exact or (self._team.parts > 1 and self.conv.stride == (1, 1))

    def _bn_back(self, k, d, bf, ow):
        """d: dL/d(batch norm's output) -> dL/dz in place; returns (dgamma, dbeta)."""
        bn, full = self.bn, self._z[0]
        cb, mu, inv = self._stats
        team, n = self._team, self._shape[0]
        sums = np.empty((team.parts, 2, len(mu)))                        # per range, added
        team.run(lambda i, lo, hi: k.bn_back_sums(d, full, bf, ow, cb, mu, inv, sums[i],
                                                  lo, hi), n)
        dbeta, dgamma = sums.sum(axis=0).astype(full.dtype)             # (O,) each
        kk = bn.weight.data * inv                                       # gamma / std
        m = full.dtype.type(bn.count(self._shape))
        c1, c2 = -kk * dgamma / m, kk * dbeta / m                       # as BatchNorm2d
        team.run(lambda _, lo, hi: k.bn_back_dx(d, full, bf, ow, cb, mu, inv, c1, kk, c2,
                                                lo, hi), n)
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
        if self._split():
            convsplit.weight_grad(self._team, self.conv, self.conv._delta_for(dout))
            return
        self.conv.accumulate_grads(dout)

    def input_grad(self, dout):
        if self._fallback:
            return self.conv.input_grad(self._conv_dout(dout))
        self._delta(dout)
        self._dy = None
        if self._split():
            d = self.conv._delta_for(dout)
            self.conv._delta_of = None
            if self._exact:
                return convsplit.exact_input_grad(self._team, self.conv, d,
                                                  kernels.get(d.dtype))
            return convsplit.input_grad(self._team, self.conv, d)
        return self.conv.input_grad(dout)
