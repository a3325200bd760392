"""SGD with momentum, dampening, Nesterov and L2 weight decay, as torch.optim.SGD."""
from __future__ import annotations

import numpy as np

from ..errors import ConfigError
from .optimizer import Hyperparameter, Optimizer, scratch


def sgd_update(p: np.ndarray, g: np.ndarray, state: dict, *, lr: float, momentum: float,
               dampening: float, nesterov: bool, weight_decay: float) -> None:
    """One SGD step, in place (torch.optim.SGD's rule):

        g <- g + wd p
        b <- g                               (first step)
        b <- mu b + (1 - dampening) g        (later steps)
        g <- g + mu b  if nesterov  else  b
        p <- p - lr g
    """
    # in place through scratch arrays (see optimizer.scratch)
    if weight_decay:
        wd_g = scratch(state, "_wd", p)
        np.multiply(p, weight_decay, out=wd_g)
        wd_g += g
        g = wd_g                                        # g + wd p
    if momentum:
        buf = state.get("momentum_buffer")
        if buf is None:
            buf = state["momentum_buffer"] = g.copy()
        else:
            buf *= momentum
            if dampening:
                buf += (1 - dampening) * g
            else:
                buf += g
        if nesterov:
            nes = scratch(state, "_nesterov", p)
            np.multiply(buf, momentum, out=nes)
            nes += g                                    # g + mu b
            g = nes
        else:
            g = buf
    step = scratch(state, "_step", p)
    np.multiply(g, lr, out=step)
    p -= step


class SGD(Optimizer):
    """Stochastic gradient descent. Defaults: momentum 0, no weight decay (torch's).

    ``params``: Parameters, or parameter groups (dicts) whose own values override
    these defaults, as torch.optim::

        SGD([{"params": weights, "weight_decay": 1e-4}, {"params": biases}],
            lr=0.1, momentum=0.9)
    """

    update = staticmethod(sgd_update)
    momentum = Hyperparameter("momentum factor mu (0: none)")
    dampening = Hyperparameter("dampening of the momentum's gradient term")
    nesterov = Hyperparameter("Nesterov momentum (needs momentum > 0, dampening 0)")
    weight_decay = Hyperparameter("L2 penalty wd, added to the gradient as wd p")

    def __init__(self, params, lr: float = 0.01, momentum: float = 0.0, dampening: float = 0.0,
                 nesterov: bool = False, weight_decay: float = 0.0):
        super().__init__(params, lr=lr, momentum=momentum, dampening=dampening,
                         nesterov=nesterov, weight_decay=weight_decay)

    nonnegative = ("momentum", "dampening", "weight_decay")
    flags = ("nesterov",)

    @classmethod
    def check_hyperparameters(cls, h: dict) -> dict:
        h = super().check_hyperparameters(h)
        if h["nesterov"] and (h["momentum"] <= 0 or h["dampening"] != 0):
            raise ConfigError("Nesterov momentum requires a momentum > 0 and zero dampening")
        return h
