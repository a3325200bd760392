"""Live training events as JSON lines, for watchers such as ``bareprop serve``.

``EventLog`` appends one JSON object per line to a file (``events.jsonl`` in the run
folder when ``bareprop train --events`` is given) and flushes it, so another process
can tail the file while the run trains:

    {"event": "batch", "epoch": 1, "batch": 37, "batches": 469, "step": 37, "loss": 0.41,
     "lr": 0.001, "examples_per_s": 5123.0, "eta_s": 12.3, "t": 1700000000.0}
    {"event": "epoch", "epoch": 1, "epochs": 3, "train_loss": ..., "lr": ..., "t": ...}
    {"event": "state", "state": "running"|"finished"|"stopped"|"failed", "error": ..., ...}

Batch events are throttled to one per ``interval`` seconds (a line costs ~20 us; at
thousands of batches a second one per batch would cost more than the batch), but the
first and the last batch of every epoch are always written. Append-only: a resumed run continues
the same file, so a watcher replays the whole curve. The file is opened through
runs.writer.open_append: a link planted under its name is refused, never followed.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

from ..runs.writer import open_append
from .callbacks import Callback


class EventLog(Callback):
    needs_grads = False

    def __init__(self, path, interval: float = 0.1):
        self.path, self.interval = Path(path), interval
        self._file = None

    def write(self, event: str, **fields) -> None:
        """One line {"event": event, **fields, "t": now}, flushed at once."""
        if self._file is None:
            self._file = open_append(self.path.parent, self.path.name, encoding="utf-8")
        self._file.write(json.dumps({"event": event, **fields, "t": time.time()}) + "\n")
        self._file.flush()

    def state(self, state: str, **fields) -> None:
        self.write("state", state=state, **fields)

    def on_train_begin(self, state):
        self._step = state.epoch * state.batches_per_epoch
        self.state("running", epoch=state.epoch, epochs=state.epochs)

    def on_epoch_begin(self, state):
        self._t0 = self._last = time.perf_counter()
        self._batch = self._seen = 0

    def on_batch_end(self, state, loss, batch_size):
        self._batch += 1
        self._step += 1
        self._seen += batch_size
        now = time.perf_counter()
        edge = self._batch in (1, state.batches_per_epoch)   # a curve starts at its start
        if now - self._last < self.interval and not edge:
            return
        self._last = now
        elapsed = max(now - self._t0, 1e-9)
        per_batch = elapsed / self._batch
        left = (state.batches_per_epoch - self._batch
                + (state.epochs - state.epoch - 1) * state.batches_per_epoch)
        self.write("batch", epoch=state.epoch + 1, batch=self._batch,
                   batches=state.batches_per_epoch, step=self._step, loss=float(loss),
                   lr=float(state.optimizer.lr), examples_per_s=self._seen / elapsed,
                   eta_s=per_batch * left)

    def on_epoch_end(self, state, logs):
        self.write("epoch", epochs=state.epochs, **{k: float(v) if k != "epoch" else int(v)
                                                    for k, v in logs.items()})

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
