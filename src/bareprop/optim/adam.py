"""Adam and AdamW, as torch.optim.Adam / torch.optim.AdamW (non-foreach, float64 exact)."""
from __future__ import annotations

import math

import numpy as np

from .optimizer import Hyperparameter, Optimizer, check_range, scratch


def adam_update(p: np.ndarray, g: np.ndarray, state: dict, *, lr: float, betas: tuple,
                eps: float, weight_decay: float, amsgrad: bool, decoupled: bool = False) -> None:
    """One Adam step, in place (Kingma & Ba 2015, torch's arrangement):

        t <- t + 1
        p <- p (1 - lr wd)              (AdamW: decoupled decay)
        g <- g + wd p                   (Adam: L2 decay)
        m <- b1 m + (1 - b1) g
        v <- b2 v + (1 - b2) g^2
        vmax <- max(vmax, v)            (amsgrad; then v := vmax below)
        p <- p - (lr / (1 - b1^t)) m / (sqrt(v) / sqrt(1 - b2^t) + eps)
    """
    b1, b2 = betas
    if not state:
        state["step"] = 0
        state["exp_avg"] = np.zeros_like(p)
        state["exp_avg_sq"] = np.zeros_like(p)
        if amsgrad:
            state["max_exp_avg_sq"] = np.zeros_like(p)
    state["step"] += 1
    t = state["step"]
    if weight_decay:
        if decoupled:
            p *= 1 - lr * weight_decay
        else:
            g = g + weight_decay * p
    # Adam is 12 element-wise passes; done in place through one scratch array, a
    # step allocates nothing (fresh temporaries made it cost more than the forward pass).
    tmp = scratch(state, "_tmp", p)
    m, v = state["exp_avg"], state["exp_avg_sq"]
    np.subtract(g, m, out=tmp)
    tmp *= 1 - b1
    m += tmp                            # torch: exp_avg.lerp_(grad, 1 - beta1)
    np.multiply(g, g, out=tmp)
    tmp *= 1 - b2
    v *= b2
    v += tmp                            # torch: exp_avg_sq.mul_(b2).addcmul_(g, g, 1 - b2)
    if amsgrad:
        vmax = state["max_exp_avg_sq"]
        np.maximum(vmax, v, out=vmax)
        v = vmax
    # torch's m / (sqrt(v) / c + eps) * lr / (1 - b1^t) with c = sqrt(1 - b2^t), as
    # c m / (sqrt(v) + c eps) * lr / (1 - b1^t): the same value within rounding, one
    # pass fewer (2-5% of an Adam epoch; docs/benchmarks.md)
    c = math.sqrt(1 - b2 ** t)
    np.sqrt(v, out=tmp)
    tmp += eps * c                      # c * denom
    np.divide(m, tmp, out=tmp)
    tmp *= lr * c / (1 - b1 ** t)       # step size / c
    p -= tmp


def adamw_update(p, g, state, **hyper) -> None:
    """AdamW (Loshchilov & Hutter 2019): Adam with decoupled weight decay p <- p (1 - lr wd)."""
    adam_update(p, g, state, decoupled=True, **hyper)


class Adam(Optimizer):
    """Adam. Defaults as torch: lr 1e-3, betas (0.9, 0.999), eps 1e-8, L2 weight_decay 0.
    ``params``: Parameters or parameter groups (dicts), as torch.optim."""

    update = staticmethod(adam_update)
    betas = Hyperparameter("(beta1, beta2): decay rates of the moment estimates m and v")
    eps = Hyperparameter("added to sqrt(v) in the denominator")
    weight_decay = Hyperparameter("weight decay wd (Adam: L2 in the gradient; AdamW: decoupled)")
    amsgrad = Hyperparameter("use max(vmax, v) in the denominator (Reddi et al. 2018)")

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, amsgrad: bool = False):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                         amsgrad=amsgrad)

    nonnegative = ("eps", "weight_decay")
    flags = ("amsgrad",)

    @classmethod
    def check_hyperparameters(cls, h: dict) -> dict:
        h = super().check_hyperparameters(h)
        b1 = check_range("beta1", h["betas"][0], 0.0, 1.0)
        b2 = check_range("beta2", h["betas"][1], 0.0, 1.0)
        h["betas"] = (b1, b2)           # a tuple even when loaded back from JSON's list
        return h


class AdamW(Adam):
    """AdamW. Defaults as torch: lr 1e-3, betas (0.9, 0.999), eps 1e-8, weight_decay 1e-2."""

    update = staticmethod(adamw_update)

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 1e-2, amsgrad: bool = False):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad)
