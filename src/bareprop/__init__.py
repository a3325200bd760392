"""bareprop: a from-scratch NumPy neural-network library with hand-written backprop.

    import bareprop as bp
    model = bp.Sequential(bp.Flatten(), bp.Linear(784, 128), bp.ReLU(), bp.Linear(128, 10))
    history = bp.fit(model, bp.CrossEntropyLoss(), bp.Adam(model.parameters(), lr=1e-3),
                     (x_train, y_train), epochs=3, batch_size=128)
    proba = bp.predict_proba(model, x_test)

The names below are imported on first use (PEP 562), so ``import bareprop`` costs no
NumPy import: the ``bareprop`` command starts inside its own Ctrl-C handler instead of
dying with a traceback from an import when interrupted at start-up.
"""
from __future__ import annotations

import importlib

from .errors import BarepropError, ConfigError, DataError, ModelFileError, TrainingDiverged

__version__ = "0.1.0"

# public name -> the module it comes from
_LAZY = {
    **dict.fromkeys(["BatchNorm1d", "Dropout", "Flatten", "GELU", "CrossEntropyLoss",
                     "Identity", "LeakyReLU", "Linear", "MSELoss", "Module", "Parameter", "ReLU",
                     "Sequential", "Sigmoid", "Softmax", "Tanh", "gradcheck", "init",
                     "register_layer", "Conv2d", "MaxPool2d", "AvgPool2d", "GlobalAvgPool2d",
                     "BatchNorm2d", "Dropout2d"], ".core"),
    **dict.fromkeys(["SGD", "Adagrad", "Adam", "AdamW", "Optimizer", "RMSprop",
                     "clip_grad_norm_", "clip_grad_value_"], ".optim"),
    **dict.fromkeys(["load", "save"], ".io"),
    **dict.fromkeys(["Predictor", "predict_proba"], ".inference"),
    **dict.fromkeys(["to_onnx", "save_onnx"], ".interop.onnx_export"),
    **dict.fromkeys(["load_state_dict_from", "save_safetensors", "torch_state_dict"],
                    ".interop.weights"),
    **dict.fromkeys(["CSVLogger", "TensorBoardLogger"], ".train.loggers"),
    **dict.fromkeys(["Callback", "EarlyStopping", "History", "LRSchedule", "MaxNorm",
                     "ModelCheckpoint", "ProgressBar", "TrainStep", "evaluate", "fit",
                     "train_step"], ".train"),
}
_SUBMODULES = ("core", "optim", "data", "train", "io", "inference", "experiment", "interop")

__all__ = [*_LAZY, "BarepropError", "ConfigError", "DataError", "ModelFileError",
           "TrainingDiverged", "data"]


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
    elif name in _SUBMODULES:
        value = importlib.import_module(f".{name}", __name__)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value          # once imported, a plain attribute
    return value


def __dir__():
    return sorted({*globals(), *_LAZY, *_SUBMODULES})
