"""Learning-rate schedules with torch.optim.lr_scheduler's semantics, per parameter group.

Each scheduler sets every group's ``param_groups[i]["lr"]`` at construction (for step
0) and on every ``step()``; the closed forms below equal torch's chained updates up to
round-off. As in torch, a schedule scales each group from that group's own lr at
construction (``base_lrs``), so a group with 10x the lr keeps 10x the lr throughout.
Epoch-wise schedules step once per epoch, OneCycleLR once per batch, and
ReduceLROnPlateau takes the monitored metric.
"""
from __future__ import annotations

import bisect
import math

from ..errors import ConfigError, positive_int


def per_group(name: str, value, optimizer) -> list[float]:
    """``value`` for each parameter group: one number for all, or one per group (torch's)."""
    n = len(optimizer.param_groups)
    if isinstance(value, (list, tuple)):
        if len(value) != n:
            raise ConfigError(f"{name} has {len(value)} values for {n} parameter groups")
        return [float(v) for v in value]
    return [float(value)] * n


class _Stateful:
    """state_dict() / load_state_dict(): every attribute but the optimizer."""

    #: per-group lists; a state saved before parameter groups holds each as one number
    #: under the singular name (``base_lr``), which loading spreads over the groups
    _per_group: tuple = ()

    def state_dict(self) -> dict:
        return {k: (list(v) if isinstance(v, list) else v)
                for k, v in self.__dict__.items() if k != "optimizer"}

    def upgrade_state_dict(self, state):
        """A state written before parameter groups (single numbers) in today's per-group
        form; anything else unchanged."""
        if not isinstance(state, dict):
            return state
        state = dict(state)
        for name in self._per_group:
            old = name[:-1]
            if old in state and name not in state:  # before parameter groups: --resume works
                state[name] = per_group(name, state.pop(old), self.optimizer)
        return state

    def load_state_dict(self, state: dict) -> None:
        self.__dict__.update(self.upgrade_state_dict(state))
        self._apply()

    def _apply(self) -> None:
        pass

    def get_last_lr(self) -> list[float]:
        """Every group's current lr (a list, as torch)."""
        return [g["lr"] for g in self.optimizer.param_groups]


class LRScheduler(_Stateful):
    per_batch = False
    _per_group = ("base_lrs",)

    def __init__(self, optimizer):
        self.optimizer = optimizer
        self.base_lrs = [g["lr"] for g in optimizer.param_groups]
        self.last_epoch = 0
        self._apply()

    def lr_at(self, t: int, base_lr: float) -> float:  # pragma: no cover - abstract
        """The lr at step ``t`` of a group whose lr was ``base_lr`` at construction."""
        raise NotImplementedError

    def _apply(self) -> None:
        t = self.last_epoch
        for g, base in zip(self.optimizer.param_groups, self.base_lrs):
            g["lr"] = self.lr_at(t, base)

    def step(self, metric=None) -> None:
        self.last_epoch += 1
        self._apply()


