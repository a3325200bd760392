"""Training: fit/evaluate, the History they fill, and callbacks."""
from .callbacks import Callback, ProgressBar
from .history import History
from .loop import EvalResult, TrainState, evaluate, fit

__all__ = ["Callback", "ProgressBar", "History", "EvalResult", "TrainState", "evaluate", "fit"]
