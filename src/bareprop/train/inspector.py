"""A look inside the network: histograms of every layer's activations and every
parameter's gradients on one fixed batch, recorded at chosen epochs; for image
activations (N, C, H, W) also each channel's statistics (a dead filter shows there).

The probe batch is evaluated without an update, so inspecting changes nothing.
"""
from __future__ import annotations

import numpy as np

from .callbacks import Callback


#: values converted to float64 at a time, and examples a probe runs at a time: the probe
#: of the `cnn` preset (500 examples through the reference layers, forward and back, and
#: float64 copies of each activation) took 550 MB in one piece and set the run's peak
CHUNK = 1 << 20
PROBE_CHUNK = 100


def _chunks(a: np.ndarray):
    flat = a.reshape(-1)
    for i in range(0, flat.size, CHUNK):
        yield np.asarray(flat[i:i + CHUNK], np.float64)


class Moments:
    """Count, mean and sum of squared deviations (Chan et al.'s pairwise update), minimum,
    maximum and zeros of values added a chunk at a time, in float64."""

    def __init__(self):
        self.n, self.mean, self.m2, self.zeros = 0, 0.0, 0.0, 0
        self.lo, self.hi = np.inf, -np.inf

    def add(self, a) -> None:
        for c in _chunks(np.asarray(a)):
            if c.size == 0:
                continue
            mb = c.mean()
            m2b = float(np.square(c - mb).sum())
            n = self.n + c.size
            delta = mb - self.mean
            self.mean += delta * c.size / n
            self.m2 += m2b + delta * delta * self.n * c.size / n
            self.n = n
            self.zeros += int(np.count_nonzero(c == 0))
            self.lo, self.hi = min(self.lo, c.min()), max(self.hi, c.max())

    def summary(self) -> dict:
        n = max(self.n, 1)
        return {"mean": float(self.mean), "std": float(np.sqrt(self.m2 / n)),
                "zeros": float(self.zeros / n)}

    def edges(self, bins: int) -> np.ndarray:
        """np.histogram's bin edges over [min, max] (its error for a NaN or inf range)."""
        return np.histogram_bin_edges(np.array([self.lo, self.hi], np.float64), bins=bins)


def histogram(a: np.ndarray, bins: int = 40) -> dict:
    """np.histogram's counts over ``bins`` equal bins from the minimum to the maximum,
    with mean, std and the fraction of zeros, in float64, a chunk at a time."""
    m = Moments()
    m.add(a)
    edges = m.edges(bins)
    counts = sum((np.histogram(c, bins=edges)[0] for c in _chunks(np.asarray(a))),
                 np.zeros(bins, np.int64))
    return {"counts": counts.tolist(), "edges": edges.tolist(), **m.summary()}


def channel_stats(per_channel: list) -> dict:
    """Per channel of (N, C, H, W) activations, over (N, H, W), from a Moments each: mean,
    std and the fraction of zeros (1.0 after a ReLU: the channel never fired)."""
    stats = [m.summary() for m in per_channel]
    return {key: [s[key] for s in stats] for key in ("mean", "std", "zeros")}     # (C,) each


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
    hist of an image layer's output also holds its ``channel_stats`` as "channels".

    Run PROBE_CHUNK examples at a time, twice: forward and back for the gradients (each
    chunk's loss gradient weighted by its share of the batch: the batch's mean loss) and
    each layer's moments and range, then forward again to count the histograms' bins
    (dropout and batch norm are in eval mode here, so both forwards agree)."""
    saved = {n: p.grad for n, p in model.named_parameters()}
    was_training = model.training
    _probe_mode(model)
    model.zero_grad()
    parts = [slice(i, i + PROBE_CHUNK) for i in range(0, len(x), PROBE_CHUNK)] or [slice(0)]
    names = [f"{i} {type(layer).__name__}" for i, layer in enumerate(model.layers)]
    moments = {name: Moments() for name in names}
    channels: dict = {}
    for s in parts:
        a = x[s]
        for name, layer in zip(names, model.layers):
            a = layer.forward(a)
            moments[name].add(a)
            if a.ndim == 4:
                for c, m in enumerate(channels.setdefault(name, [Moments() for _ in
                                                                 range(a.shape[1])])):
                    m.add(a[:, c])
        loss_fn(a, y[s])
        model.backward(loss_fn.backward() * a.dtype.type(len(y[s]) / max(len(y), 1)))
    acts = {name: {"counts": np.zeros(40, np.int64), "edges": moments[name].edges(40)}
            for name in names}
    for s in parts:
        a = x[s]
        for name, layer in zip(names, model.layers):
            a = layer.forward(a)
            h = acts[name]
            for c in _chunks(a):
                h["counts"] += np.histogram(c, bins=h["edges"])[0]
    for name, h in acts.items():
        h.update(counts=h["counts"].tolist(), edges=h["edges"].tolist(),
                 **moments[name].summary())
        if name in channels:
            h["channels"] = channel_stats(channels[name])
    grads = {n: histogram(p.grad) for n, p in model.named_parameters()}
    for n, p in model.named_parameters():
        p.grad = saved[n]
    model.release_scratch()          # the probe's buffers, not kept for training
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