class StepLR(LRScheduler):
    """lr = base * gamma ** (t // step_size)."""

    def __init__(self, optimizer, step_size: int, gamma: float = 0.1):
        self.step_size, self.gamma = positive_int("step_size", step_size), float(gamma)
        super().__init__(optimizer)

    def lr_at(self, t, base_lr):
        return base_lr * self.gamma ** (t // self.step_size)


class MultiStepLR(LRScheduler):
    """lr = base * gamma ** (number of milestones <= t)."""

    def __init__(self, optimizer, milestones, gamma: float = 0.1):
        self.milestones, self.gamma = sorted(int(m) for m in milestones), float(gamma)
        super().__init__(optimizer)

    def lr_at(self, t, base_lr):
        return base_lr * self.gamma ** bisect.bisect_right(self.milestones, t)


class ExponentialLR(LRScheduler):
    """lr = base * gamma ** t."""

    def __init__(self, optimizer, gamma: float):
        self.gamma = float(gamma)
        super().__init__(optimizer)

    def lr_at(self, t, base_lr):
        return base_lr * self.gamma ** t


class CosineAnnealingLR(LRScheduler):
    """lr = eta_min + (base - eta_min) (1 + cos(pi t / T_max)) / 2 (SGDR without restarts)."""

    def __init__(self, optimizer, T_max: int, eta_min: float = 0.0):
        self.T_max, self.eta_min = positive_int("T_max", T_max), float(eta_min)
        super().__init__(optimizer)

    def lr_at(self, t, base_lr):
        return self.eta_min + (base_lr - self.eta_min) * (
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

    def lr_at(self, t, base_lr):
        frac = min(t, self.total_iters) / self.total_iters if self.total_iters else 1.0
        return base_lr * (self.start_factor + (self.end_factor - self.start_factor) * frac)


class OneCycleLR(LRScheduler):
    """Smith's 1cycle, stepped per batch: initial = max_lr / div_factor rises to max_lr over
    pct_start of total_steps, then anneals to initial / final_div_factor (cosine or linear).
    With cycle_momentum the momentum (or Adam's beta1) moves inversely, base_momentum <->
    max_momentum, as torch does. ``max_lr``, ``base_momentum`` and ``max_momentum`` take
    one number for every group or a list with one per group (torch's); like torch, the
    groups' own lrs are replaced, not scaled.
    """

    per_batch = True
    _per_group = LRScheduler._per_group + ("max_lrs", "initial_lrs", "min_lrs",
                                           "base_momentums", "max_momentums")

    def __init__(self, optimizer, max_lr, total_steps: int, pct_start: float = 0.3,
                 anneal_strategy: str = "cos", cycle_momentum: bool = True,
                 base_momentum=0.85, max_momentum=0.95,
                 div_factor: float = 25.0, final_div_factor: float = 1e4):
        if total_steps < 2:
            raise ConfigError(f"OneCycleLR needs total_steps >= 2, got {total_steps}")
        if anneal_strategy not in ("cos", "linear"):
            raise ConfigError(f"anneal_strategy must be 'cos' or 'linear', got {anneal_strategy!r}")
        self.total_steps = int(total_steps)
        self.max_lrs = per_group("max_lr", max_lr, optimizer)
        self.initial_lrs = [m / div_factor for m in self.max_lrs]
        self.min_lrs = [i / final_div_factor for i in self.initial_lrs]
        self.anneal_strategy = anneal_strategy
        self.phase1_end = float(pct_start * total_steps) - 1
        self.cycle_momentum = cycle_momentum
        self.base_momentums = per_group("base_momentum", base_momentum, optimizer)
        self.max_momentums = per_group("max_momentum", max_momentum, optimizer)
        d = optimizer.defaults
        if cycle_momentum and "momentum" not in d and "betas" not in d:
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

    def lr_at(self, t, i=0):
        """Group ``i``'s lr at step ``t``."""
        phase, pct = self._phase(t)
        if phase == 0:
            return self._anneal(self.initial_lrs[i], self.max_lrs[i], pct)
        return self._anneal(self.max_lrs[i], self.min_lrs[i], pct)

    def momentum_at(self, t, i=0):
        """Group ``i``'s momentum (or beta1) at step ``t``."""
        phase, pct = self._phase(t)
        if phase == 0:
            return self._anneal(self.max_momentums[i], self.base_momentums[i], pct)
        return self._anneal(self.base_momentums[i], self.max_momentums[i], pct)

    def _apply(self):
        t = self.last_epoch
        if t > self.total_steps:
            raise ConfigError(f"OneCycleLR stepped {t} times, more than "
                              f"total_steps = {self.total_steps}")
        for i, g in enumerate(self.optimizer.param_groups):
            g["lr"] = self.lr_at(t, i)
            if self.cycle_momentum:
                m = self.momentum_at(t, i)
                if "betas" in g:
                    g["betas"] = (m, g["betas"][1])
                else:
                    g["momentum"] = m


class ReduceLROnPlateau(_Stateful):
    """Multiply lr by ``factor`` when ``metric`` has not improved for ``patience`` steps.

    Improvement (torch's rel/abs thresholds): mode min, rel: metric < best (1 - threshold);
    abs: metric < best - threshold (mirrored for mode max). After a reduction,
    ``cooldown`` steps pass before counting again; each group's lr is reduced on its own,
    never below ``min_lr`` (one number, or one per group), and changes smaller than
    ``eps`` are skipped.
    """

    per_batch = False
    _per_group = ("min_lrs",)

    def __init__(self, optimizer, mode: str = "min", factor: float = 0.1, patience: int = 10,
                 threshold: float = 1e-4, threshold_mode: str = "rel", cooldown: int = 0,
                 min_lr=0.0, eps: float = 1e-8):
        if factor >= 1.0:
            raise ConfigError(f"factor must be < 1, got {factor}")
        if mode not in ("min", "max") or threshold_mode not in ("rel", "abs"):
            raise ConfigError("mode must be 'min'/'max' and threshold_mode 'rel'/'abs'")
        self.optimizer = optimizer
        self.mode, self.factor, self.patience = mode, float(factor), int(patience)
        self.threshold, self.threshold_mode = float(threshold), threshold_mode
        self.cooldown, self.eps = int(cooldown), float(eps)
        self.min_lrs = per_group("min_lr", min_lr, optimizer)
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
            for g, min_lr in zip(self.optimizer.param_groups, self.min_lrs):
                old = g["lr"]
                new = max(old * self.factor, min_lr)
                if old - new > self.eps:
                    g["lr"] = new
            self.cooldown_counter = self.cooldown
            self.num_bad_epochs = 0
