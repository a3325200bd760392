"""Models of every preset for the interop tests, trained a few steps on real MNIST.

Each preset's own architecture (and the default MLP with --batchnorm, the one MLP with
BatchNorm1d), trained one epoch of 4 batches on 256 real training images so BatchNorm's
running statistics and the weights have left their initial values; built once per test
session and shared by test_interop_onnx and test_interop_weights.
"""
import functools

import numpy as np

import bareprop as bp
from bareprop.data import Scaler, load
from bareprop.experiment import make_config
from bareprop.experiment.build import build_model, build_optimizer

from conftest import real_data_dir

DATA = real_data_dir()
#: every preset, and the MLP with BatchNorm1d (no preset has one)
MODELS = ("default", "seed", "keras-seed", "best-mlp", "lenet5", "cnn", "best-cnn", "lstm",
          "vit", "mlp-batchnorm")
N_TRAIN, N_TEST = 256, 1000


@functools.cache
def mnist():
    return load("mnist", data_dir=DATA / "mnist", download_missing=False)


@functools.cache
def trained(name: str, dtype: str = "float32") -> bp.Predictor:
    """A Predictor (model, its input scaling, classes) of preset ``name``."""
    explicit = {"dtype": dtype}
    if name == "mlp-batchnorm":
        name, explicit = "default", {**explicit, "batchnorm": True, "hidden": (64,)}
    cfg = make_config(explicit, preset=name)
    ds = mnist()
    model = build_model(cfg, ds.x_train.shape[1:], len(ds.classes))
    x, y = ds.x_train[:N_TRAIN], ds.y_train[:N_TRAIN]
    scaler = Scaler.fit(cfg.scale, x)
    xs = scaler.apply(x.reshape(len(x), *model.input_shape), cfg.dtype)
    bp.fit(model, bp.CrossEntropyLoss(), build_optimizer(cfg, model.parameters()), (xs, y),
           epochs=1, batch_size=64, seed=cfg.seed)
    return bp.Predictor(model, scaler, ds.classes, model.input_shape,
                        {"extra": {"dataset": "mnist"}})


def real_test_images(n: int = N_TEST) -> np.ndarray:
    """The first ``n`` real test images, (n, 28, 28) uint8."""
    return mnist().x_test[:n]


def logits(predictor: bp.Predictor, raw: np.ndarray) -> np.ndarray:
    """bareprop's own logits for raw pixels, in eval mode (the model is left in it)."""
    model = predictor.model
    model.eval()
    return np.concatenate([model(predictor.prepare(raw[i:i + 500]))
                           for i in range(0, len(raw), 500)])
