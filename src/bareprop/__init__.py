"""bareprop: a from-scratch NumPy neural-network library with hand-written backprop.

    import bareprop as bp
    model = bp.Sequential(bp.Linear(784, 128), bp.ReLU(), bp.Linear(128, 10))
    loss_fn = bp.CrossEntropyLoss()
    opt = bp.SGD(model.parameters(), lr=0.1, momentum=0.9)
    loss = loss_fn(model(x), y); opt.zero_grad(); model.backward(loss_fn.backward()); opt.step()
"""
from .core import (GELU, BatchNorm1d, Dropout, CrossEntropyLoss, Identity, LeakyReLU, Linear, MSELoss, Module,
                   Parameter, ReLU, Sequential, Sigmoid, Softmax, Tanh, gradcheck)
from .core import init
from .errors import BarepropError, ConfigError, DataError, ModelFileError, TrainingDiverged
from .optim import (SGD, Adagrad, Adam, AdamW, Optimizer, RMSprop, clip_grad_norm_,
                    clip_grad_value_)

__version__ = "0.1.0"

__all__ = [
    "BatchNorm1d", "Dropout", "GELU", "CrossEntropyLoss", "Identity", "LeakyReLU", "Linear", "MSELoss", "Module",
    "Parameter", "ReLU", "Sequential", "Sigmoid", "Softmax", "Tanh", "gradcheck", "init",
    "BarepropError", "ConfigError", "DataError", "ModelFileError", "TrainingDiverged",
    "SGD", "Adagrad", "Adam", "AdamW", "Optimizer", "RMSprop", "clip_grad_norm_",
    "clip_grad_value_",
]

from . import data  # noqa: E402
from .io import load, save  # noqa: E402
from .train import Callback, History, ProgressBar, evaluate, fit  # noqa: E402

__all__ += ["data", "load", "save", "Callback", "History", "ProgressBar", "evaluate", "fit"]
