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

Only a Linear layer's gradients are fused (its bias's dout^T 1 is a GEMV, the same way):
a layer that does not know how leaves ``p.fuse`` alone and fills ``p.grad`` as always,
and ``Optimizer.step`` updates it. A fused parameter's ``grad`` stays None: TrainStep
fuses only when nothing reads gradients (no grad_hook, no callback that declares
``needs_grads``).
"""
from __future__ import annotations

import os

import numpy as np

from . import cblas


def blas(dtype):
    """NumPy's BLAS for ``dtype`` (optim/cblas.Cblas), or None when it cannot be found or
    ``BAREPROP_FUSED=0`` (the environment is read on every call: tests flip it)."""
    if os.environ.get("BAREPROP_FUSED", "1") == "0":
        return None
    return cblas.load(dtype)


class FusedSGD:
    """``rule(dout, x) -> bool`` applies one SGD step to a Linear weight W (out, in) whose
    gradient is dout^T x, dout (N, out), x (N, in), or with ``x=None`` to a bias (out,)
    whose gradient is dout^T 1 (a GEMV), and says whether it did (False: the caller
    accumulates ``grad`` as usual). Everything is looked up at call time: the
    group's hyperparameters (schedulers change lr between steps), the momentum buffer in
    the optimizer's state under torch's name, as the unfused rule keeps it (checkpoints
    and resume see no difference), and the parameter's array."""

    def __init__(self, optimizer, param, fns):
        self.opt, self.param, self.b = optimizer, param, fns
        self.index = optimizer._index[id(param)]
        self._ones = np.ones(0)

    def _grad_into(self, c: np.ndarray, dout, x, alpha: float, beta: float) -> None:
        """c (out, in) <- alpha dout^T x + beta c in place (a GEMM), or with x None
        c (out,) <- alpha dout^T 1 + beta c (a GEMV)."""
        if x is None:
            if len(self._ones) != len(dout) or self._ones.dtype != c.dtype:
                self._ones = np.ones(len(dout), c.dtype)
            self.b.gemv_t(alpha, dout, self._ones, beta, c)
        else:
            self.b.gemm_tn(alpha, dout, x, beta, c)

    def __call__(self, dout: np.ndarray, x: np.ndarray | None) -> bool:
        param, opt, i, b = self.param, self.opt, self.index, self.b
        p = param.data
        if param.grad is not None or not self.b.writable(p) or p.ndim != (1 if x is None else 2):
            return False               # a gradient already accumulated, or an odd layout
        g, state = opt.param_groups[opt._group_of[i]], opt.state[i]
        lr, mu, wd = g["lr"], g["momentum"], g["weight_decay"]
        if not mu:                                               # plain SGD
            self._grad_into(p, dout, x, -lr, 1.0 - lr * wd)
            return True
        buf = state.get("momentum_buffer")
        if buf is not None and (buf.shape != p.shape or not self.b.writable(buf)):
            return False               # another dtype or layout (after astype): unfused rule
        if buf is None:                                          # b = G + wd W
            buf = state["momentum_buffer"] = (p * wd if wd else np.zeros_like(p))
            self._grad_into(buf, dout, x, 1.0, 1.0)
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
            self._grad_into(buf, dout, x, 1.0, 1.0)              # b += G
            b.axpy(-lr * (1.0 + mu), buf, p)
            return True
        damp = 1.0 - g["dampening"]
        if wd:                                                   # b = mu b + (1-d) wd W
            b.scal(mu, buf)
            b.axpy(damp * wd, p, buf)
            self._grad_into(buf, dout, x, damp, 1.0)             # b += (1 - d) G
        else:
            self._grad_into(buf, dout, x, damp, mu)
        b.axpy(-lr, buf, p)                                      # W -= lr b
        return True

