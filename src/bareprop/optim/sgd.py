"""SGD with momentum, dampening, Nesterov and L2 weight decay, as torch.optim.SGD."""
from __future__ import annotations

import numpy as np

from ..errors import ConfigError
from .optimizer import Optimizer, check_range


def sgd_update(p: np.ndarray, g: np.ndarray, state: dict, *, lr: float, momentum: float,
               dampening: float, nesterov: bool, weight_decay: float) -> None:
    """One SGD step, in place (torch.optim.SGD's rule):

        g <- g + wd p
        b <- g                               (first step)
        b <- mu b + (1 - dampening) g        (later steps)
        g <- g + mu b  if nesterov  else  b
        p <- p - lr g
    """
    if weight_decay:
        g = g + weight_decay * p
    if momentum:
        buf = state.get("momentum_buffer")
        if buf is None:
            buf = state["momentum_buffer"] = g.copy()
        else:
            buf *= momentum
            buf += (1 - dampening) * g
        g = g + momentum * buf if nesterov else buf
    p -= lr * g


class SGD(Optimizer):
    """Stochastic gradient descent. Defaults: momentum 0, no weight decay (torch's)."""

    update = staticmethod(sgd_update)

    def __init__(self, params, lr: float = 0.01, momentum: float = 0.0, dampening: float = 0.0,
                 nesterov: bool = False, weight_decay: float = 0.0):
        check_range("momentum", momentum, 0.0)
        check_range("dampening", dampening, 0.0)
        check_range("weight_decay", weight_decay, 0.0)
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ConfigError("Nesterov momentum requires a momentum > 0 and zero dampening")
        super().__init__(params, lr, momentum=float(momentum), dampening=float(dampening),
                         nesterov=bool(nesterov), weight_decay=float(weight_decay))
