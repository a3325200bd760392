"""The divergence rule (train.divergence): fires on an exploding loss, never on a healthy one."""
import math
import subprocess
import sys

import pytest

from bareprop.errors import TrainingDiverged
from bareprop.train.divergence import DivergenceGuard

from synthetic import write_dataset


def run_guard(losses):
    guard = DivergenceGuard()
    for i, loss in enumerate(losses):
        if not loss <= guard.limit:
            guard.check(loss, f"at batch {i}")


@pytest.mark.parametrize("losses", [
    [2.32, 2.32, 2.35, 2.29, 0.76],                    # seed preset (raw pixels), measured
    [182.4, 129.9, 120.4, 79.6, 97.2, 5.37],           # keras-seed: raw pixels, large start
    [3.28, 3.11, 0.6, 0.01, 0.2],                      # default preset, then a spike
    [0.02, 0.5, 40.0],                                 # resumed run: small first loss
])
def test_healthy_runs_never_trip(losses):
    run_guard(losses)


@pytest.mark.parametrize("losses,fragment", [
    ([202.9, 2.56e8], r"exploded to 2\.56e\+08"),         # sgd --lr 100 --scale raw, measured
    ([2.3, 2.3, 1e21], "exploded"),
    ([2.3, math.nan], "became nan"),
    ([math.inf], "became inf"),
])
def test_exploding_or_nonfinite_loss_stops(losses, fragment):
    with pytest.raises(TrainingDiverged, match=fragment):
        run_guard(losses)


def test_cli_stops_an_exploding_run_and_keeps_healthy_presets(tmp_path):
    folder = write_dataset(tmp_path / "mnist")

    def train(*args):
        return subprocess.run([sys.executable, "-m", "bareprop", "train", "--data-dir", folder,
                               "--no-verify", "--quiet", "--out", tmp_path / str(len(args)),
                               *args], capture_output=True, text=True, timeout=300)

    r = train("--optimizer", "sgd", "--lr", "100", "--scale", "raw", "--epochs", "1")
    assert r.returncode == 1, r.stderr
    assert "diverged" in r.stderr and "--lr" in r.stderr and "Traceback" not in r.stderr
    r = train("--preset", "keras-seed", "--epochs", "2")   # raw pixels, loss starts ~100
    assert r.returncode == 0, r.stderr
