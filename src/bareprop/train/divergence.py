"""When a training run counts as diverged: the rule, kept apart from the loop.

A loss that becomes NaN or infinite has diverged; so has a finite loss that explodes,
e.g. ``--optimizer sgd --lr 100 --scale raw`` jumps from 203 to 2.6e8 on its second
batch (and would otherwise recover to a dead, constant network and exit 0).

The rule: the loss passes ``max(FLOOR, FACTOR * first)``, ``first`` being the first
batch's loss of this fit() call. A healthy run's loss stays at or below its first
value: measured on MNIST, the largest batch loss over the first value was 1.01 (seed,
raw pixels, first loss 2.3), 1.00 (keras-seed, raw pixels, first loss 182), 1.00
(default, best-mlp); the exploding run above reaches 1e6 times it. FLOOR keeps a
resumed run, whose first loss is already small, from tripping on an ordinary spike.
"""
from __future__ import annotations

import math

from ..errors import TrainingDiverged

FACTOR = 1e3
FLOOR = 1e4
DIVERGED_ADVICE = ("lower the learning rate (--lr) or scale the inputs "
                   "(--scale unit or --scale standard)")


def check_finite_loss(loss: float, where: str) -> None:
    """TrainingDiverged, with the advice, when ``loss`` is NaN or infinite."""
    if not math.isfinite(loss):
        raise TrainingDiverged(f"training diverged: the loss became {loss} {where}; "
                               + DIVERGED_ADVICE)


class DivergenceGuard:
    """The loop asks ``if not loss <= guard.limit: guard.check(loss, where)``: one scalar
    comparison per batch (NaN fails it too), the rest only on the rare batch that does."""

    def __init__(self, factor: float = FACTOR, floor: float = FLOOR):
        self.factor, self.floor = factor, floor
        self.limit = -math.inf          # the first batch always reaches check(), which sets it

    def check(self, loss: float, where: str) -> None:
        check_finite_loss(loss, where)
        if self.limit == -math.inf:
            self.limit = max(self.floor, self.factor * loss)
            return
        raise TrainingDiverged(f"training diverged: the loss exploded to {loss:.3g} {where} "
                               f"(over {self.limit:.3g}, {self.factor:g} times the first "
                               f"batch's); " + DIVERGED_ADVICE)
