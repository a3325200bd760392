"""bareprop: a from-scratch NumPy neural-network library with hand-written backprop.

    import bareprop as bp
    model = bp.Sequential(bp.Linear(784, 128), bp.ReLU(), bp.Linear(128, 10))
    loss_fn = bp.CrossEntropyLoss()
    opt = bp.SGD(model.parameters(), lr=0.1, momentum=0.9)
    loss = loss_fn(model(x), y); opt.zero_grad(); model.backward(loss_fn.backward()); opt.step()

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
    **dict.fromkeys(["BatchNorm1d", "Dropout", "GELU", "CrossEntropyLoss", "Identity",
                     "LeakyReLU", "Linear", "MSELoss", "Module", "Parameter", "ReLU",
                     "Sequential", "Sigmoid", "Softmax", "Tanh", "gradcheck", "init"], ".core"),
    **dict.fromkeys(["SGD", "Adagrad", "Adam", "AdamW", "Optimizer", "RMSprop",
                     "clip_grad_norm_", "clip_grad_value_"], ".optim"),
    **dict.fromkeys(["load", "save"], ".io"),
    **dict.fromkeys(["Callback", "History", "ProgressBar", "evaluate", "fit"], ".train"),
}
_SUBMODULES = ("core", "optim", "data", "train", "io")

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
