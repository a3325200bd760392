"""The learning-rate range test (Smith 2017, "Cyclical learning rates"; as fastai's
``lr_find`` and Lightning's ``Tuner.lr_find``): train from the model's weights with a
learning rate rising exponentially, batch by batch,

    lr_i = start (end / start)^(i / (n - 1)),   i = 0 .. n - 1,  n <= one epoch's batches,

record the loss (100 batches by default, as fastai and Lightning: more batches train
the model further at the low rates, and the curve's descent moves left), smooth it (an exponential moving average with bias correction, beta =
0.98), stop once the smoothed loss exceeds ``diverge`` times its minimum (or turns NaN),
and put the model and the optimizer back exactly as they were. The suggestion is where
the smoothed loss falls fastest against log lr: a rate still on the way down, safely
below the blow-up, the usual starting point for a schedule's peak.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError
from .loop import as_batches
from .step import TrainStep

BETA = 0.98          # the moving average's weight (fastai's)
SKIP_START = 10      # points left out at the start of the search for the steepest slope
SKIP_END = 5         # ... and at its end (the blow-up), as Lightning's suggestion


@dataclass
class LRFindResult:
    """The range test's curve: ``lrs`` and the raw and smoothed ``losses`` of each batch
    trained, the ``suggestion`` (None when the curve is too short to say), and whether it
    stopped early because the loss diverged."""
    lrs: np.ndarray
    losses: np.ndarray
    smoothed: np.ndarray
    suggestion: float | None
    diverged: bool

    def plot(self, path, title: str = "") -> bool:
        """loss against lr (log axis) with the suggestion marked, to ``path`` (False
        without matplotlib)."""
        return save_lr_find(self, path, title)


def suggest(lrs: np.ndarray, smoothed: np.ndarray) -> float | None:
    """The lr where the smoothed loss falls fastest against log lr (the most negative
    slope), the first SKIP_START and last SKIP_END points left out; None if fewer than
    SKIP_START + SKIP_END + 2 points remain."""
    lo, hi = SKIP_START, len(lrs) - SKIP_END
    if hi - lo < 2:
        return None
    slope = np.gradient(smoothed[lo:hi], np.log(lrs[lo:hi]))
    if not np.all(np.isfinite(slope)):
        return None
    return float(lrs[lo + int(np.argmin(slope))])


def check_range(start: float, end: float, diverge: float = 4.0) -> None:
    """ConfigError (one line) unless 0 < start < end < inf and diverge > 1."""
    if not (0 < start < end < math.inf):
        raise ConfigError(f"the range test needs 0 < start < end, got start {start} and end "
                          f"{end}; e.g. start 1e-7, end 10")
    if not (1 < diverge < math.inf):
        raise ConfigError(f"diverge must be a number above 1 (the loss's blow-up factor), "
                          f"got {diverge}")


def lr_find(model, loss_fn, optimizer, train, *, start: float = 1e-7, end: float = 10.0,
            steps: int | None = 100, batch_size: int = 128, diverge: float = 4.0,
            seed: int = 0) -> LRFindResult:
    """Run the range test on ``train`` (Batches, or an (x, y) pair of arrays already in the
    model's input scale) for ``steps`` batches (100, as fastai's and Lightning's; None:
    one epoch), at most one epoch, every
    parameter group's lr set to lr_i before batch i. Afterwards the model's parameters,
    buffers (batch norm's running statistics), gradients and train/eval mode and the
    optimizer's state and settings are what they were."""
    check_range(start, end, diverge)
    batches = as_batches(train, batch_size, model.dtype, shuffle=True, seed=seed)
    n = len(batches) if steps is None else min(int(steps), len(batches))
    if n < 2:
        raise ConfigError(f"the range test needs at least 2 batches, got {n}; give more "
                          "data or a smaller batch size")
    lrs = start * (end / start) ** (np.arange(n) / (n - 1))
    saved = _snapshot(model, optimizer)
    losses, smoothed, avg, best, diverged = [], [], 0.0, math.inf, False
    try:
        model.train()
        step = TrainStep(model, loss_fn, optimizer)
        for i, (xb, yb) in enumerate(batches.epoch(0)):
            if i == n:
                break
            for g in optimizer.param_groups:
                g["lr"] = float(lrs[i])
            loss, _ = step(xb, yb)
            loss = float(loss)
            losses.append(loss)
            avg = BETA * avg + (1 - BETA) * loss
            s = avg / (1 - BETA ** (i + 1))
            smoothed.append(s)
            best = min(best, s)
            if not math.isfinite(s) or (i > 0 and s > diverge * best):
                diverged = True
                break
    finally:
        _restore(model, optimizer, saved)
    k = len(losses)
    lrs, smoothed = lrs[:k], np.asarray(smoothed)
    return LRFindResult(lrs, np.asarray(losses), smoothed, suggest(lrs, smoothed), diverged)


def _generators(model) -> list:
    """The generators of the layers that draw (those ``fit`` reseeds: dropout's masks):
    the test draws from them, and training afterwards must draw what it would have."""
    return list({id(m.rng): m.rng for m in model.modules() if hasattr(m, "reseed")}.values())


def _snapshot(model, optimizer) -> dict:
    return {"state": {k: v.copy() for k, v in model.state_dict().items()},
            "rngs": [(g, copy.deepcopy(g.bit_generator.state)) for g in _generators(model)],
            "grads": [(p, None if p.grad is None else p.grad.copy())
                      for p in model.parameters()],
            "modes": [(m, m.training) for m in model.modules()],
            "optimizer": copy.deepcopy(optimizer.state_dict()),
            "groups": [{k: v for k, v in g.items() if k != "params"}
                       for g in optimizer.param_groups]}


def _restore(model, optimizer, saved: dict) -> None:
    model.load_state_dict(saved["state"])
    for g, state in saved["rngs"]:
        g.bit_generator.state = state                  # in place: whoever holds it, sees it
    for p, g in saved["grads"]:
        p.grad = g
    for m, mode in saved["modes"]:
        m.training = mode
    optimizer.load_state_dict(saved["optimizer"])
    for g, hyper in zip(optimizer.param_groups, saved["groups"]):
        g.update(hyper)


def save_lr_find(result, path, title: str = "") -> bool:
    """The range test: raw and smoothed loss against the learning rate (log axis), the
    suggestion marked."""
    from ..plots import _plain, _pyplot, _save

    plt = _pyplot()
    if plt is None:
        return False
    fig, ax = plt.subplots(figsize=(6.4, 4))
    ax.plot(result.lrs, result.losses, color="#c7d2fe", lw=1, label="loss")
    ax.plot(result.lrs, result.smoothed, color="#4f46e5", lw=2, label="smoothed")
    if result.suggestion is not None:
        ax.axvline(result.suggestion, color="#dc2626", ls="--",
                   label=f"suggestion {result.suggestion:.2g}")
    ax.set_xscale("log")
    raw, smooth = (np.asarray(a)[np.isfinite(a)] for a in (result.losses, result.smoothed))
    if len(smooth):                  # the descent in view, the blow-up cut off above
        lo = float(min(smooth.min(), raw.min() if len(raw) else smooth.min()))
        hi = float(max(smooth[0], raw[: max(1, len(raw) // 10)].max() if len(raw) else 0))
        ax.set_ylim(lo - 0.05 * (hi - lo), hi + 0.3 * (hi - lo) + 1e-9)
    ax.set_xlabel("learning rate")
    ax.set_ylabel("training loss")
    ax.set_title(_plain(title or "learning-rate range test"), fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    _save(fig, path, dpi=90)
    return True
