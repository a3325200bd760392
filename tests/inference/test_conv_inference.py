"""Convolutional models on the inference side: model files (round trip, the bounds on
kernels, channels and padding), Predictor's shaping and activations, and `predict` and
`evaluate` through the CLI."""
import json
import re
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import bareprop as bp
from bareprop.preprocess import load_grey, to_mnist

from convrun import conv_model, write_conv_run
from synthetic import digits_like, write_dataset


def cli(*args):
    return subprocess.run([sys.executable, "-m", "bareprop", *map(str, args)],
                          capture_output=True, text=True, timeout=120)


def every_image_layer(rng):
    """Every image layer and option the model file must carry: strides, pairs, "same"
    padding, no bias, BatchNorm2d with running statistics, the pools."""
    model = bp.Sequential(
        bp.Conv2d(1, 4, (3, 2), stride=(2, 1), padding=(1, 0), rng=rng), bp.BatchNorm2d(4),
        bp.ReLU(), bp.Dropout2d(0.2), bp.Conv2d(4, 6, 3, padding="same", bias=False, rng=rng),
        bp.MaxPool2d(2), bp.Conv2d(6, 5, 2, padding="valid", rng=rng), bp.AvgPool2d(2, stride=1),
        bp.GlobalAvgPool2d(), bp.Linear(5, 3, rng=rng), input_shape=(1, 28, 28))
    model[1].running_mean[:] = rng.normal(size=4)
    model[1].running_var[:] = rng.uniform(0.5, 2, size=4)
    return model


def test_conv_model_file_round_trip(tmp_path, rng):
    model = every_image_layer(rng)
    path = bp.save(model, tmp_path / "m.npz")
    back, meta = bp.load(path, with_meta=True)
    assert meta["input_shape"] == [1, 28, 28] and back.input_shape == (1, 28, 28)
    assert [s["type"] for s in meta["architecture"]["layers"]] == \
        [type(layer).__name__ for layer in model.layers]
    assert repr(back) == repr(model) and back.shapes == model.shapes
    x = rng.normal(size=(5, 1, 28, 28)).astype(np.float32)
    model.eval()
    back.eval()
    np.testing.assert_array_equal(model(x), back(x))


def _with_layer(path, change):
    """Rewrite the model file at ``path`` with ``change(layers)`` applied to its spec."""
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    meta = json.loads(arrays["__meta__"].tobytes())
    change(meta["architecture"]["layers"])
    arrays["__meta__"] = np.frombuffer(json.dumps(meta).encode(), np.uint8)
    np.savez(path, **arrays)


@pytest.mark.parametrize("key,value,fragment", [
    ("out_channels", 10 ** 9, "out_channels = 1000000000 (must be an integer in 1..1048576)"),
    ("in_channels", 0, "in_channels must be a positive integer, got 0"),
    ("in_channels", True, "in_channels must be a positive integer, got True"),
    ("kernel_size", [3, 100000], "kernel_size = [3, 100000] (must be an integer or a pair"),
    ("kernel_size", "same", "kernel_size = 'same'"),
    ("kernel_size", [3, 3, 3], "kernel_size = [3, 3, 3]"),
    ("stride", 0, "stride = 0"),
    ("padding", 10 ** 6, "padding = 1000000 (must be an integer or a pair of integers in "
                         "0..1024 or 'same' or 'valid')"),
    ("padding", "full", "padding = 'full'"),
])
def test_hostile_conv_specs_are_refused_before_building(tmp_path, key, value, fragment):
    path = bp.save(conv_model(), tmp_path / "m.npz")
    _with_layer(path, lambda layers: layers[3].update({key: value}))
    with pytest.raises(bp.ModelFileError) as exc:
        bp.load(path)
    msg = str(exc.value)
    assert "refused as a model file: layer 3 " in msg and fragment in msg and "\n" not in msg


def test_conv_weights_beyond_the_file_and_huge_scratch_are_refused(tmp_path):
    path = bp.save(conv_model(), tmp_path / "m.npz")
    _with_layer(path, lambda layers: layers[3].update(in_channels=2048, out_channels=2048))
    # every array the layers' catalog entries declare: kernels and biases (37.8 M, under
    # the bound every model shares, far over the file's)
    declared = 2048 * 2048 * 3 * 3 + 4 * 1 * 3 * 3 + 784 * 10 + (4 + 2048 + 10)
    with pytest.raises(bp.ModelFileError, match=f"declares {declared} weights but the file "
                                                f"holds {conv_model().num_parameters()}$"):
        bp.load(path)
    # tiny weights, but a forward pass would pad the 28x28 image to 2028x2028, the
    # 2026x2026 maps to 4026x4026, and build (4*3*3, 4024*4026) im2col columns:
    # refused from the shapes alone
    cols = f"{4 * 3 * 3 * 4024 * 4026:,}"
    wide = bp.Sequential(bp.Conv2d(1, 4, 3, padding=1000), bp.Conv2d(4, 4, 3, padding=1000),
                         input_shape=(1, 28, 28))
    nested = bp.Sequential(bp.Sequential(*wide.layers), input_shape=(1, 28, 28))
    for model, where in ((wide, "layer 1 (Conv2d)"), (nested, "layer 0.1 (Conv2d)")):
        bp.save(model, tmp_path / "w.npz")
        with pytest.raises(bp.ModelFileError, match=re.escape(
                f"{where} im2col columns of {cols} values per example (at most "
                f"{bp.io.MAX_VALUES:,})")):
            bp.load(tmp_path / "w.npz")
    deep = bp.Sequential(bp.Flatten())
    for _ in range(20):
        deep = bp.Sequential(deep)
    bp.save(deep, tmp_path / "deep.npz")
    with pytest.raises(bp.ModelFileError, match="nests Sequentials more than 16 deep"):
        bp.load(tmp_path / "deep.npz")


