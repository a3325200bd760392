"""Fused SGD: the optimizer's step folded into a Linear layer's weight-gradient GEMM.

A Linear layer's gradient is G = dout^T x, and BLAS computes ``C <- alpha A B + beta C``
in one pass over C. So torch.optim.SGD's rule (sgd.py) needs no gradient array:

    plain        W <- (1 - lr wd) W - lr G                              one GEMM
    momentum     b <- mu b + (1 - damp) (G + wd W) ;  W <- W - lr b      GEMM + axpy
    Nesterov     W <- W + lr mu b_old                                   axpy
                 b <- mu b_old + G + wd W                               GEMM (+ 2 passes with wd)
                 W <- W - lr (1 + mu) b                                 axpy
    (Nesterov's W - lr (g + mu b) with g = b - mu b_old; first step: b = G + wd W, undampened)

where the unfused rule forms G (a fresh W-sized array), then makes 2 (plain) to 6
(Nesterov) element-wise passes over W-sized arrays. For 784-800-800-10 those passes are
~a third of an epoch outside the GEMMs (docs/benchmarks.md).

The GEMM, GEMV and axpy are NumPy's own BLAS through its CBLAS symbols (optim/cblas.py):
no dependency beyond NumPy, and no second BLAS thread pool. Where that BLAS cannot be
found, or with ``BAREPROP_FUSED=0`` in the environment, ``blas()`` is None and every step
takes the unfused path, which gives the same weights within float rounding
(tests/test_fused.py).

Only a Linear layer's weight is fused, and only from ``MIN_ELEMENTS`` weights up: a
ctypes call costs ~5 us, more than the passes it saves on a small matrix (measured,
float32, batch 128 and 32: a 10x128 weight 1.3-1.8x slower fused, 128x128 about even,
64x784 and up 0.5-0.9x). Biases are never fused: their gradient dout^T 1 is a GEMV that
NumPy's matmul calls in ~1 us, where the same GEMV through ctypes took ~6.
A layer that does not know how leaves ``p.fuse`` alone and fills ``p.grad`` as always,
and ``Optimizer.step`` updates it. A fused parameter's ``grad`` stays None: TrainStep
fuses only when nothing reads gradients (no grad_hook, no callback that declares
``needs_grads``).
"""
from __future__ import annotations

import os

import numpy as np

from . import cblas

#: the smallest weight (elements) whose SGD step is fused; tests lower it to fuse tiny nets
MIN_ELEMENTS = 32_768


def blas(dtype):
    """NumPy's BLAS for ``dtype`` (optim/cblas.Cblas), or None when it cannot be found or
    ``BAREPROP_FUSED=0`` (the environment is read on every call: tests flip it)."""
    if os.environ.get("BAREPROP_FUSED", "1") == "0":
        return None
    return cblas.load(dtype)


class FusedSGD:
    """``rule(dout, x) -> bool`` applies one SGD step to a Linear weight W (out, in) whose
    gradient is dout^T x, dout (N, out), x (N, in), and says whether it did (False: the
    caller accumulates ``grad`` as usual). Everything is looked up at call time: the
    group's hyperparameters (schedulers change lr between steps), the momentum buffer in
    the optimizer's state under torch's name, as the unfused rule keeps it (checkpoints
    and resume see no difference), and the parameter's array."""

    def __init__(self, optimizer, param, fns):
        self.opt, self.param, self.b = optimizer, param, fns
        self.index = optimizer._index[id(param)]

    def __call__(self, dout: np.ndarray, x: np.ndarray) -> bool:
        param, opt, i, b = self.param, self.opt, self.index, self.b
        p = param.data
        if param.grad is not None or p.ndim != 2 or not b.writable(p):
            return False               # a gradient already accumulated, or an odd layout
        g, state = opt.param_groups[opt._group_of[i]], opt.state[i]
        lr, mu, wd = g["lr"], g["momentum"], g["weight_decay"]
        if not mu:                                               # plain SGD
            b.gemm(-lr, dout.T, x, 1.0 - lr * wd, p)
            return True
        buf = state.get("momentum_buffer")
        if buf is not None and (buf.shape != p.shape or not b.writable(buf)):
            return False               # another dtype or layout (after astype): unfused rule
        if buf is None:                                          # b = G + wd W
            buf = state["momentum_buffer"] = (p * wd if wd else np.zeros_like(p))
            b.gemm(1.0, dout.T, x, 1.0, buf)
            b.axpy(-lr * (1.0 + mu) if g["nesterov"] else -lr, buf, p)
            return True
        if g["nesterov"]:
            if wd:                                               # W += lr mu b_old, via
                b.scal(mu, buf)                                  # b = mu b_old + wd W
                b.axpy(wd, p, buf)
                b.scal(1.0 - lr * wd, p)
                b.axpy(lr, buf, p)                               # W (1 - lr wd) + lr b
            else:
                b.axpy(lr * mu, buf, p)
                b.scal(mu, buf)
            b.gemm(1.0, dout.T, x, 1.0, buf)                    # b += G
            b.axpy(-lr * (1.0 + mu), buf, p)
            return True
        damp = 1.0 - g["dampening"]
        if wd:                                                   # b = mu b + (1-d) wd W
            b.scal(mu, buf)
            b.axpy(damp * wd, p, buf)
            b.gemm(damp, dout.T, x, 1.0, buf)                   # b += (1 - d) G
        else:
            b.gemm(damp, dout.T, x, mu, buf)
        b.axpy(-lr, buf, p)                                      # W -= lr b
        return True
