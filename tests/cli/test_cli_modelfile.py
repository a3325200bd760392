"""predict and evaluate refuse a model they cannot trust in one line: NaN weights, an
input scaler bareprop does not know."""
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import bareprop as bp

from synthetic import write_dataset


def cli(*args):
    return subprocess.run([sys.executable, "-m", "bareprop", *map(str, args)],
                          capture_output=True, text=True, timeout=120)


def one_line(r, *fragments):
    assert r.returncode == 2, (r.returncode, r.stderr, r.stdout)
    err = r.stderr.strip()
    assert "Traceback" not in r.stderr and len(err.splitlines()) == 1, err
    for f in fragments:
        assert f in err, err


@pytest.fixture
def image(tmp_path):
    a = np.full((40, 40), 255, np.uint8)
    a[5:35, 18:22] = 0
    Image.fromarray(a).save(tmp_path / "one.png")
    return tmp_path / "one.png"


def test_nan_weights_are_refused(tmp_path, image):
    model = bp.Sequential(bp.Linear(784, 10, rng=0))
    model.layers[0].weight.data[3, 5] = np.nan
    bp.save(model, tmp_path / "m.npz")
    one_line(cli("predict", tmp_path / "m.npz", image), "holds NaN", "retrain")
    one_line(cli("evaluate", tmp_path / "m.npz", "--data-dir", write_dataset(tmp_path / "d"),
                 "--no-verify"), "holds NaN")


@pytest.mark.parametrize("scaler,fragment", [
    ({"kind": "standardised", "mean": 33.0, "std": 78.0}, "unknown scaler kind 'standardised'"),
    ({"kind": "standard", "mean": 33.0, "std": 0.0}, "std must be a positive number"),
])
def test_a_bad_scaler_is_refused(tmp_path, image, scaler, fragment):
    bp.save(bp.Sequential(bp.Linear(784, 10, rng=0)), tmp_path / "m.npz",
            scaling=scaler)
    one_line(cli("predict", tmp_path / "m.npz", image), "m.npz", fragment)
