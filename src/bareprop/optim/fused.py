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

The GEMM and axpy are SciPy's BLAS wrappers (the same OpenBLAS NumPy uses, through
``scipy.linalg.blas``): SciPy is optional (``pip install 'bareprop[fast]'``). Without it,
or with ``BAREPROP_FUSED=0`` in the environment, ``blas()`` is None and every step takes
the unfused path, which gives the same weights within float rounding (tests/test_fused.py).

Only a Linear layer's gradients are fused (its bias's dout^T 1 is a GEMV, the same way): a layer that does not know how leaves
``p.fuse`` alone and fills ``p.grad`` as always, and ``Optimizer.step`` updates it. A fused
parameter's ``grad`` stays None: TrainStep fuses only when nothing reads gradients
(no grad_hook, no callback that declares ``needs_grads``).
"""
from __future__ import annotations

import os

import numpy as np

_BLAS: dict = {}


def blas(dtype):
    """(gemm, axpy, scal, gemv) from SciPy's BLAS for float32/float64, or None when SciPy
    is missing or ``BAREPROP_FUSED=0`` (the environment is read on every call: tests flip it)."""
    if os.environ.get("BAREPROP_FUSED", "1") == "0":
        return None
    dtype = np.dtype(dtype)
    if dtype not in _BLAS:
        try:
            from scipy.linalg import blas as b
        except ImportError:
            _BLAS[dtype] = None
        else:
            p = "s" if dtype == np.float32 else "d" if dtype == np.float64 else None
            _BLAS[dtype] = tuple(getattr(b, p + f) for f in ("gemm", "axpy", "scal", "gemv")) \
                if p else None
    return _BLAS[dtype]


def inplace(result, target):
    """BLAS wrappers return their output array; f2py writes into ``target`` itself when its
    layout allows, which ``fusable`` made sure of: copy back in case it ever did not."""
    if not np.may_share_memory(result, target):
        target[...] = result.reshape(target.shape)


class FusedSGD:
    """``rule(dout, x) -> bool`` applies one SGD step to a Linear weight W (out, in) whose
    gradient is dout^T x, dout (N, out), x (N, in), or with ``x=None`` to a bias (out,)
    whose gradient is dout^T 1 (a GEMV), and says whether it did (False: the caller
    accumulates ``grad`` as usual). Everything is looked up at call time: the
    group's hyperparameters (schedulers change lr between steps), the momentum buffer in
    the optimizer's state under torch's name, as the unfused rule keeps it (checkpoints
    and resume see no difference), and the parameter's array."""

    def __init__(self, optimizer, param, fns):
        self.opt, self.param = optimizer, param
        self.index = optimizer._index[id(param)]
        self.gemm, self.axpy, self.scal, self.gemv = fns
        self._ones = np.ones(0)

    def _gemm_into(self, c: np.ndarray, dout, x, alpha: float, beta: float) -> None:
        """c (out, in) <- alpha dout^T x + beta c, in place: in Fortran order c is
        c^T (in, out) = alpha x^T dout + beta c^T, whose operands x^T and dout^T are
        views of C-contiguous arrays (no copies). x None: c (out,) <- alpha dout^T 1 + beta c."""
        if x is None:
            ones = self._ones
            if len(ones) != len(dout) or ones.dtype != dout.dtype:
                ones = self._ones = np.ones(len(dout), dout.dtype)
            inplace(self.gemv(alpha, dout.T, ones, beta=beta, y=c, overwrite_y=1), c)
            return
        ct = c.T
        r = self.gemm(alpha, x.T, dout.T, beta=beta, c=ct, trans_b=1, overwrite_c=1)
        inplace(r, ct)

    def _axpy(self, a: float, xs: np.ndarray, ys: np.ndarray) -> None:
        """ys += a xs (flat views)."""
        inplace(self.axpy(xs, ys, a=a), ys)

    def __call__(self, dout: np.ndarray, x: np.ndarray) -> bool:
        param, opt, i = self.param, self.opt, self.index
        p = param.data
        if param.grad is not None or not fusable(p) or dout.dtype != p.dtype \
                or (x is not None and x.dtype != p.dtype) or p.ndim != (1 if x is None else 2):
            return False               # a gradient already accumulated, or an odd layout
        g, state, flat = opt.param_groups[opt._group_of[i]], opt.state[i], p.reshape(-1)
        lr, mu, wd = g["lr"], g["momentum"], g["weight_decay"]
        if not mu:                                               # plain SGD
            self._gemm_into(p, dout, x, -lr, 1.0 - lr * wd)
            return True
        buf = state.get("momentum_buffer")
        if buf is None:                                          # b = G + wd W
            buf = state["momentum_buffer"] = (p * wd if wd else np.zeros_like(p))
            bflat, alpha = buf.reshape(-1), 1.0
        else:
            bflat, alpha = buf.reshape(-1), 1.0 - g["dampening"]
            if g["nesterov"]:
                if wd:                                           # W += lr mu b_old, via
                    inplace(self.scal(mu, bflat), bflat)        # b = mu b_old + wd W
                    self._axpy(wd, flat, bflat)
                    inplace(self.scal(1.0 - lr * wd, flat), flat)
                    self._axpy(lr, bflat, flat)                  # W (1 - lr wd) + lr b
                else:
                    self._axpy(lr * mu, bflat, flat)
                    inplace(self.scal(mu, bflat), bflat)
                self._gemm_into(buf, dout, x, 1.0, 1.0)          # b += G
                self._axpy(-lr * (1.0 + mu), bflat, flat)
                return True
            if wd:                                               # b = mu b + (1-d) wd W
                inplace(self.scal(mu, bflat), bflat)
                self._axpy(alpha * wd, flat, bflat)
                beta = 1.0
            else:
                beta = mu
            self._gemm_into(buf, dout, x, alpha, beta)           # b += (1 - d) G
            self._axpy(-lr, bflat, flat)                         # W -= lr b
            return True
        self._gemm_into(buf, dout, x, alpha, 1.0)                # first step
        self._axpy(-lr * (1.0 + mu) if g["nesterov"] else -lr, bflat, flat)
        return True


def fusable(d: np.ndarray) -> bool:
    """Whether the BLAS calls can update ``d`` in place (C-contiguous float32/64)."""
    return d.flags.c_contiguous and d.dtype in (np.float32, np.float64)
