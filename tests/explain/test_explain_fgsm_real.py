"""FGSM against the ``default`` preset's model (one epoch here, to keep the suite short) on
real MNIST: at eps = 0.1 of the pixel range it changes the prediction of at least 80% of
1,000 correctly classified test images, and moves no pixel by more than eps."""
import numpy as np
import pytest

import bareprop as bp
from bareprop.data import load

from conftest import real_data_dir
from oneline import train_here

DATA = real_data_dir()
pytestmark = pytest.mark.skipif(DATA is None, reason="real MNIST files not found")
EPS_OF_RANGE = 0.1


@pytest.mark.slow
def test_fgsm_fools_the_default_model_on_most_correct_test_images(tmp_path):
    assert train_here(DATA / "mnist", tmp_path / "run", "--preset", "default",
                      "--epochs", "1") == 0
    predictor = bp.Predictor.from_file(tmp_path / "run" / "model.npz")
    ds = load("mnist", data_dir=DATA / "mnist", download_missing=False)
    x, y = predictor.prepare(ds.x_test[:2000]), ds.y_test[:2000]
    model = predictor.model
    model.eval()
    right = np.flatnonzero(model(x).argmax(axis=1) == y)[:1000]
    assert len(right) == 1000
    a, b = predictor.scaler.coefficients                  # model input = a * pixel + b
    eps, bounds = EPS_OF_RANGE * 255 * a, (b, 255 * a + b)
    adv = bp.explain.fgsm(model, x[right], y[right], eps, bounds=bounds)
    assert np.max(np.abs(adv - x[right])) <= eps * (1 + 1e-6)
    assert adv.min() >= bounds[0] - 1e-6 and adv.max() <= bounds[1] + 1e-6
    fooled = np.mean(model(adv).argmax(axis=1) != y[right])
    assert fooled >= 0.8, fooled
