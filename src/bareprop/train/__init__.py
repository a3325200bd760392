"""Training: fit/evaluate, the History they fill, and callbacks."""
from .callbacks import (Callback, Checkpointer, EarlyStopping, LRSchedule, MaxNorm,
                        ModelCheckpoint, ProgressBar)
from .history import History
from .loop import EvalResult, TrainState, evaluate, fit
from .lr_find import LRFindResult, lr_find
from .step import TrainStep, train_step

__all__ = ["Callback", "Checkpointer", "EarlyStopping", "LRSchedule", "MaxNorm",
           "ModelCheckpoint", "ProgressBar", "History", "EvalResult", "TrainState", "evaluate", "fit",
           "TrainStep", "train_step", "LRFindResult", "lr_find"]
