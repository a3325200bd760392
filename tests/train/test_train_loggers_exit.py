"""The TensorBoard writers end with the run, however it ends: Ctrl-C closes them (what was
logged is on disk), a writer tensorboardX cannot close holds up the exit for at most
CLOSE_SECONDS, and --overwrite leaves no event file of the run it replaces."""
import os
import subprocess
import sys
import time

import pytest

import bareprop as bp
from bareprop.cli.main import main
from bareprop.train.loggers import TensorBoardLogger

from conftest import ROOT
from synthetic import digits_like, write_dataset

pytest.importorskip("tensorboardX")
event_accumulator = pytest.importorskip(
    "tensorboard.backend.event_processing.event_accumulator")


class Interrupt(bp.Callback):
    """Ctrl-C after the 3rd batch of epoch 2."""

    needs_grads = False

    def on_batch_end(self, state, loss, batch_size):
        if state.epoch == 1 and len(state.history.batch_loss) == state.batches_per_epoch + 3:
            raise KeyboardInterrupt


def test_ctrl_c_closes_the_writers_with_every_batch_logged(tmp_path):
    x, y = digits_like(200, 0)
    model = bp.Sequential(bp.Flatten(), bp.Linear(784, 10, rng=0))
    with pytest.raises(KeyboardInterrupt):
        bp.fit(model, bp.CrossEntropyLoss(), bp.SGD(model.parameters(), lr=0.1),
               (x / 255.0, y), 3, batch_size=50,
               callbacks=[TensorBoardLogger(tmp_path / "tb", histograms=False), Interrupt()])
    ea = event_accumulator.EventAccumulator(str(tmp_path / "tb" / "batches"),
                                            size_guidance={event_accumulator.SCALARS: 0})
    ea.Reload()
    assert [e.step for e in ea.Scalars("loss")] == list(range(1, 4 + 3 + 1))   # 4 + 3 batches


HANGS = r"""
import sys, threading
import numpy as np
import bareprop as bp
from bareprop.train import loggers
from tensorboardX import event_file_writer

# tensorboardX's queue thread left waiting forever, as an interrupt can leave it: closing
# (ours, or tensorboardX's own atexit handler) then waits for a thread that never ends
event_file_writer._EventLoggerThread.stop = lambda self: threading.Event().wait()
loggers.CLOSE_SECONDS = 1


class Interrupt(bp.Callback):
    def on_batch_end(self, state, loss, n):
        if state.epoch == 1:
            raise KeyboardInterrupt


model = bp.Sequential(bp.Linear(4, 2, rng=0))
x, y = np.ones((20, 4), np.float32), np.zeros(20, np.int64)
try:
    bp.fit(model, bp.CrossEntropyLoss(), bp.SGD(model.parameters(), lr=0.1), (x, y), 3,
           batch_size=10, callbacks=[loggers.TensorBoardLogger(sys.argv[1]), Interrupt()])
except KeyboardInterrupt:
    print("interrupted", flush=True)
"""


def test_a_writer_that_cannot_close_holds_up_the_exit_for_at_most_close_seconds(tmp_path):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "src"),
                                                       os.environ.get("PYTHONPATH", "")]))
    t0 = time.monotonic()
    try:
        r = subprocess.run([sys.executable, "-c", HANGS, str(tmp_path / "tb")], env=env,
                           capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        pytest.fail("the process hung at exit in tensorboardX's close")
    assert r.returncode == 0 and r.stdout == "interrupted\n", r.stderr
    assert time.monotonic() - t0 < 30
    assert "note: TensorBoard's writer did not close within 1 s; the last events in " \
        f"{tmp_path / 'tb'} may be missing" in r.stderr, r.stderr


def test_overwrite_removes_the_old_runs_event_files_only(tmp_path):
    data = write_dataset(tmp_path / "mnist", n_train=100, n_test=50)
    out = tmp_path / "run"
    args = ["train", "--data-dir", str(data), "--no-verify", "--hidden", "8", "--epochs", "1",
            "--batch-size", "50", "--quiet", "--log", "tensorboard", "--out", str(out)]
    assert main(args) == 0
    old = {run: os.listdir(out / "tensorboard" / run) for run in ("batches", "epochs")}
    assert all(len(names) == 1 for names in old.values())
    keep = out / "tensorboard" / "epochs" / "notes.txt"            # not bareprop's: kept
    keep.write_text("mine")
    outside = tmp_path / "outside"
    outside.write_text("not in the run")
    planted = out / "tensorboard" / "batches" / "events.out.tfevents.1.host.e000000.1"
    planted.symlink_to(outside)                                    # a link: never followed
    time.sleep(1.1)                               # tensorboardX names its files by the second
    assert main(args + ["--overwrite"]) == 0
    for run in ("batches", "epochs"):
        names = set(os.listdir(out / "tensorboard" / run))
        assert not names & set(old[run]), (run, names)
    assert len([n for n in os.listdir(out / "tensorboard" / "epochs") if n != "notes.txt"]) == 1
    assert keep.read_text() == "mine" and outside.read_text() == "not in the run"
    assert planted.is_symlink()
    ea = event_accumulator.EventAccumulator(str(out / "tensorboard" / "epochs"))
    ea.Reload()
    assert [e.step for e in ea.Scalars("train_loss")] == [1]           # the new run's, once