# -- Predictor ------------------------------------------------------------------------------
def test_predictor_shapes_images_for_a_conv_model(tmp_path, rng):
    model = conv_model()
    bp.save(model, tmp_path / "m.npz", scaling={"kind": "unit", "mean": 0.0, "std": 1.0})
    pred = bp.Predictor.from_file(tmp_path / "m.npz")
    raw, _ = digits_like(6, seed=3)                                   # (6, 28, 28) uint8
    x = pred.prepare(raw)
    assert x.shape == (6, 1, 28, 28) and x.dtype == np.float32
    np.testing.assert_array_equal(x[:, 0], raw * np.float32(1 / 255))   # Scaler("unit")
    probs = pred.predict_proba(raw)
    # flat rows are the same pixels: unflattened into the recorded input shape
    np.testing.assert_array_equal(pred.predict_proba(raw.reshape(6, 784)), probs)
    np.testing.assert_array_equal(pred.predict_proba(raw[:, None]), probs)
    with pytest.raises(bp.ConfigError, match=r"expects 784 inputs \(1, 28, 28\) but the images "
                                             r"have 400 pixels \(20, 20\)"):
        pred.prepare(raw[:, :20, :20])
    acts = pred.activations(raw)
    assert [name for name, _ in acts] == [f"{i} {type(layer).__name__}"
                                          for i, layer in enumerate(model.layers)]
    assert [a.shape[1:] for _, a in acts] == model.shapes      # images stay (C, H, W)
    assert acts[0][1].shape == (6, 4, 28, 28) and acts[2][1].shape == (6, 4, 14, 14)
    np.testing.assert_allclose(bp.core.activations.stable_softmax(acts[-1][1]), probs,
                               rtol=1e-6)


def test_predictor_of_a_conv_model_without_a_recorded_shape():
    model = bp.Sequential(bp.Conv2d(1, 2, 3, rng=0), bp.ReLU(), bp.GlobalAvgPool2d(),
                          bp.Linear(2, 3, rng=1))
    assert model.input_shape is None
    pred = bp.Predictor(model)
    raw, _ = digits_like(2, seed=4)
    assert pred.prepare(raw).shape == (2, 1, 28, 28)        # grayscale: a channel axis
    with pytest.raises(bp.ConfigError, match=r"takes images \(1, H, W\) .* rows of 784"):
        pred.prepare(raw.reshape(2, -1))
    with pytest.raises(bp.ConfigError, match=r"cannot take inputs of shape \(3, 28, 28\)"):
        pred.prepare(np.zeros((2, 3, 28, 28), np.uint8))


# -- predict and evaluate through the CLI ------------------------------------------------------
@pytest.fixture(scope="module")
def conv_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("conv")
    return write_conv_run(folder / "run"), write_dataset(folder / "mnist")


def test_predict_photos_with_a_conv_model(tmp_path, conv_run):
    run, _ = conv_run
    paths = []
    for i, (row, colour) in enumerate(((6, (40, 40, 160)), (16, (10, 10, 10)))):
        a = np.full((90, 120, 3), 235, np.uint8)          # dark ink on light paper, RGB
        a[row * 3:row * 3 + 8, 15:105] = colour
        paths.append(tmp_path / f"p{i}.{'jpg' if i else 'png'}")
        Image.fromarray(a).save(paths[-1])
    r = cli("predict", run / "model.npz", *paths, "--json", "--top", "4")
    assert r.returncode == 0, r.stderr
    results = json.loads(r.stdout)
    pred = bp.Predictor.from_file(run)
    want = pred.predict_proba(np.stack([to_mnist(load_grey(p)) for p in paths]))   # (2, 10)
    for res, p in zip(results, want):
        assert res["class"] == str(p.argmax()) and len(res["top"]) == 4
        got = {t["class"]: t["probability"] for t in res["top"]}
        assert got == pytest.approx({str(c): float(p[c]) for c in np.argsort(-p)[:4]},
                                    rel=1e-6)


def test_evaluate_a_conv_model_file(conv_run):
    run, data = conv_run
    metrics = json.loads((run / "metrics.json").read_text())
    r = cli("evaluate", run / "model.npz", "--data-dir", data, "--no-verify")
    assert r.returncode == 0, r.stderr
    # the same test split through the file, the CLI and the one inference path
    assert f"accuracy: {metrics['test_accuracy']:.4f}" in r.stdout
    assert f"loss: {metrics['test_loss']:.4f}" in r.stdout
    assert "(test, 200 examples)" in r.stdout
