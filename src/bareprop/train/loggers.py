"""Training logs where people already look: TensorBoard event files and a CSV file.

Both are callbacks (train/callbacks.py), usable from the library as from
``bareprop train --log tensorboard,csv``:

    bp.fit(model, loss, opt, data, 5, callbacks=[bp.CSVLogger("metrics.csv"),
                                                bp.TensorBoardLogger("tb", graph=bp.save_onnx)])

CSVLogger   one row per epoch, as Keras' CSVLogger: ``epoch,train_loss,...`` with the
            logs' keys as columns and every value as Python writes it (round-trips).
            The file is the run's History rewritten whole (atomically) after each
            epoch, so a resumed run continues it without duplicating a row.
TensorBoardLogger  through tensorboardX's SummaryWriter (``pip install
            'bareprop[tensorboard]'``), two runs under ``logdir``:
              batches/  ``loss`` and ``lr`` per batch, step = batches since the start
              epochs/   every per-epoch value of the logs (``train_loss``, ``test_accuracy``,
                        ``lr``, ``seconds``, ...) under its metrics.json name, step = epoch
                        (1-based); ``weights/<name>`` and ``gradients/<name>`` histograms
                        (the gradient of the epoch's last batch); the model graph, from
                        the ONNX file ``graph`` writes (``bp.save_onnx``; ``bareprop train``
                        passes it), when the onnx extra is installed
            Each writer starts with a purge step, so events a resumed (or overwritten)
            run writes again replace the old ones in TensorBoard instead of doubling.
            The writers are closed when fit ends, however it ends (Ctrl-C included),
            within CLOSE_SECONDS: a writer tensorboardX cannot close in time is left
            behind rather than holding up the exit.
"""
from __future__ import annotations

import contextlib
import csv
import io
import os
import re
import sys
import tempfile
import threading
from pathlib import Path

from ..errors import BarepropError, ConfigError
from ..runs.layout import METRICS_CSV, TENSORBOARD, TENSORBOARD_RUNS
from ..runs.writer import real_folder, remove_matching, write_whole
from .callbacks import Callback

KINDS = ("tensorboard", "csv")
#: how long closing the TensorBoard writers may take (a Ctrl-C waits for it)
CLOSE_SECONDS = 5.0
#: the event files TensorBoardLogger writes: tensorboardX's events.out.tfevents.<time>.
#: <host>, then this logger's suffix .e<first epoch>.<pid> (on_train_begin)
EVENT_FILE = re.compile(r"events\.out\.tfevents\.\d+\..+\.e\d{6,}\.\d+")


class CSVLogger(Callback):
    """Writes ``path`` after every epoch: a header and one row per epoch so far.

    The rows are ``state.history.epochs``, so a run continued with its History (``fit(...,
    history=h, start_epoch=k)``, ``--resume``) keeps epochs 1..k and appends from k+1,
    and an epoch written before a crash but not checkpointed is not repeated.
    """

    needs_grads = False

    def __init__(self, path, separator: str = ","):
        self.path, self.separator = Path(path), separator

    def on_train_begin(self, state):
        if state.history.epochs:             # resumed: the file matches its checkpoint now
            self._write(state.history.epochs)

    def on_epoch_end(self, state, logs):
        self._write(state.history.epochs)

    def _write(self, rows: list[dict]) -> None:
        columns = list(dict.fromkeys(k for row in rows for k in row))   # first-seen order
        buf = io.StringIO()
        writer = csv.DictWriter(buf, columns, delimiter=self.separator, restval="",
                                lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: repr(v) if isinstance(v, float) else v for k, v in row.items()})
        write_whole(self.path.parent, self.path.name, buf.getvalue().encode())


def _summary_writer():
    try:
        from tensorboardX import SummaryWriter
    except ImportError:
        raise ConfigError("--log tensorboard needs tensorboardX: pip install "
                          "'bareprop[tensorboard]'") from None
    return SummaryWriter


