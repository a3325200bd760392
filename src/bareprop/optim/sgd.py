"""SGD with momentum, dampening, Nesterov and L2 weight decay, as torch.optim.SGD."""
from __future__ import annotations

import numpy as np

from ..errors import ConfigError
from .optimizer import Optimizer, check_range, scratch


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
