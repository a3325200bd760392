"""The look inside a convolutional model: the report's first-layer filters and feature
maps (rendered in headless Chromium), and the inspector's per-channel statistics."""
import re

import numpy as np
import pytest

import bareprop as bp
from bareprop.cli.main import main
from bareprop.report import _channel_section, _feature_maps
from bareprop.train.inspector import inspect_batch

from browser import CHROMIUM, images_loaded
from convrun import conv_model, write_conv_run
from synthetic import digits_like, write_dataset


def test_conv_report_shows_filters_and_feature_maps(tmp_path):
    pytest.importorskip("matplotlib")
    data = write_dataset(tmp_path / "mnist")
    run = write_conv_run(tmp_path / "run")
    assert main(["report", str(run), "--data-dir", str(data)]) == 0
    page = (run / "report.html").read_text()
    titles = re.findall(r"<h2>([^<]*)</h2>", page)
    assert "First-layer filters" in titles and "Feature maps of one test image" in titles
    assert "What the network looked at" in titles and "Grad-CAM at the last layer" in page
    # its Linear(784, 10) comes after the convolutions: not drawn as 28x28 images
    assert "First-layer weights" not in titles
    assert "Channels on the probe batch (epoch 2)" in titles
    for name in ("0 Conv2d", "1 ReLU", "2 MaxPool2d", "3 Conv2d", "4 ReLU"):
        assert f"<td class=k>{name}</td><td>4</td>" in page
    assert page.count("<img ") == 8 and 'src="http' not in page
    if CHROMIUM is None:
        pytest.skip("chromium not installed (apt-get install chromium)")
    assert images_loaded(run / "report.html", tmp_path / "chr") == ("true", "8/8")


def test_feature_maps_are_each_conv_and_pool_output_of_one_image(rng):
    model = conv_model()
    for p in model.parameters():
        p.data[...] = rng.normal(size=p.shape)
    pred = bp.Predictor(model, bp.data.Scaler("unit"))
    raw, _ = digits_like(1, seed=5)                                     # (1, 28, 28)
    maps = _feature_maps(pred, raw)
    assert [name for name, _ in maps] == ["0 Conv2d(1, 4, 3)", "2 MaxPool2d(2)",
                                          "3 Conv2d(4, 4, 3)"]
    model.eval()
    a, outs = raw[:, None] * np.float32(1 / 255), []                   # (1, 1, 28, 28)
    for layer in model.layers:
        a = layer(a)
        outs.append(a[0].copy())
    for i, (_, m) in zip((0, 2, 3), maps):
        assert m.shape == model.shapes[i]
        np.testing.assert_allclose(m, outs[i], rtol=1e-6)


def test_inspect_a_conv_model_per_channel(rng):
    """inspect_batch needs the caches of Conv2d and MaxPool2d (kept only in training
    mode) while dropout and batch norm stay in eval mode; a channel whose bias keeps it
    below 0 shows as never active after the ReLU."""
    model = bp.Sequential(bp.Conv2d(1, 3, 3, rng=0), bp.BatchNorm2d(3), bp.ReLU(),
                          bp.Dropout2d(0.5), bp.MaxPool2d(2), bp.Flatten(),
                          bp.Linear(3 * 13 * 13, 10, rng=1), input_shape=(1, 28, 28))
    model[1].bias.data[1] = -100.0                                      # channel 1 dead
    model[1].running_var[:] = 2.0
    x = rng.normal(size=(20, 1, 28, 28)).astype(np.float32)
    y = rng.integers(0, 10, 20)
    running = model[1].running_mean.copy()
    rec = inspect_batch(model, bp.CrossEntropyLoss(), x, y)
    assert model.training and all(m.training for m in model.modules())
    np.testing.assert_array_equal(model[1].running_mean, running)        # not updated
    assert set(rec["gradients"]) == {n for n, _ in model.named_parameters()}
    model.eval()
    relu = model[2](model[1](model[0](x)))                              # (20, 3, 26, 26)
    stats = rec["activations"]["2 ReLU"]["channels"]
    np.testing.assert_allclose(stats["mean"], relu.mean(axis=(0, 2, 3)), rtol=1e-5)
    np.testing.assert_allclose(stats["zeros"], (relu == 0).mean(axis=(0, 2, 3)))
    assert stats["zeros"][1] == 1.0 and max(stats["zeros"][0], stats["zeros"][2]) < 1.0
    # dropout was off: its output is its input
    assert rec["activations"]["3 Dropout2d"]["channels"] == stats
    assert "channels" not in rec["activations"]["5 Flatten"]
    table = _channel_section({"1": rec})
    assert "<td class=k>2 ReLU</td><td>3</td><td>1</td>" in table
    assert "<td class=k>0 Conv2d</td><td>3</td><td>0</td>" in table


def test_settings_of_an_arch_run_leave_out_the_mlp_fields():
    from bareprop.report import settings_rows

    cfg = {"arch": "conv(4,3) flatten linear(10)", "hidden": [128], "activation": ["relu"],
           "batchnorm": False, "dropout": 0.0, "input_dropout": 0.0, "lr": 0.003}
    # values as one types them (no JSON quotes)
    assert dict(settings_rows(cfg)) == {"arch": "conv(4,3) flatten linear(10)", "lr": "0.003"}
    mlp = {**cfg, "arch": None}
    assert [k for k, _ in settings_rows(mlp)] == list(mlp)       # an MLP run shows them all
