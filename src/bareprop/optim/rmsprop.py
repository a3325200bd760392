"""RMSprop (plain, centered, with momentum) and Adagrad, as torch.optim."""
from __future__ import annotations

import numpy as np

from .optimizer import Hyperparameter, Optimizer


def rmsprop_update(p, g, state, *, lr, alpha, eps, weight_decay, momentum, centered) -> None:
    """One RMSprop step, in place (torch.optim.RMSprop's rule):

        g <- g + wd p
        s <- alpha s + (1 - alpha) g^2
        centered:  a <- alpha a + (1 - alpha) g;   d = sqrt(s - a^2) + eps
        else:      d = sqrt(s) + eps
        momentum:  b <- mu b + g / d;  p <- p - lr b      else  p <- p - lr g / d
    """
    if not state:
        state["step"] = 0
        state["square_avg"] = np.zeros_like(p)
        if momentum > 0:
            state["momentum_buffer"] = np.zeros_like(p)
        if centered:
            state["grad_avg"] = np.zeros_like(p)
    state["step"] += 1
    if weight_decay:
        g = g + weight_decay * p
    s = state["square_avg"]
    s *= alpha
    s += (1 - alpha) * g * g
    if centered:
        a = state["grad_avg"]
        a += (g - a) * (1 - alpha)      # torch: grad_avg.lerp_(grad, 1 - alpha)
        avg = np.sqrt(s - a * a)
    else:
        avg = np.sqrt(s)
    avg += eps
    if momentum > 0:
        buf = state["momentum_buffer"]
        buf *= momentum
        buf += g / avg
        p -= lr * buf
    else:
        p -= lr * (g / avg)


class RMSprop(Optimizer):
    """RMSprop. Defaults as torch: lr 1e-2, alpha 0.99, eps 1e-8.
    ``params``: Parameters or parameter groups (dicts), as torch.optim."""

    update = staticmethod(rmsprop_update)
    alpha = Hyperparameter("decay rate of the squared-gradient average s")
    eps = Hyperparameter("added to the root in the denominator")
    weight_decay = Hyperparameter("L2 penalty wd, added to the gradient as wd p")
    momentum = Hyperparameter("momentum factor mu (0: none)")
    centered = Hyperparameter("divide by the variance estimate s - a^2 instead of s")

    def __init__(self, params, lr: float = 1e-2, alpha: float = 0.99, eps: float = 1e-8,
                 weight_decay: float = 0.0, momentum: float = 0.0, centered: bool = False):
        super().__init__(params, lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay,
                         momentum=momentum, centered=centered)

    nonnegative = ("alpha", "eps", "weight_decay", "momentum")
    flags = ("centered",)


def adagrad_update(p, g, state, *, lr, lr_decay, weight_decay, eps,
                   initial_accumulator_value) -> None:
    """One Adagrad step, in place (torch.optim.Adagrad's rule):

        t <- t + 1;   g <- g + wd p;   clr = lr / (1 + (t - 1) lr_decay)
        s <- s + g^2;   p <- p - clr g / (sqrt(s) + eps)
    """
    if not state:
        state["step"] = 0
        state["sum"] = np.full_like(p, initial_accumulator_value)
    state["step"] += 1
    if weight_decay:
        g = g + weight_decay * p
    clr = lr / (1 + (state["step"] - 1) * lr_decay)
    s = state["sum"]
    s += g * g
    std = np.sqrt(s)
    std += eps
    p -= clr * (g / std)


class Adagrad(Optimizer):
    """Adagrad. Defaults as torch: lr 1e-2, eps 1e-10.
    ``params``: Parameters or parameter groups (dicts), as torch.optim."""

    update = staticmethod(adagrad_update)
    lr_decay = Hyperparameter("the step size is lr / (1 + (t - 1) lr_decay)")
    weight_decay = Hyperparameter("L2 penalty wd, added to the gradient as wd p")
    initial_accumulator_value = Hyperparameter("starting value of the sum of squares s")
    eps = Hyperparameter("added to sqrt(s) in the denominator")

    def __init__(self, params, lr: float = 1e-2, lr_decay: float = 0.0,
                 weight_decay: float = 0.0, initial_accumulator_value: float = 0.0,
                 eps: float = 1e-10):
        super().__init__(params, lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
                         initial_accumulator_value=initial_accumulator_value, eps=eps)

    nonnegative = ("lr_decay", "weight_decay", "initial_accumulator_value", "eps")
