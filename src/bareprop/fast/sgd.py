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

The GEMM and axpy are NumPy's own BLAS through its CBLAS symbols (fast/cblas.py): no
dependency beyond NumPy, and no second BLAS thread pool. Where that BLAS cannot be
found, or with ``BAREPROP_FUSED=0`` in the environment, ``blas()`` is None and every step
takes the unfused path, which gives the same weights within float rounding
(tests/fast/test_fused.py).

Only a Linear layer's weight is fused (fast/linear.py applies the rule inside its
backward), and only from ``MIN_ELEMENTS`` weights up: a ctypes call costs more than the
passes it saves on a small matrix (docs/benchmarks.md). Biases are never fused: their
gradient 1^T dout is a GEMV that NumPy's matmul calls faster than ctypes can. A fused
parameter's ``grad`` stays None and ``Optimizer.step`` skips it. The rule reads the
optimizer only through its public ``update_for(param)``, at every call (schedulers
change lr between steps; ``load_state_dict`` replaces the state).
"""
from __future__ import annotations

import os

import numpy as np

from ..errors import ConfigError
from ..optim.optimizer import Optimizer
from ..optim.sgd import sgd_update
from . import cblas

#: the smallest weight (elements) whose SGD step is fused; tests lower it to fuse tiny nets
MIN_ELEMENTS = 32_768


def blas(dtype):
    """NumPy's BLAS for ``dtype`` (fast/cblas.Cblas), or None when it cannot be found or
    ``BAREPROP_FUSED=0`` (the environment is read on every call: tests flip it)."""
    if os.environ.get("BAREPROP_FUSED", "1") == "0":
        return None
    return cblas.load(dtype)


def fused_sgd(optimizer, param):
    """A FusedSGD for ``param`` when ``optimizer`` updates it by torch's SGD rule through
    the standard step, the weight is a matrix of at least MIN_ELEMENTS and NumPy's BLAS
    can be called; None otherwise (the unfused path)."""
    if not isinstance(optimizer, Optimizer) or type(optimizer).step is not Optimizer.step:
        return None
    try:
        if optimizer.update_for(param).rule is not sgd_update:
            return None
    except ConfigError:                    # not one of this optimizer's parameters
        return None
    if param.data.ndim != 2 or param.data.size < MIN_ELEMENTS:
        return None
    fns = blas(param.dtype)
    return None if fns is None else FusedSGD(optimizer, param, fns)


class FusedSGD:
    """``rule(dout, x) -> bool`` applies one SGD step to a Linear weight W (out, in) whose
    gradient is dout^T x, dout (N, out), x (N, in), and says whether it did (False: the
    caller accumulates ``grad`` as usual). Everything is looked up at call time: the
    group's hyperparameters (schedulers change lr between steps), the momentum buffer in
    the optimizer's state under torch's name, as the unfused rule keeps it (checkpoints
    and resume see no difference), and the parameter's array."""

    def __init__(self, optimizer, param, fns):
        self.opt, self.param, self.b = optimizer, param, fns

    def __call__(self, dout: np.ndarray, x: np.ndarray) -> bool:
        param, b = self.param, self.b
        p = param.data
        if param.grad is not None or p.ndim != 2 or not b.writable(p):
            return False               # a gradient already accumulated, or an odd layout
        update = self.opt.update_for(param)
        g, state = update.group, update.state
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
