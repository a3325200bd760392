"""Callbacks: everything around the training loop that is not the loop itself.

A callback sees a ``TrainState`` (model, optimizer, history, epoch, stop flag) at
fixed hook points; the loop never branches on what a callback does.
"""
from __future__ import annotations

import sys
import time


class Callback:
    def on_train_begin(self, state) -> None: ...
    def on_epoch_begin(self, state) -> None: ...
    def on_batch_end(self, state, loss: float, batch_size: int) -> None: ...
    def on_epoch_end(self, state, logs: dict) -> None: ...
    def on_train_end(self, state) -> None: ...


class ProgressBar(Callback):
    """A bar per epoch: batches done, running loss, examples per second.

    Uses tqdm when installed (``pip install 'bareprop[progress]'``), else prints
    one line per epoch.
    """

    def __init__(self, file=None, disable: bool = False):
        self.file = file or sys.stderr
        self.disable = disable
        self._bar = None

    def on_epoch_begin(self, state):
        self._t0 = time.perf_counter()
        self._seen = 0
        if self.disable:
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

    def on_epoch_end(self, state, logs):
        if self._bar is not None:
            self._bar.close()
            self._bar = None
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
