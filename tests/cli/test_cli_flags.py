"""Flags refused before any work: absurd sizes, negative seeds, flags nothing reads, and
what only the loaded data can tell (an empty training split, a batch-norm batch of one)."""
import subprocess
import sys

import pytest

from bareprop.experiment import check_flags, make_config

from synthetic import write_dataset


def train(tmp_path, data_dir, *args):
    out = tmp_path / "never"
    r = subprocess.run([sys.executable, "-m", "bareprop", "train", "--data-dir", data_dir,
                        "--no-verify", "--quiet", "--epochs", "1", "--out", out, *map(str, args)],
                       capture_output=True, text=True, timeout=300)
    return r, out


def one_line(r, *fragments):
    assert r.returncode == 2, (r.returncode, r.stderr)
    err = r.stderr.strip()
    assert "Traceback" not in r.stderr and len(err.splitlines()) == 1, err
    assert err.startswith("bareprop") and ": error: " in err
    for f in fragments:
        assert f in err, err


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return write_dataset(tmp_path_factory.mktemp("data") / "mnist")


@pytest.mark.parametrize("args,fragments", [
    (["--seed", "-1"], ["--seed", ">= 0"]),
    (["--hidden", "100000", "100000"], ["needs about", "GiB", "10,079,600,010 parameters", "--hidden"]),
    (["--optimizer", "adam", "--momentum", "0.9"], ["--momentum applies only to --optimizer sgd or rmsprop"]),
    (["--step-size", "3"], ["--step-size applies only to --schedule step"]),
    (["--schedule", "step", "--milestones", "2"], ["--milestones", "multistep"]),
    (["--schedule", "cosine", "--gamma", "0.5"], ["--gamma", "not cosine"]),
    (["--schedule", "onecycle", "--gamma", "0.5"], ["--gamma", "not onecycle"]),
    (["--schedule", "step", "--min-lr", "0.001"], ["--min-lr", "cosine or plateau"]),
    (["--schedule", "cosine", "--warmup-epochs", "2"], ["--warmup-epochs", "linear"]),
    (["--lr-patience", "2"], ["--lr-patience", "plateau"]),
])
def test_flags_refused_before_work(tmp_path, data_dir, args, fragments):
    r, out = train(tmp_path, data_dir, *args)
    one_line(r, *fragments)
    assert not out.exists()


@pytest.mark.parametrize("args,fragments", [
    (["--val-fraction", "0.9999"], ["leaves no training examples"]),
    (["--batchnorm", "--batch-size", "599"], ["holds 1 of the 600", "--drop-last"]),
])
def test_data_dependent_settings_refused_before_training(tmp_path, data_dir, args, fragments):
    r, out = train(tmp_path, data_dir, *args)
    one_line(r, *fragments)
    assert not (out / "checkpoint.npz").exists()


def test_only_typed_flags_are_checked_not_the_preset_ones():
    # best-mlp sets momentum and nesterov for its SGD; switching the optimizer leaves them
    cfg = make_config({"preset": "best-mlp", "optimizer": "adam", "nesterov": False})
    check_flags({"preset": "best-mlp", "optimizer": "adam"}, cfg)
    cfg = make_config({"schedule": "plateau", "val_fraction": 0.1, "gamma": 0.5,
                       "min_lr": 1e-5, "lr_patience": 2})
    check_flags({"schedule": "plateau", "gamma": 0.5, "min_lr": 1e-5, "lr_patience": 2}, cfg)