class TensorBoardLogger(Callback):
    """TensorBoard event files under ``logdir`` (see the module docstring for the tags).

    histograms: weight and gradient histograms every epoch; graph: a function
    ``graph(model, path)`` that writes the model as an ONNX file (``bp.save_onnx``), whose
    graph the Graphs tab then shows (needs the onnx extra; skipped with a note without
    it); None: no graph. The exporter is the caller's to give: training sits below the
    ONNX export in bareprop's layers. tensorboardX is imported here, so a missing extra
    is one line before training starts.
    """

    def __init__(self, logdir, histograms: bool = True, graph=None):
        self.SummaryWriter = _summary_writer()
        if graph is True:
            raise ConfigError("TensorBoardLogger's graph takes the function that writes the "
                              "model's ONNX file, e.g. graph=bp.save_onnx")
        self.logdir, self.histograms, self.graph = Path(logdir), histograms, graph or None
        # gradient histograms read p.grad: they keep fit from fusing SGD's step into backward
        self.needs_grads = histograms
        self._batches = self._epochs = None

    def on_train_begin(self, state):
        first_epoch = state.epoch                  # epochs already done (resume)
        self._step = first_epoch * state.batches_per_epoch
        # file names hold the second they were made: a run resumed within the same second
        # would reuse (and truncate) the old file without the epoch and pid after it, which
        # also sort a resumed run's file after the one it continues, as purging needs
        suffix = f".e{first_epoch:06d}.{os.getpid()}"
        try:
            # tensorboardX opens its files by path: logdir and its runs must be real
            # folders (a link there would put the event files elsewhere)
            batches, epochs = (real_folder(self.logdir.parent, f"{self.logdir.name}/{run}")
                               for run in TENSORBOARD_RUNS)
            # purge_step: TensorBoard drops older events at or after it (a resumed run's
            # repeated epoch, an overwritten run's whole history)
            self._batches = self.SummaryWriter(str(batches),
                                               purge_step=self._step + 1,
                                               filename_suffix=suffix)
            self._epochs = self.SummaryWriter(str(epochs),
                                              purge_step=first_epoch + 1,
                                              filename_suffix=suffix)
        except OSError as exc:
            from ..errors import OutputError

            raise OutputError(f"cannot write TensorBoard logs to {self.logdir}: "
                              f"{exc.strerror or exc}") from None
        if self.graph is not None and first_epoch == 0:
            self._add_graph(state.model)

    def _add_graph(self, model) -> None:
        """The graph TensorBoard's Graphs tab shows: the ONNX file ``self.graph`` writes."""
        if getattr(model, "input_shape", None) is None:
            return
        try:
            import onnx  # noqa: F401  (tensorboardX reads the graph through it)
        except ImportError:
            print("note: TensorBoard graph skipped (needs pip install 'bareprop[onnx]')",
                  file=sys.stderr)
            return
        fd, tmp = tempfile.mkstemp(suffix=".onnx")
        os.close(fd)
        try:
            self.graph(model, tmp)
            with contextlib.redirect_stdout(io.StringIO()):   # it prints every node name
                self._epochs.add_onnx_graph(tmp)
        except BarepropError as exc:     # e.g. a user's layer with no operator: log the rest
            print(f"note: TensorBoard graph skipped ({exc})", file=sys.stderr)
        finally:
            os.unlink(tmp)

    def on_batch_end(self, state, loss, batch_size):
        self._step += 1
        self._batches.add_scalar("loss", loss, self._step)
        self._batches.add_scalar("lr", state.optimizer.lr, self._step)

    def on_epoch_end(self, state, logs):
        epoch = logs["epoch"]
        for key, value in logs.items():
            if key != "epoch":
                self._epochs.add_scalar(key, value, epoch)
        if self.histograms:
            for name, p in state.model.named_parameters():
                self._epochs.add_histogram(f"weights/{name}", p.data, epoch)
                if p.grad is not None:
                    self._epochs.add_histogram(f"gradients/{name}", p.grad, epoch)
        self._batches.flush()
        self._epochs.flush()

    def close(self):
        """Close both writers, waiting at most CLOSE_SECONDS: fit calls this however it
        ends (Ctrl-C too). A writer that does not close in time (tensorboardX's queue
        thread can be left waiting by an interrupt) is abandoned, so that neither
        tensorboardX's exit handler nor multiprocessing's waits for it at exit."""
        writers = [w for w in (self._batches, self._epochs) if w is not None]
        self._batches = self._epochs = None
        if not writers:
            return
        errors = []
        closer = threading.Thread(target=_close_writers, args=(writers, errors), daemon=True,
                                  name="bareprop-tensorboard-close")
        closer.start()
        closer.join(CLOSE_SECONDS)
        if closer.is_alive():
            for writer in writers:
                _abandon(writer)
            print(f"note: TensorBoard's writer did not close within {CLOSE_SECONDS:g} s; "
                  f"the last events in {self.logdir} may be missing", file=sys.stderr)
        elif errors:
            from ..errors import OutputError

            raise OutputError(f"cannot finish the TensorBoard logs in {self.logdir}: "
                              f"{getattr(errors[0], 'strerror', None) or errors[0]}")


def _close_writers(writers, errors: list) -> None:
    """Close each writer (in a thread of its own: see TensorBoardLogger.close), keeping
    the errors for the caller."""
    for writer in writers:
        try:
            writer.close()
        except Exception as exc:
            errors.append(exc)


def _abandon(writer) -> None:
    """Keep a SummaryWriter that would not close from holding up the interpreter's exit:
    its files count as closed for tensorboardX's atexit handler, and multiprocessing
    does not join its queue's feeder thread (both threads are daemons)."""
    for file_writer in list((getattr(writer, "all_writers", None) or {}).values()):
        events = getattr(file_writer, "event_writer", None)
        if events is None:
            continue
        queue = getattr(events, "_event_queue", None)
        if queue is not None:
            with contextlib.suppress(Exception):
                queue.cancel_join_thread()
        events._closed = True


def remove_event_files(folder) -> list[str]:
    """Delete the event files a TensorBoardLogger wrote under ``folder``/tensorboard (an
    earlier run's, for ``--overwrite``), and nothing else there; the names removed."""
    return [name for run in TENSORBOARD_RUNS
            for name in remove_matching(folder, f"{TENSORBOARD}/{run}", EVENT_FILE)]


def make_loggers(kinds, folder: Path, graph=None) -> list[Callback]:
    """The loggers ``--log`` names, writing into the run folder: ``tensorboard/`` and
    ``metrics.csv``. graph: TensorBoardLogger's ONNX writer (None: no graph)."""
    out = []
    for kind in dict.fromkeys(kinds):                 # --log csv --log csv: one logger
        if kind == "tensorboard":
            out.append(TensorBoardLogger(Path(folder) / TENSORBOARD, graph=graph))
        elif kind == "csv":
            out.append(CSVLogger(Path(folder) / METRICS_CSV))
        else:
            from ..errors import unknown_name

            raise unknown_name("--log", kind, KINDS)
    return out
