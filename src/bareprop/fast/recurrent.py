"""The LSTM's compiled time step in a training step: FastLSTMCell runs core/cells.py's
LSTMCell maths with one compiled loop per step forward and one back (cellkernels.py),
and the recurrent product accumulated straight into the gates by BLAS (no temporary and
no separate add); FastRecurrent is the unit a plan (plan.py) puts in place of an LSTM.

Per step, forward:  z_t += h_{t-1} W_hh^T  (one GEMM with beta = 1)   then lstm_step
           backward: lstm_back (dL/dh_t -> the gates' deltas, dc carried)
                     then dh_{t-1} = dz_t W_hh                        (one GEMM)
Everything else (the input projections of all steps, the weight gradients, stacking and
directions) is the reference layer's own code (core/bptt.py), run on a copy of the layer
that shares its Parameters (Recurrent.with_cell). Equal to the reference within float32
rounding (tests/fast/test_recurrent.py); float64 never comes here.
"""
from __future__ import annotations

import numpy as np

from ..core.cells import LSTMCell, _carry, _steps
from . import cblas as _cblas
from . import kernels
from .linear import _Unit


class FastLSTMCell(LSTMCell):
    """LSTMCell with compiled steps (see the module docstring); the same cache, so the
    layer's weight gradients and hidden_states() read it as the reference cell's. Any
    other dtype than float32 runs the reference cell."""

    def __init__(self, k):
        self.k = k
        self.blas = _cblas.load(np.float32)

    def forward(self, xp, w_hh, b_hh, order, buf):
        if xp.dtype != np.float32 or w_hh.dtype != np.float32:
            return super().forward(xp, w_hh, b_hh, order, buf)
        n, g4 = xp.shape[1:]
        shape = xp.shape[:2] + (g4 // 4,)
        c, tc, hs = buf("c", shape), buf("tanh_c", shape), buf("h", shape)
        tmp = None
        for t, prev in _steps(order):
            z = xp[t]                                        # (N, 4H): becomes the gates
            if prev is None:                                 # h_0 = c_0 = 0
                self.k.lstm_step(z, c[t], c[t], tc[t], hs[t], True)
                continue
            if self.blas is not None:
                self.blas.gemm(1.0, hs[prev], w_hh.T, 1.0, z)   # z += h_{t-1} W_hh^T
            else:
                tmp = buf("tmp", (n, g4)) if tmp is None else tmp
                np.matmul(hs[prev], w_hh.T, out=tmp)
                z += tmp
            self.k.lstm_step(z, c[prev], c[t], tc[t], hs[t], False)
        return {"gates": xp, "c": c, "tanh_c": tc, "h": hs}

    def backward(self, dh_seq, dh_last, cache, w_hh, order, buf):
        s, c, tc = cache["gates"], cache["c"], cache["tanh_c"]   # (T,N,4H), (T,N,H) x2
        if s.dtype != np.float32 or w_hh.dtype != np.float32:
            return super().backward(dh_seq, dh_last, cache, w_hh, order, buf)
        n, h = c.shape[1:]
        dz = buf("dz", s.shape)
        carry = _carry(dh_last, (n, h), buf)                 # dL/dh_t from step t+1
        dc = buf("dc", (n, h))
        dc.fill(0)
        for t, prev in reversed(_steps(order)):
            seq = dh_seq is not None
            self.k.lstm_back(carry, dh_seq[t] if seq else carry, seq, s[t],
                             c[t] if prev is None else c[prev], tc[t], dc, dz[t],
                             prev is None)
            if prev is not None:
                np.matmul(dz[t], w_hh, out=carry)            # dh_{t-1} = dz W_hh
        return dz, dz


class FastRecurrent(_Unit):
    """A recurrent layer run with a compiled cell: a copy of ``layer`` sharing its
    Parameters (Recurrent.with_cell), following its train/eval mode."""

    def __init__(self, layer, cell):
        self.layer = layer
        self.run = layer.with_cell(cell)

    def stands_for(self):
        return [self.layer]

    def named_parameters(self, prefix: str = ""):
        return self.layer.named_parameters(prefix + "layer.")   # once: run shares them

    def forward(self, x):
        self.run.training = self.layer.training
        return self.run.forward(x)

    def accumulate_grads(self, dout):
        self.run.accumulate_grads(dout)

    def input_grad(self, dout):
        return self.run.input_grad(dout)


def fast_cell(layer):
    """The compiled cell for ``layer`` (an exact LSTM), or None where the kernels do not
    run (numba missing, BAREPROP_ACCEL=numpy, not float32)."""
    k = kernels.get(layer.weight_ih_l0.data.dtype)
    return FastLSTMCell(k) if k is not None else None
