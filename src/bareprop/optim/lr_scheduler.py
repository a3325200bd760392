"""Learning-rate schedules with torch.optim.lr_scheduler's semantics.

Each scheduler sets ``optimizer.lr`` at construction (for step 0) and on every
``step()``; the closed forms below equal torch's chained updates up to round-off.
Epoch-wise schedules step once per epoch, OneCycleLR once per batch, and
ReduceLROnPlateau takes the monitored metric.
"""
from __future__ import annotations

import bisect
import math

from ..errors import ConfigError, positive_int


class _Stateful:
    """state_dict() / load_state_dict(): every attribute but the optimizer."""

    def state_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "optimizer"}

    def load_state_dict(self, state: dict) -> None:
        self.__dict__.update(state)
        self._apply()

    def _apply(self) -> None:
        pass

    def get_last_lr(self) -> float:
        return self.optimizer.lr


class LRScheduler(_Stateful):
    per_batch = False

    def __init__(self, optimizer):
        self.optimizer = optimizer
        self.base_lr = optimizer.lr
        self.last_epoch = 0
        self._apply()

    def lr_at(self, t: int) -> float:  # pragma: no cover - abstract
        raise NotImplementedError

    def _apply(self) -> None:
        self.optimizer.lr = self.lr_at(self.last_epoch)

    def step(self, metric=None) -> None:
        self.last_epoch += 1
        self._apply()


class StepLR(LRScheduler):
    """lr = base * gamma ** (t // step_size)."""

    def __init__(self, optimizer, step_size: int, gamma: float = 0.1):
        self.step_size, self.gamma = positive_int("step_size", step_size), float(gamma)
        super().__init__(optimizer)

    def lr_at(self, t):
        return self.base_lr * self.gamma ** (t // self.step_size)


class MultiStepLR(LRScheduler):
    """lr = base * gamma ** (number of milestones <= t)."""

    def __init__(self, optimizer, milestones, gamma: float = 0.1):
        self.milestones, self.gamma = sorted(int(m) for m in milestones), float(gamma)
        super().__init__(optimizer)

    def lr_at(self, t):
        return self.base_lr * self.gamma ** bisect.bisect_right(self.milestones, t)


class ExponentialLR(LRScheduler):
    """lr = base * gamma ** t."""

    def __init__(self, optimizer, gamma: float):
        self.gamma = float(gamma)
        super().__init__(optimizer)

    def lr_at(self, t):
        return self.base_lr * self.gamma ** t


class CosineAnnealingLR(LRScheduler):
    """lr = eta_min + (base - eta_min) (1 + cos(pi t / T_max)) / 2 (SGDR without restarts)."""

    def __init__(self, optimizer, T_max: int, eta_min: float = 0.0):
        self.T_max, self.eta_min = positive_int("T_max", T_max), float(eta_min)
        super().__init__(optimizer)

    def lr_at(self, t):
        return self.eta_min + (self.base_lr - self.eta_min) * (
            1 + math.cos(math.pi * t / self.T_max)) / 2


class LinearLR(LRScheduler):
    """Linear warm-up: lr = base * (s + (e - s) * min(t, total_iters) / total_iters)."""

    def __init__(self, optimizer, start_factor: float = 1 / 3, end_factor: float = 1.0,
                 total_iters: int = 5):
        if not 0 < start_factor <= 1 or not 0 <= end_factor <= 1:
            raise ConfigError("LinearLR factors must lie in (0, 1] (start) and [0, 1] (end)")
        self.start_factor, self.end_factor = float(start_factor), float(end_factor)
        self.total_iters = int(total_iters)
        super().__init__(optimizer)

    def lr_at(self, t):
        frac = min(t, self.total_iters) / self.total_iters if self.total_iters else 1.0
        return self.base_lr * (self.start_factor + (self.end_factor - self.start_factor) * frac)


class OneCycleLR(LRScheduler):
    """Smith's 1cycle, stepped per batch: initial = max_lr / div_factor rises to max_lr over
    pct_start of total_steps, then anneals to initial / final_div_factor (cosine or linear).
    With cycle_momentum the momentum (or Adam's beta1) moves inversely, base_momentum <->
    max_momentum, as torch does.
    """

    per_batch = True

    def __init__(self, optimizer, max_lr: float, total_steps: int, pct_start: float = 0.3,
                 anneal_strategy: str = "cos", cycle_momentum: bool = True,
                 base_momentum: float = 0.85, max_momentum: float = 0.95,
                 div_factor: float = 25.0, final_div_factor: float = 1e4):
        if total_steps < 2:
            raise ConfigError(f"OneCycleLR needs total_steps >= 2, got {total_steps}")
        if anneal_strategy not in ("cos", "linear"):
            raise ConfigError(f"anneal_strategy must be 'cos' or 'linear', got {anneal_strategy!r}")
        self.max_lr, self.total_steps = float(max_lr), int(total_steps)
        self.initial_lr = self.max_lr / div_factor
        self.min_lr = self.initial_lr / final_div_factor
        self.anneal_strategy = anneal_strategy
        self.phase1_end = float(pct_start * total_steps) - 1
        self.cycle_momentum = cycle_momentum
        self.base_momentum, self.max_momentum = base_momentum, max_momentum
        h = optimizer.hyper
        if cycle_momentum and "momentum" not in h and "betas" not in h:
            raise ConfigError("optimizer has no momentum to cycle; pass cycle_momentum=False")
        super().__init__(optimizer)

    def _anneal(self, start, end, pct):
        if self.anneal_strategy == "cos":
            return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)
        return (end - start) * pct + start

    def _phase(self, t):
        if t <= self.phase1_end:
            return 0, t / self.phase1_end
        return 1, (t - self.phase1_end) / (self.total_steps - 1 - self.phase1_end)

    def lr_at(self, t):
        phase, pct = self._phase(t)
        if phase == 0:
            return self._anneal(self.initial_lr, self.max_lr, pct)
        return self._anneal(self.max_lr, self.min_lr, pct)

    def momentum_at(self, t):
        phase, pct = self._phase(t)
        if phase == 0:
            return self._anneal(self.max_momentum, self.base_momentum, pct)
        return self._anneal(self.base_momentum, self.max_momentum, pct)

    def _apply(self):
        if self.last_epoch > self.total_steps:
            raise ConfigError(f"OneCycleLR stepped {self.last_epoch} times, more than "
                              f"total_steps = {self.total_steps}")
        super()._apply()
        if self.cycle_momentum:
            m = self.momentum_at(self.last_epoch)
            h = self.optimizer.hyper
            if "betas" in h:
                h["betas"] = (m, h["betas"][1])
            else:
                h["momentum"] = m


