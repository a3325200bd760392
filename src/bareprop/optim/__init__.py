"""Optimizers (pure update rules + thin classes), schedules and gradient clipping."""
from .adam import Adam, AdamW
from .clip import clip_grad_norm_, clip_grad_value_
from .optimizer import Optimizer
from .rmsprop import Adagrad, RMSprop
from .sgd import SGD

__all__ = ["Adam", "AdamW", "Adagrad", "RMSprop", "SGD", "Optimizer",
           "clip_grad_norm_", "clip_grad_value_"]
