"""Callbacks: everything around the training loop that is not the loop itself.

A callback sees a ``TrainState`` (model, optimizer, history, epoch, stop flag) at
fixed hook points; the loop never branches on what a callback does. ``close()`` is the
one hook that runs however fit ends (finished, diverged, Ctrl-C): a callback holding
files, writers or threads releases them there.
"""
from __future__ import annotations

import sys
import time


class Callback:
    """The base of fit's callbacks: override any of the on_* hooks (each gets fit's state)."""

    #: whether this callback reads ``p.grad`` (in on_batch_end, say). While any callback
    #: might, ``fit`` keeps every gradient; when none does, an SGD step may be fused into
    #: backward's GEMMs and leave Linear weights' ``grad`` empty (train/step.py). True
    #: unless a callback says otherwise: a callback written before fusion stays correct.
    needs_grads = True

    def on_train_begin(self, state) -> None: ...
    def on_epoch_begin(self, state) -> None: ...
    def on_batch_end(self, state, loss: float, batch_size: int) -> None: ...
    def on_epoch_end(self, state, logs: dict) -> None: ...
    def on_train_end(self, state) -> None: ...

    def close(self) -> None:
        """Release what the callback holds; fit calls it once as it ends, however it ends
        (after ``on_train_end`` when training finished)."""


def close_all(callbacks, quiet: bool = False) -> None:
    """Every callback's ``close()``, each one even when one before it raised; the first
    error is raised after all have run, or (``quiet``: fit is raising already) dropped."""
    first = None
    for cb in callbacks:
        close = getattr(cb, "close", None)       # a duck-typed callback may have none
        try:
            if close is not None:
                close()
        except Exception as exc:
            first = first or exc
    if first is not None and not quiet:
        raise first


class ProgressBar(Callback):
    """A bar per epoch: batches done, running loss, examples per second.

    Uses tqdm when installed (``pip install 'bareprop[progress]'``) and ``file`` is a
    terminal; otherwise (CI logs, files, pipes) only the plain line per epoch, since
    each ``\r`` redraw would be a line of its own there.
    """

    needs_grads = False

    def __init__(self, file=None, disable: bool = False):
        self.file = file or sys.stderr
        self.disable = disable
        self._bar = None

    def _live(self) -> bool:
        isatty = getattr(self.file, "isatty", None)
        try:
            return bool(isatty and isatty())
        except (OSError, ValueError):   # a closed or odd stream: no bar
            return False

    def on_epoch_begin(self, state):
        self._t0 = time.perf_counter()
        self._seen = 0
        if self.disable or not self._live():
            return
        try:
            from tqdm import tqdm
        except ImportError:
            self._bar = None
            return
        self._bar = tqdm(total=state.batches_per_epoch, file=self.file, leave=False,
                         desc=f"epoch {state.epoch + 1}/{state.epochs}", unit="batch",
                         dynamic_ncols=True, mininterval=0.25)

    def on_batch_end(self, state, loss, batch_size):
        self._seen += batch_size
        if self._bar is not None:
            self._bar.update(1)
            if self._bar.n % 20 == 0 or self._bar.n == self._bar.total:
                rate = self._seen / max(time.perf_counter() - self._t0, 1e-9)
                self._bar.set_postfix(loss=f"{loss:.4f}", ex_s=f"{rate:,.0f}", refresh=False)

    def close(self):
        if self._bar is not None:             # an epoch cut short: the bar goes too
            self._bar.close()
            self._bar = None

    def on_epoch_end(self, state, logs):
        self.close()
        if self.disable:
            return
        parts = [f"epoch {logs['epoch']}/{state.epochs}",
                 f"loss {logs['train_loss']:.4f}", f"acc {logs['train_accuracy']:.4f}"]
        for prefix in ("val", "test"):
            if f"{prefix}_loss" in logs:
                parts.append(f"{prefix}_loss {logs[prefix + '_loss']:.4f}")
                parts.append(f"{prefix}_acc {logs[prefix + '_accuracy']:.4f}")
        parts.append(f"{logs['seconds']:.2f}s")
        print("  ".join(parts), file=self.file, flush=True)


class LRSchedule(Callback):
    """Steps a scheduler: per batch (OneCycleLR), per epoch, or on a monitored metric
    (ReduceLROnPlateau, default ``val_loss``, else ``train_loss`` when there is no val set)."""

    needs_grads = False

    def __init__(self, scheduler, monitor: str = "val_loss"):
        self.scheduler, self.monitor = scheduler, monitor

    def on_batch_end(self, state, loss, batch_size):
        if self.scheduler.per_batch:
            self.scheduler.step()

    def on_epoch_end(self, state, logs):
        from ..optim.lr_scheduler import ReduceLROnPlateau

        if isinstance(self.scheduler, ReduceLROnPlateau):
            self.scheduler.step(logs.get(self.monitor, logs["train_loss"]))
        elif not self.scheduler.per_batch:
            self.scheduler.step()

    def state_dict(self):
        return self.scheduler.state_dict()

    def load_state_dict(self, state):
        self.scheduler.load_state_dict(state)


