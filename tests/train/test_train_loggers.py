"""--log tensorboard and --log csv: what TensorBoard's own reader finds in the event files
equals metrics.json; the CSV is one row per epoch equal to it; a resumed run replaces what
it logs again instead of doubling it."""
import copy
import csv
import json
import subprocess
import sys

import numpy as np
import pytest

import bareprop as bp
from bareprop.cli.main import main
from bareprop.errors import ConfigError
from bareprop.train.loggers import CSVLogger, TensorBoardLogger

from synthetic import digits_like, write_dataset

pytest.importorskip("tensorboardX")
event_accumulator = pytest.importorskip(
    "tensorboard.backend.event_processing.event_accumulator")


def read_events(folder):
    """TensorBoard's own reader over one run folder, every event kept."""
    ea = event_accumulator.EventAccumulator(str(folder), size_guidance={
        event_accumulator.SCALARS: 0, event_accumulator.HISTOGRAMS: 0})
    ea.Reload()
    return ea


def scalars(ea, tag):
    return [(e.step, e.value) for e in ea.Scalars(tag)]


f32 = np.float32        # TensorBoard keeps scalars as float32


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_train_log_tensorboard_and_csv_equal_metrics_json(tmp_path):
    data = write_dataset(tmp_path / "mnist", n_train=300, n_test=100)
    out = tmp_path / "run"
    r = subprocess.run([sys.executable, "-m", "bareprop", "train", "--data-dir", data,
                        "--no-verify", "--hidden", "16", "--epochs", "3", "--batch-size", "50",
                        "--schedule", "onecycle", "--val-fraction", "0.2", "--quiet",
                        "--log", "tensorboard,csv", "--out", out],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    history = metrics["history"]
    epochs = read_events(out / "tensorboard" / "epochs")
    keys = [k for k in history[0] if k != "epoch"]
    assert set(keys) >= {"train_loss", "train_accuracy", "val_loss", "val_accuracy",
                         "test_loss", "test_accuracy", "lr", "seconds"}
    assert set(epochs.Tags()["scalars"]) == set(keys)
    for key in keys:
        assert scalars(epochs, key) == [(h["epoch"], f32(h[key])) for h in history], key
    batches = read_events(out / "tensorboard" / "batches")
    losses = scalars(batches, "loss")
    assert [s for s, _ in losses] == list(range(1, len(metrics["batch_loss"]) + 1))
    assert [v for _, v in losses] == [f32(v) for v in metrics["batch_loss"]]
    lrs = [v for _, v in scalars(batches, "lr")]
    assert max(lrs) > 10 * min(lrs)                    # one-cycle: the lr moves per batch
    # a histogram of every weight and gradient per epoch, and the model graph
    names = ["1.weight", "1.bias", "3.weight", "3.bias"]
    assert set(epochs.Tags()["histograms"]) == \
        {f"{kind}/{n}" for kind in ("weights", "gradients") for n in names}
    for tag in epochs.Tags()["histograms"]:
        assert [h.step for h in epochs.Histograms(tag)] == [1, 2, 3]
    w = bp.load(out / "model.npz").state_dict()["1.weight"]
    last = epochs.Histograms("weights/1.weight")[-1].histogram_value
    assert (last.num, last.min, last.max) == (w.size, pytest.approx(w.min()),
                                              pytest.approx(w.max()))
    assert epochs.Tags()["graph"]
    assert "Gemm" in {n.op for n in epochs.Graph().node}
    # the CSV: a header and one row per epoch, every value as metrics.json has it
    rows = read_csv(out / "metrics.csv")
    assert list(rows[0]) == list(history[0])
    assert [{k: float(v) for k, v in row.items()} for row in rows] == \
        [{k: float(v) for k, v in h.items()} for h in history]


def _fit(model, opt, data, epochs, callbacks, **kw):
    return bp.fit(model, bp.CrossEntropyLoss(), opt, data, epochs, batch_size=50,
                  callbacks=callbacks, **kw)


def test_a_resumed_run_continues_the_logs_without_doubling_an_epoch(tmp_path):
    """Epochs 1-2 logged, the run 'crashes' with only epoch 1 checkpointed, and the resumed
    run (shuffled otherwise, so its epoch 2 differs) logs epochs 2-3: the CSV and
    TensorBoard show epochs 1, 2, 3 once each, epoch 2 being the resumed run's."""
    x, y = digits_like(200, 0)
    data = (x.reshape(200, -1) / 255.0, y)
    model = bp.Sequential(bp.Linear(784, 16, rng=0), bp.ReLU(), bp.Linear(16, 10, rng=1))
    opt = bp.Adam(model.parameters(), lr=1e-2)
    snap = {}

    class Snapshot(bp.Callback):        # what Checkpointer would have saved after epoch 1
        def on_epoch_end(self, state, logs):
            if logs["epoch"] == 1:
                snap.update(model=state.model.state_dict(),
                            opt=copy.deepcopy(state.optimizer.state_dict()),
                            history=copy.deepcopy(state.history))

    def loggers():
        return [CSVLogger(tmp_path / "m.csv"), TensorBoardLogger(tmp_path / "tb")]

    _fit(model, opt, data, 2, loggers() + [Snapshot()], seed=0)
    crashed = read_csv(tmp_path / "m.csv")
    assert [r["epoch"] for r in crashed] == ["1", "2"]

    model.load_state_dict(snap["model"])
    opt.load_state_dict(snap["opt"])
    h = _fit(model, opt, data, 3, loggers(), seed=1, history=snap["history"], start_epoch=1)
    assert [e["epoch"] for e in h.epochs] == [1, 2, 3]
    assert float(crashed[1]["train_loss"]) != h.epochs[1]["train_loss"]   # epoch 2 redone
    rows = read_csv(tmp_path / "m.csv")
    assert [float(r["train_loss"]) for r in rows] == [e["train_loss"] for e in h.epochs]
    ea = read_events(tmp_path / "tb" / "epochs")
    assert scalars(ea, "train_loss") == [(e["epoch"], f32(e["train_loss"])) for e in h.epochs]
    assert [hh.step for hh in ea.Histograms("weights/0.weight")] == [1, 2, 3]
    batches = scalars(read_events(tmp_path / "tb" / "batches"), "loss")
    assert batches == [(i + 1, f32(v)) for i, v in enumerate(h.batch_loss)]


def test_log_flag_refusals_are_one_line(tmp_path, capsys, monkeypatch):
    with pytest.raises(SystemExit) as exit_:                    # argparse's own refusal
        main(["train", "--log", "tensorbord", "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "unknown log kind 'tensorbord'" in err
    assert err.count("\n") == 1 and "did you mean 'tensorboard'" in err.lower()
    monkeypatch.setitem(sys.modules, "tensorboardX", None)      # the extra not installed
    with pytest.raises(ConfigError, match=r"pip install 'bareprop\[tensorboard\]'"):
        TensorBoardLogger(tmp_path / "tb")
    data = write_dataset(tmp_path / "mnist", n_train=100, n_test=50)
    assert main(["train", "--data-dir", str(data), "--no-verify", "--hidden", "8",
                 "--epochs", "1", "--batch-size", "16", "--quiet", "--log", "tensorboard",
                 "--out", str(tmp_path / "r2")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "bareprop[tensorboard]" in err and "Traceback" not in err
    assert not (tmp_path / "r2" / "checkpoint.npz").exists()      # refused before training


def test_gradient_histograms_keep_the_gradients_a_fused_step_would_drop(tmp_path):
    """fit fuses SGD's step into backward (Linear grads then stay None) only when no
    callback needs_grads: the CSV logger does not, TensorBoard's histograms do."""
    pytest.importorskip("tensorboardX")
    assert CSVLogger(tmp_path / "m.csv").needs_grads is False
    assert TensorBoardLogger(tmp_path / "a", histograms=True).needs_grads is True
    assert TensorBoardLogger(tmp_path / "b", histograms=False).needs_grads is False
