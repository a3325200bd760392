"""predict and evaluate refuse a model they cannot trust in one line: NaN weights, an
input scaler bareprop does not know."""

import numpy as np
import pytest
from PIL import Image

import bareprop as bp

from oneline import cli, refused
from synthetic import write_dataset


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
    refused(cli("predict", tmp_path / "m.npz", image), "holds NaN", "retrain")
    refused(cli("evaluate", tmp_path / "m.npz", "--data-dir", write_dataset(tmp_path / "d"),
                 "--no-verify"), "holds NaN")


@pytest.mark.parametrize("scaler,fragment", [
    ({"kind": "standardised", "mean": 33.0, "std": 78.0}, "unknown scaler kind 'standardised'"),
    ({"kind": "standard", "mean": 33.0, "std": 0.0}, "std must be a positive number"),
])
def test_a_bad_scaler_is_refused(tmp_path, image, scaler, fragment):
    bp.save(bp.Sequential(bp.Linear(784, 10, rng=0)), tmp_path / "m.npz",
            scaling=scaler)
    refused(cli("predict", tmp_path / "m.npz", image), "m.npz", fragment)
