"""The memory a run needs, estimated from its config (and its --arch model's shapes)
before anything is allocated, against a bound this machine can give.
"""
from __future__ import annotations

import os

import numpy as np

from .. import core
from ..errors import ConfigError
from .config import TrainConfig


# Every registered dataset has 28x28 images; the memory estimate needs the input width
# before any data is loaded.
INPUT_FEATURES = 28 * 28
# Bytes per parameter, in units of the dtype: weights, grads, up to two optimizer
# moments (Adam, centred RMSprop), a state_dict copy for the checkpoint, the best
# weights kept by early stopping.
COPIES_PER_PARAMETER = 6
# The largest run we let start: 80% of this machine's memory, and never more than
# 64 GiB (an MLP that needs more is a typo, e.g. --hidden 100000 100000).
MEMORY_CAP = 64 * 2**30


def memory_bound() -> int:
    try:
        physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):   # not POSIX: the fixed cap alone
        return MEMORY_CAP
    return min(int(0.8 * physical), MEMORY_CAP)


def estimated_bytes(cfg: TrainConfig, n_classes: int = 10, model=None) -> tuple[int, int]:
    """(parameters, bytes) a run of ``cfg`` needs at least: parameter copies plus the
    activations of a training batch (x4: outputs, forward caches or masks, and their
    gradients) or of a 1000-example evaluation batch (x2: outputs and the caches eval
    mode still keeps). ``model``: the built --arch model, whose layer shapes give the
    activation sizes (else the MLP's widths do)."""
    if model is None:
        widths = [INPUT_FEATURES, *cfg.hidden, n_classes]
        params = sum(a * b + b for a, b in zip(widths, widths[1:]))
    else:
        from .arch import activation_sizes

        widths, params = activation_sizes(model), model.num_parameters()
    item = np.dtype(cfg.dtype).itemsize
    acts = max(4 * cfg.batch_size, 2 * 1000) * sum(widths) * item
    if model is not None:       # layers that keep scratch between steps (Conv2d)
        acts += cfg.batch_size * item * scratch_per_example(model)
    return params, params * item * COPIES_PER_PARAMETER + acts


def scratch_per_example(model, shape=None) -> int:
    """Values of scratch one training example of ``shape`` (default: the model's input
    shape) costs ``model``: every layer that keeps scratch between steps says how much
    (``scratch(in_shape)``: Conv2d's padded input, columns ...), and they add up."""
    total = 0
    for step in core.walk(model, shape):
        scratch = getattr(step.layer, "scratch", None)
        if scratch is not None:
            total += sum(scratch(step.in_shape).values())
    return total


def check_memory(cfg: TrainConfig, model=None) -> None:
    params, need = estimated_bytes(cfg, model=model)
    bound = memory_bound()
    if need > bound:
        what, fix, field = ((f"--hidden {' '.join(map(str, cfg.hidden))}",
                             "smaller --hidden layers", "hidden") if model is None else
                            ("--arch", "fewer or narrower --arch layers", "arch"))
        raise ConfigError(
            f"{what} with --batch-size {cfg.batch_size} "
            f"needs about {need / 2**30:,.1f} GiB ({params:,} parameters), more than the "
            f"{bound / 2**30:,.1f} GiB bareprop allows here (80% of memory, at most 64 GiB); "
            f"use {fix} or a smaller --batch-size", field=field)
