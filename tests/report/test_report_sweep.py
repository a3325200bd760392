"""``bareprop report`` on a sweep folder: the best trial, its test accuracy, every trial,
the space; strings from sweep.json never become markup; a damaged file is one line."""
import json

import pytest

from bareprop.errors import ModelFileError
from bareprop.report import build_report

pytest.importorskip("matplotlib")

EVIL = "<script>alert(1)</script>"


def sweep_record(**over):
    trials = [
        {"number": 0, "folder": "trials/0000", "params": {"lr": 0.01, "optimizer": "sgd"},
         "state": "complete", "reason": None, "val_accuracy": [0.8, 0.9], "at": [1.0, 2.0],
         "value": 0.9, "seconds": 2.0},
        {"number": 1, "folder": "trials/0001", "params": {"lr": 0.3, "optimizer": EVIL},
         "state": "failed", "reason": f"training diverged {EVIL}", "val_accuracy": [],
         "value": None, "seconds": 0.5},
        {"number": 2, "folder": "trials/0002", "params": {"lr": 0.001, "optimizer": "adam"},
         "state": "pruned", "reason": None, "val_accuracy": [0.5], "at": [3.0],
         "value": 0.5, "seconds": 1.0},
    ]
    rec = {"format": "bareprop-sweep", "version": 1, "state": "finished", "engine": "optuna",
           "prune": "median", "seed": 0, "trials_wanted": 3, "jobs": 1, "threads": 2,
           "settings": {"dataset": "mnist", "preset": EVIL, "val_fraction": 0.1},
           "space": ["lr=log(0.0001,1)", "optimizer=choice(sgd,adam)"], "trials": trials,
           "best": {"number": 0, "value": 0.9, "test_accuracy": 0.8875,
                    "command": f"bareprop train --lr 0.01 {EVIL}"},
           "trial_epochs": 3, "seconds": 3.5}
    rec.update(over)
    return rec


def test_the_sweep_report(tmp_path):
    (tmp_path / "sweep.json").write_text(json.dumps(sweep_record()))
    page = build_report(tmp_path).read_text()
    assert "best validation accuracy 0.9000 (trial 0000); its test accuracy 0.8875" in page
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "data:image/png;base64," in page                  # the figure
    for cell in ("0000", "0001", "0002", "pruned", "failed (training diverged",
                 "lr=log(0.0001,1)"):
        assert cell in page, cell
    # the complete trial first, then the others
    assert page.index(">0000<") < page.index(">0002<")


def test_a_sweep_with_no_best_yet(tmp_path):
    (tmp_path / "sweep.json").write_text(json.dumps(sweep_record(best=None, state="running")))
    page = build_report(tmp_path).read_text()
    assert "no trial completed yet" in page


def test_a_damaged_sweep_record_is_one_line(tmp_path):
    rec = sweep_record()
    rec["trials"][0]["val_accuracy"] = ["x"]
    (tmp_path / "sweep.json").write_text(json.dumps(rec))
    with pytest.raises(ModelFileError) as e:
        build_report(tmp_path)
    assert "trials[0].val_accuracy is not a list of numbers" in str(e.value)
    assert "\n" not in str(e.value)