class MaxNorm(Callback):
    """After every step, rows of every hidden Linear weight get L2 norm <= max_norm."""

    needs_grads = False

    def __init__(self, max_norm: float):
        self.max_norm = max_norm

    def on_train_begin(self, state):
        from ..core import Linear

        linears = [m for m in state.model.layers if isinstance(m, Linear)]
        self._weights = [m.weight for m in linears[:-1]]

    def on_batch_end(self, state, loss, batch_size):
        from ..optim.constraints import max_norm_

        max_norm_([w.data for w in self._weights], self.max_norm)


def improved(value, best, mode: str, min_delta: float = 0.0) -> bool:
    """Whether ``value`` beats ``best`` (None: nothing yet) by more than ``min_delta``."""
    if best is None:
        return True
    if mode == "min":
        return value < best - min_delta
    return value > best + min_delta


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved by ``min_delta`` for ``patience`` epochs;
    with ``restore_best_weights`` the model ends with the best epoch's weights (as Keras)."""

    needs_grads = False

    def __init__(self, monitor: str = "val_loss", patience: int = 5, min_delta: float = 0.0,
                 mode: str = "auto", restore_best_weights: bool = True):
        self.monitor, self.patience, self.min_delta = monitor, int(patience), abs(min_delta)
        self.mode = mode if mode != "auto" else ("max" if "acc" in monitor else "min")
        self.restore_best_weights = restore_best_weights
        self.best, self.wait, self.best_epoch, self.best_weights = None, 0, 0, None
        self.stopped_epoch = 0

    def on_epoch_end(self, state, logs):
        if self.monitor not in logs:
            from ..errors import ConfigError

            raise ConfigError(f"early stopping monitors {self.monitor!r}, which this run does "
                              f"not record (have: {', '.join(sorted(logs))}); add --val-fraction")
        value = logs[self.monitor]
        if improved(value, self.best, self.mode, self.min_delta):
            self.best, self.wait, self.best_epoch = value, 0, logs["epoch"]
            if self.restore_best_weights:
                self.best_weights = state.model.state_dict()
        else:
            self.wait += 1
            if self.wait >= self.patience:
                state.stop_training = True
                self.stopped_epoch = logs["epoch"]

    def on_train_end(self, state):
        if self.restore_best_weights and self.best_weights is not None and self.stopped_epoch:
            state.model.load_state_dict(self.best_weights)

    def state_dict(self):
        return {"best": self.best, "wait": self.wait, "best_epoch": self.best_epoch,
                "best_weights": self.best_weights, "stopped_epoch": self.stopped_epoch}

    def load_state_dict(self, s):
        self.best, self.wait, self.best_epoch = s["best"], s["wait"], s["best_epoch"]
        self.best_weights, self.stopped_epoch = s["best_weights"], s["stopped_epoch"]


class ModelCheckpoint(Callback):
    """Save the model (bareprop model file) after each epoch, or only when ``monitor`` improves."""

    needs_grads = False

    def __init__(self, path, monitor: str | None = None, mode: str = "min", extra=None):
        self.path, self.monitor, self.mode, self.extra = path, monitor, mode, extra
        self.best = None

    def on_epoch_end(self, state, logs):
        from ..modelfile import save

        if self.monitor is not None:
            value = logs[self.monitor]
            if not improved(value, self.best, self.mode):
                return
            self.best = value
        save(state.model, self.path, extra=self.extra)


class Checkpointer(Callback):
    """Writes the full training state to ``path`` after every epoch (for --resume).

    ``stateful``: name -> object with state_dict()/load_state_dict() (scheduler, early
    stopping, ...), saved alongside the model and optimizer. Runs after the other
    callbacks, so what it saves is the state the next epoch starts from.
    """

    needs_grads = False

    def __init__(self, path, meta: dict, stateful: dict):
        self.path, self.meta, self.stateful = path, meta, stateful

    def on_train_begin(self, state):
        # A fresh run saves its starting state too: a run interrupted (Ctrl-C, or a
        # stop from bareprop serve) in its first epoch is then resumable like any other.
        if state.epoch == 0 and not state.history.epochs:
            self._save(state, 0)

    def on_epoch_end(self, state, logs):
        self._save(state, logs["epoch"])

    def _save(self, state, epoch: int) -> None:
        from .checkpoint import save_checkpoint

        save_checkpoint(self.path, {
            **self.meta,
            "epoch": epoch,
            "model": state.model.state_dict(),
            "optimizer": state.optimizer.state_dict(),
            "callbacks": {k: v.state_dict() for k, v in self.stateful.items()},
            "history": state.history.to_dict(),
            "stopped": state.stop_training,
        })
