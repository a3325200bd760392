"""bareprop: a from-scratch NumPy neural-network library with hand-written backprop.

    import bareprop as bp
    model = bp.Sequential(bp.Flatten(), bp.Linear(784, 128), bp.ReLU(), bp.Linear(128, 10))
    history = bp.fit(model, bp.CrossEntropyLoss(), bp.Adam(model.parameters(), lr=1e-3),
                     (x_train, y_train), epochs=3, batch_size=128)
    proba = bp.predict_proba(model, x_test)
"""
from .core import (GELU, BatchNorm1d, CrossEntropyLoss, Dropout, Flatten, Identity, LeakyReLU,
                   Linear, MSELoss, Module, Parameter, ReLU, Sequential, Sigmoid, Softmax, Tanh,
                   gradcheck, register_layer)
from .core import init
from .errors import BarepropError, ConfigError, DataError, ModelFileError, TrainingDiverged
from .optim import (SGD, Adagrad, Adam, AdamW, Optimizer, RMSprop, clip_grad_norm_,
                    clip_grad_value_)

__version__ = "0.1.0"

__all__ = [
    "BatchNorm1d", "Dropout", "Flatten", "GELU", "CrossEntropyLoss", "Identity", "LeakyReLU",
    "Linear", "MSELoss", "Module", "Parameter", "ReLU", "Sequential", "Sigmoid", "Softmax", "Tanh",
    "gradcheck", "init", "register_layer",
    "BarepropError", "ConfigError", "DataError", "ModelFileError", "TrainingDiverged",
    "SGD", "Adagrad", "Adam", "AdamW", "Optimizer", "RMSprop", "clip_grad_norm_",
    "clip_grad_value_",
]

from . import data  # noqa: E402
from .inference import Predictor, predict_proba  # noqa: E402
from .io import load, save  # noqa: E402
from .train import (Callback, EarlyStopping, History, LRSchedule, MaxNorm,  # noqa: E402
                    ModelCheckpoint, ProgressBar, TrainStep, evaluate, fit, train_step)

__all__ += ["data", "load", "save", "Predictor", "predict_proba", "Callback", "EarlyStopping",
            "History", "LRSchedule", "MaxNorm", "ModelCheckpoint", "ProgressBar", "TrainStep",
            "evaluate", "fit", "train_step"]
