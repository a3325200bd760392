"""A convolution block in a training step or a forward: Conv2d, then a BatchNorm2d, a
ReLU and a 2x2 max or average pool (each optional), with everything after the convolution's GEMM
in one compiled pass each way (convkernels.py; with batch norm in training, one more
each way: the centred sums forward, its dx back) instead of the reference chain's passes:

    reference (core/conv.py, norm.py, activations.py,     FastConvBlock
    pooling.py)
    forward:  GEMM; bias add + transpose copy; batch      GEMM + channel_sums; [centred
              norm (sums, centring, variance, scale,      channel_sums]; conv_epilogue
              shift); ReLU; row max; column max
    backward: route through the column max; the row       conv_epilogue_back, written
              max; ReLU mask multiply; batch norm's sums  straight into the conv's
              and dx; copy into the conv's delta layout;  delta buffer, + bn_back_sums;
              then its GEMMs                              bn_back_dx + the dW GEMM; dx

Split over threads (convsplit.py) every ";" above is a hand-off, each thread waiting for
the others (the sums are over the whole batch): where two passes need only their own
examples they run in one (a `cnn` step: 11 hand-offs, was 17; about 0.1-0.3 ms each on
this VM, a wake-up and the threads' imbalance).

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
        self._bn_grads = self._sums0 = self._pending = None
        self._fallback = False
        self._team = convsplit.Team(1)
        self._exact = False             # the last training forward ran on exact columns

    def stands_for(self):
        return [m for m in (self.conv, self.bn, self.relu, self.pool) if m is not None]

    def forward(self, x):
        conv = self.conv
        k = kernels.get(conv.weight.data.dtype)
        self._dy = self._ref = self._pending = None
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
        out = self._gemm(x, first_sums=self.bn is not None)
        conv._cache = out[3]
        self._z, self._shape = out[:3], self._out_shape(out)
        self._y, self._code = self._epilogue(k, out)
        return self._y

    def _gemm(self, x, first_sums: bool = False):
        """Conv2d._gemm's (full, batch, OW, cache), with the batch shared by the threads
        of a Team (convsplit.py) at stride 1; its Team kept for the backward. With
        ``first_sums`` (training with batch norm) each thread also sums its examples'
        outputs per channel right after its GEMM (self._sums0, batch norm's mean)."""
        conv = self.conv
        k = kernels.get(x.dtype)
        n, (o, oh, ow) = x.shape[0], conv.output_shape(x.shape[1:])
        team = convsplit.team_for(n, n * o * oh * ow, x.dtype)
        exact = convsplit.exact(conv, team)
        if conv.training:
            self._team, self._exact = team, exact
        self._sums0 = None
        if conv.stride != (1, 1):           # the conv's own GEMM: the sums a pass of their own
            return conv._gemm(x)
        then = self._first_sums(k, o, team.parts, x.dtype) if first_sums else None
        if exact:
            return convsplit.exact_forward(team, conv, x, k, then)
        g = conv.shifted(conv._padded(x))
        result = g.output(), g.batch, g.ow, conv.cache_of(x, g)
        convsplit.forward_gemm(team, g, None if then is None else
                               lambda i, lo, hi: then(i, lo, hi, result))
        return result

    def _first_sums(self, k, o: int, parts: int, dtype):
        """then(i, lo, hi, gemm): range i's per-channel sums of its outputs (plus the
        conv's bias) into self._sums0[i] (parts, O), float64."""
        cb = self._constants(o, dtype)[0]
        sums = self._sums0 = np.zeros((parts, o))      # a range never run adds 0

        def then(i, lo, hi, gemm):
            full, bf, ow, _ = gemm
            k.channel_sums(full, bf, ow, cb, cb, False, sums[i], lo, hi)
        return then

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
            return mean(sums)

        def mean(s):
            return s.sum(axis=0).astype(full.dtype) / full.dtype.type(n)
        # (O,) each: the mean from the sums _gemm's threads took, else a pass of its own
        mu = mean(self._sums0) if self._sums0 is not None else pass_(cb, False)
        self._sums0 = None
        var = pass_(mu, True)                                           # biased
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
        bn = self.bn is not None
        if bn:
            full, (cb, mu, inv) = self._z[0], self._stats
            sums = np.empty((self._team.parts, 2, len(mu)))                # per range, added

        def part(i, lo, hi):         # with batch norm, its sums on the deltas just written
            k.conv_epilogue_back(dy, self._code, self._y, relu, pool, avg, d, bf, ow, lo, hi)
            if bn:
                k.bn_back_sums(d, full, bf, ow, cb, mu, inv, sums[i], lo, hi)
        self._team.run(part, len(dy))
        if bn:
            self._bn_grads = self._bn_back(k, d, bf, ow, sums)
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

    def _bn_back(self, k, d, bf, ow, sums):
        """(dgamma, dbeta) from the per-range ``sums`` (T, 2, O) of d, dL/d(batch norm's
        output); d's turning into dL/dz (bn_back_dx, BatchNorm2d.input_grad's formula) is
        left pending: _complete, or folded into the dW pass (accumulate_grads)."""
        bn, full = self.bn, self._z[0]
        cb, mu, inv = self._stats
        dbeta, dgamma = sums.sum(axis=0).astype(full.dtype)             # (O,) each
        kk = bn.weight.data * inv                                       # gamma / std
        m = full.dtype.type(bn.count(self._shape))
        c1, c2 = -kk * dgamma / m, kk * dbeta / m                       # as BatchNorm2d
        self._pending = lambda lo, hi: k.bn_back_dx(d, full, bf, ow, cb, mu, inv, c1, kk,
                                                    c2, lo, hi)
        return dgamma, dbeta

    def _complete(self) -> None:
        """Finish the conv's delta (batch norm's dx, if still pending) on the Team."""
        if self._pending is not None:
            pending, self._pending = self._pending, None
            self._team.run(lambda _, lo, hi: pending(lo, hi), self._shape[0])

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
        if self._split():        # batch norm's dx on each thread's examples, then its dW
            pending, self._pending = self._pending, None
            convsplit.weight_grad(self._team, self.conv, self.conv._delta_for(dout), pending)
            return
        self._complete()
        self.conv.accumulate_grads(dout)

    def input_grad(self, dout):
        if self._fallback:
            return self.conv.input_grad(self._conv_dout(dout))
        self._delta(dout)
        self._complete()
        self._dy = None
        if self._split():
            d = self.conv._delta_for(dout)
            self.conv._delta_of = None
            if self._exact:
                return convsplit.exact_input_grad(self._team, self.conv, d,
                                                  kernels.get(d.dtype))
            return convsplit.input_grad(self._team, self.conv, d)
        return self.conv.input_grad(dout)
