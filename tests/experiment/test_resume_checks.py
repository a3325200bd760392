"""--resume reads a checkpoint as untrusted input: a real checkpoint, damaged one field at
a time (and written by the library's own writer), gives exit 2 and one line naming the
field, never a traceback, and nothing in the run folder changes."""
import shutil

import numpy as np
import pytest

from bareprop.archive import write_archive
from bareprop.cli.main import main
from bareprop.train.checkpoint import load_checkpoint, save_checkpoint

from synthetic import write_dataset


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_dataset(tmp_path_factory.mktemp("d") / "mnist")


@pytest.fixture(scope="module")
def killed_run(tmp_path_factory, data):
    """A run with early stopping, a schedule and validation, its outputs but the
    checkpoint removed (as if killed after its last epoch)."""
    run = tmp_path_factory.mktemp("r") / "run"
    assert main(["train", "--data-dir", str(data), "--no-verify", "--quiet", "--hidden", "8",
                 "--epochs", "3", "--val-fraction", "0.2", "--early-stop", "5",
                 "--schedule", "step", "--out", str(run)]) == 0
    for name in ("model.npz", "metrics.json"):
        (run / name).unlink()
    return run


def _set(path):
    """A mutation that sets the field at ``path`` (a tuple of keys) to a value."""
    def mutate(state, value):
        obj = state
        for key in path[:-1]:
            obj = obj[key]
        obj[path[-1]] = value
    return mutate


def _delete(state, path):
    obj = state
    for key in path[:-1]:
        obj = obj[key]
    del obj[path[-1]]


MUTATIONS = [
    # (what is done, fragment the one line must hold)
    (lambda s: _delete(s, ("epoch",)), "epoch is missing"),
    (lambda s: _set(("epoch",))(s, "2"), "epoch is a string"),
    (lambda s: _set(("epoch",))(s, 99), "outside this run's 0..3 epochs"),
    # 0 is a fresh run's starting state (resumable); below it is damage
    (lambda s: _set(("epoch",))(s, -1), "outside this run's 0..3 epochs"),
    (lambda s: _set(("stopped",))(s, "no"), "stopped is a string"),
    (lambda s: _set(("surprise",))(s, 1), "surprise is unknown"),
    (lambda s: _delete(s, ("config", "seed")), "config.seed is missing"),
    (lambda s: _set(("config", "lr"))(s, "fast"), "config.lr is a string"),
    (lambda s: _set(("config", "hidden"))(s, ["8"]), "config.hidden[0] is a string"),
    (lambda s: _set(("config", "bogus"))(s, 1), "config.bogus is unknown"),
    (lambda s: _set(("config", "hidden"))(s, [100000, 100000]), "config.hidden"),
    (lambda s: _set(("config", "epochs"))(s, 1), "outside this run's 0..1 epochs"),
    (lambda s: _set(("architecture",))(s, {"type": "Sequential"}), "architecture"),
    (lambda s: _delete(s, ("model", "1.weight")), "model.1.weight is missing"),
    (lambda s: _set(("model", "1.weight"))(s, np.zeros((3, 3), np.float32)),
     "model.1.weight has shape [3, 3]"),
    (lambda s: _set(("model", "1.weight"))(s, "weights"), "model.1.weight is a string"),
    (lambda s: _set(("model", "9.weight"))(s, np.zeros(3, np.float32)), "model.9.weight is unknown"),
    (lambda s: _set(("optimizer", "param_groups", 0, "lr"))(s, "fast"),
     "optimizer.param_groups[0].lr is a string"),
    (lambda s: _set(("optimizer", "param_groups", 0, "lr"))(s, float("inf")),
     "optimizer.param_groups[0].lr = inf"),
    (lambda s: _delete(s, ("optimizer", "state", 0, "exp_avg")),
     "optimizer.state[0].exp_avg is missing"),
    (lambda s: _set(("optimizer", "state"))(s, []), "optimizer.state has 0 entries"),
    # a starting-state checkpoint (epoch 0): a parameter's state is empty or a real one
    (lambda s: (_set(("epoch",))(s, 0), _set(("history",))(s, {"batch_loss": [], "epochs": []}),
                _set(("optimizer", "state", 0))(s, {"exp_avg": np.zeros((3, 2, 2)), "bogus": 1})),
     "optimizer.state[0]"),
    (lambda s: _set(("optimizer", "param_groups", 0, "betas"))(s, 0.9),
     "optimizer.param_groups[0].betas"),
    (lambda s: _delete(s, ("callbacks", "scheduler")), "callbacks.scheduler is missing"),
    (lambda s: _set(("callbacks", "scheduler", "last_epoch"))(s, None),
     "callbacks.scheduler.last_epoch"),
    (lambda s: _set(("callbacks", "early_stopping", "best_weights"))(s, {"0.weight": 1}),
     "callbacks.early_stopping.best_weights"),
    (lambda s: _set(("callbacks", "inspector", "x"))(s, {}), "callbacks.inspector.x"),
    (lambda s: _set(("callbacks", "early_stopping", "best"))(s, "low"),
     "callbacks.early_stopping.best is a string"),
    (lambda s: _set(("history", "epochs"))(s, ["x"]), "history.epochs[0] is a string"),
    (lambda s: _set(("history", "batch_loss"))(s, [1.0, "x"]), "history.batch_loss[1]"),
    (lambda s: _delete(s, ("history", "epochs")), "history.epochs is missing"),
]


@pytest.mark.parametrize("mutate,fragment", MUTATIONS, ids=[m[1] for m in MUTATIONS])
def test_each_damaged_field_is_one_line(tmp_path, killed_run, data, capsys, mutate, fragment):
    run = tmp_path / "run"
    shutil.copytree(killed_run, run)
    state = load_checkpoint(run / "checkpoint.npz")
    mutate(state)
    save_checkpoint(run / "checkpoint.npz", state)
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    capsys.readouterr()
    assert main(["train", "--resume", str(run), "--data-dir", str(data), "--no-verify",
                 "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("bareprop: error: "), err
    assert fragment in err and "Traceback" not in err, err
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before   # lock gone, all kept


def _raw(path):
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    import json

    return json.loads(arrays.pop("__meta__").tobytes()), arrays


@pytest.mark.parametrize("change,fragment", [
    (lambda m: m.update(version=2, bareprop_version="9.1.0"),
     "written by a newer bareprop (9.1.0, checkpoint format 2)"),
    (lambda m: m.update(surprise=True), "'surprise' is unknown"),
    (lambda m: m.pop("state"), "'state' is missing"),
    (lambda m: m["state"]["model"].update({"0.weight": {"__array__": "nowhere"}}),
     "state.model.0.weight names no array"),
])
def test_damaged_checkpoint_metadata_is_one_line(tmp_path, killed_run, data, capsys, change,
                                                 fragment):
    run = tmp_path / "run"
    shutil.copytree(killed_run, run)
    meta, arrays = _raw(run / "checkpoint.npz")
    change(meta)
    write_archive(run / "checkpoint.npz", meta, arrays)
    capsys.readouterr()
    assert main(["train", "--resume", str(run), "--data-dir", str(data), "--no-verify",
                 "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and fragment in err, err

