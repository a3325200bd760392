"""A look inside the network: histograms of every layer's activations and every
parameter's gradients on one fixed batch, recorded at chosen epochs.

The probe batch is evaluated without an update, so inspecting changes nothing.
"""
from __future__ import annotations

import numpy as np

from .callbacks import Callback


def histogram(a: np.ndarray, bins: int = 40) -> dict:
    a = np.asarray(a, np.float64).ravel()
    counts, edges = np.histogram(a, bins=bins)
    return {"counts": counts.tolist(), "edges": edges.tolist(), "mean": float(a.mean()),
            "std": float(a.std()), "zeros": float(np.mean(a == 0))}


def inspect_batch(model, loss_fn, x, y) -> dict:
    """{"activations": {layer: hist}, "gradients": {param: hist}} for one batch."""
    saved = {n: p.grad for n, p in model.named_parameters()}
    was_training = model.training
    # eval mode only where it changes the arithmetic (no dropout noise, no BatchNorm
    # running-stat updates): Conv2d and MaxPool2d keep what their backward needs only
    # in training mode, and their forward is the same in both
    from ..core import BatchNorm1d, BatchNorm2d, Dropout

    for m in model.modules():
        if isinstance(m, (Dropout, BatchNorm1d, BatchNorm2d)):
            m.train(False)
    acts = {}
    a = x
    for i, layer in enumerate(model.layers):
        a = layer.forward(a)
        acts[f"{i} {type(layer).__name__}"] = histogram(a)
    loss_fn(a, y)
    model.zero_grad()
    model.backward(loss_fn.backward())
    grads = {n: histogram(p.grad) for n, p in model.named_parameters()}
    for n, p in model.named_parameters():
        p.grad = saved[n]
    model.train(was_training)
    return {"activations": acts, "gradients": grads}


class Inspector(Callback):
    """Records ``inspect_batch`` on (x, y) after each epoch in ``epochs`` (1-based);
    results in ``self.records`` as {epoch: {...}}."""

    def __init__(self, x, y, loss_fn, epochs):
        self.x, self.y, self.loss_fn, self.epochs = x, y, loss_fn, set(epochs)
        self.records: dict[int, dict] = {}

    def on_epoch_end(self, state, logs):
        if logs["epoch"] in self.epochs:
            self.records[logs["epoch"]] = inspect_batch(state.model, self.loss_fn, self.x, self.y)

    def state_dict(self):
        return {str(k): v for k, v in self.records.items()}

    def load_state_dict(self, state):
        self.records = {int(k): v for k, v in state.items()}
