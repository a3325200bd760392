"""A look inside the network: histograms of every layer's activations and every
parameter's gradients on one fixed batch, recorded at chosen epochs; for image
activations (N, C, H, W) also each channel's statistics (a dead filter shows there).

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


def channel_stats(a: np.ndarray) -> dict:
    """Per channel of (N, C, H, W) activations, over (N, H, W): mean, std and the
    fraction of zeros (1.0 after a ReLU: the channel never fired on the batch)."""
    a = np.asarray(a, np.float64)
    return {"mean": a.mean(axis=(0, 2, 3)).tolist(), "std": a.std(axis=(0, 2, 3)).tolist(),
            "zeros": np.mean(a == 0, axis=(0, 2, 3)).tolist()}                   # (C,) each


def _probe_mode(model) -> None:
    """Eval mode for the layers whose output depends on the mode, dropout (no noise, no
    draw from its generator) and layers with running statistics (BatchNorm: used, not
    updated); training mode for the rest, which then keep what backward needs (a
    Conv2d or MaxPool2d in eval mode keeps nothing, to save memory)."""
    model.train()
    for m in model.modules():
        if hasattr(m, "reseed") or m._buffer_names:
            m.eval()


def inspect_batch(model, loss_fn, x, y) -> dict:
    """{"activations": {layer: hist}, "gradients": {param: hist}} for one batch; the
    hist of an image layer's output also holds its ``channel_stats`` as "channels"."""
    saved = {n: p.grad for n, p in model.named_parameters()}
    was_training = model.training
    _probe_mode(model)
    acts = {}
    a = x
    for i, layer in enumerate(model.layers):
        a = layer.forward(a)
        h = acts[f"{i} {type(layer).__name__}"] = histogram(a)
        if a.ndim == 4:
            h["channels"] = channel_stats(a)
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

    needs_grads = False      # its probe runs a backward of its own

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
