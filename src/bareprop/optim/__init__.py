"""Optimizers (pure update rules + thin classes), schedules and gradient clipping."""
from .adam import Adam, AdamW
from .constraints import max_norm_
from .lr_scheduler import (CosineAnnealingLR, ExponentialLR, LinearLR, LRScheduler, MultiStepLR,
                           OneCycleLR, ReduceLROnPlateau, StepLR)
from .clip import clip_grad_norm_, clip_grad_value_
from .optimizer import Optimizer
from .rmsprop import Adagrad, RMSprop
from .sgd import SGD

__all__ = ["Adam", "AdamW", "Adagrad", "RMSprop", "SGD", "Optimizer",
           "clip_grad_norm_", "clip_grad_value_", "max_norm_", "CosineAnnealingLR",
           "ExponentialLR", "LinearLR", "LRScheduler", "MultiStepLR", "OneCycleLR",
           "ReduceLROnPlateau", "StepLR"]