class ReduceLROnPlateau(_Stateful):
    """Multiply lr by ``factor`` when ``metric`` has not improved for ``patience`` steps.

    Improvement (torch's rel/abs thresholds): mode min, rel: metric < best (1 - threshold);
    abs: metric < best - threshold (mirrored for mode max). After a reduction,
    ``cooldown`` steps pass before counting again; lr never goes below ``min_lr``, and
    changes smaller than ``eps`` are skipped.
    """

    per_batch = False

    def __init__(self, optimizer, mode: str = "min", factor: float = 0.1, patience: int = 10,
                 threshold: float = 1e-4, threshold_mode: str = "rel", cooldown: int = 0,
                 min_lr: float = 0.0, eps: float = 1e-8):
        if factor >= 1.0:
            raise ConfigError(f"factor must be < 1, got {factor}")
        if mode not in ("min", "max") or threshold_mode not in ("rel", "abs"):
            raise ConfigError("mode must be 'min'/'max' and threshold_mode 'rel'/'abs'")
        self.optimizer = optimizer
        self.mode, self.factor, self.patience = mode, float(factor), int(patience)
        self.threshold, self.threshold_mode = float(threshold), threshold_mode
        self.cooldown, self.min_lr, self.eps = int(cooldown), float(min_lr), float(eps)
        self.best = math.inf if mode == "min" else -math.inf
        self.num_bad_epochs = 0
        self.cooldown_counter = 0
        self.last_epoch = 0

    def _better(self, a, best):
        if self.mode == "min":
            ref = best * (1 - self.threshold) if self.threshold_mode == "rel" else best - self.threshold
            return a < ref
        ref = best * (1 + self.threshold) if self.threshold_mode == "rel" else best + self.threshold
        return a > ref

    def step(self, metric) -> None:
        metric = float(metric)
        self.last_epoch += 1
        if self._better(metric, self.best):
            self.best, self.num_bad_epochs = metric, 0
        else:
            self.num_bad_epochs += 1
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0
        if self.num_bad_epochs > self.patience:
            old = self.optimizer.lr
            new = max(old * self.factor, self.min_lr)
            if old - new > self.eps:
                self.optimizer.lr = new
            self.cooldown_counter = self.cooldown
            self.num_bad_epochs = 0
