"""What every explanation needs from a model: its logits and, by the hand-written
backward it already has, the gradient of one logit per example with respect to the
input or to one layer's output, with the model left exactly as it was found.

    d logit[n, t_n] / d x   =   J_1^T J_2^T ... J_L^T e_{t_n}

is the backward pass of training with dL/dlogits = one-hot(t) in place of the loss's
gradient. Only the layers' ``input_grad`` (dx = J^T dout) is called where a layer
splits its backward; a layer with its own one-call backward (a nested Sequential, a
recurrent or attention layer) fills its parameters' grads on the way, so every grad is
put back afterwards. The model runs in eval mode (dropout off, batch norm's running
statistics): examples do not interact, so one backward of the summed target logits
gives every example's own gradient.
"""
from __future__ import annotations

import inspect
from contextlib import contextmanager

import numpy as np

from ..core.module import Module
from ..errors import ConfigError


def layers_of(model) -> list:
    """The model's top-level layers (a lone layer is a model of one)."""
    return list(getattr(model, "layers", [model]))


@contextmanager
def untouched(model):
    """Run the block in eval mode, every layer keeping what its backward needs;
    afterwards every parameter's ``grad`` (the very array, or None), every layer's
    train/eval mode and flag are what they were, and what the layers kept for the
    backward is dropped (an explained model held in a server keeps no columns)."""
    saved = [(p, p.grad) for p in model.parameters()]
    modules = list({id(m): m for m in model.modules()}.values())       # each once
    before = [(m, m.training, m.__dict__.get("keep_for_backward")) for m in modules]
    for p, _ in saved:
        p.grad = None              # a layer's backward then makes new arrays, never +=
    model.eval()
    for m in modules:
        m.keep_for_backward = True
    try:
        yield
    finally:
        for p, g in saved:
            p.grad = g
        for m, training, flag in before:
            m.training = training
            if flag is None:
                m.__dict__.pop("keep_for_backward", None)      # back to the class's False
            else:
                m.keep_for_backward = flag
            if "_cache" in m.__dict__ and not training:
                m._cache = None


def as_input(model, x) -> np.ndarray:
    """``x`` as an array of the model's dtype with a batch axis (a copy: never the
    caller's array)."""
    dtype = getattr(model, "dtype", np.float32)
    x = np.array(x, dtype=dtype)
    shape = getattr(model, "input_shape", None)
    if shape is not None and x.shape[1:] != tuple(shape):
        if x.shape == tuple(shape):
            x = x[None]
        else:
            raise ConfigError(f"the input has shape {x.shape}, but the model takes "
                              f"(N, {', '.join(map(str, shape))}); pass a batch of "
                              "examples in the model's input layout")
    return x


def forward(model, x: np.ndarray, keep: int | None = None):
    """The logits of ``x``; with ``keep``, also the output of top-level layer ``keep``."""
    kept = None
    for i, layer in enumerate(layers_of(model)):
        x = layer(x)
        if i == keep:
            kept = x.copy()          # an in-place ReLU next would overwrite it
    return (x, kept) if keep is not None else x


def backward(model, dout: np.ndarray, down_to: int = 0) -> np.ndarray:
    """dout = d(score)/d(logits) sent back through the top-level layers from the last
    down to ``down_to`` (inclusive): d(score)/d(input of layer ``down_to``). Call right
    after ``forward`` of the same model, inside ``untouched``."""
    for layer in reversed(layers_of(model)[down_to:]):
        if type(layer).backward is Module.backward:            # dx = J^T dout alone
            dout = layer.input_grad(dout)
        elif "need_dx" in inspect.signature(layer.backward).parameters:
            dout = layer.backward(dout, need_dx=True)
        else:
            dout = layer.backward(dout)
    return dout


def targets(target, logits: np.ndarray) -> np.ndarray:
    """The class index of each example, (N,): the predicted class where ``target`` is
    None, else ``checked(target, N, C)``."""
    if target is None:
        return np.argmax(logits, axis=1)
    return checked(target, *logits.shape)


def checked(target, n: int, classes: int) -> np.ndarray:
    """``target`` (an int for all, or one per example) as (n,) class indices; ConfigError
    for the wrong count or a class the model does not have."""
    t = np.asarray(target)
    if t.dtype.kind not in "iu" or t.ndim > 1:
        raise ConfigError(f"target must be a class index or one per example, got {target!r}")
    t = np.broadcast_to(t, (n,)) if t.ndim == 0 else t
    if len(t) != n:
        raise ConfigError(f"{len(t)} targets for {n} examples; give one per example, "
                          "or one for all")
    if t.size and (t.min() < 0 or t.max() >= classes):
        bad = int(t[(t < 0) | (t >= classes)][0])
        raise ConfigError(f"target class {bad} is outside the model's {classes} classes "
                          f"(0..{classes - 1})")
    return t.astype(np.intp)


def one_hot(t: np.ndarray, logits: np.ndarray) -> np.ndarray:
    """dscore/dlogits for score = sum_n logits[n, t_n]: (N, C), 1 at each target."""
    d = np.zeros_like(logits)
    d[np.arange(len(t)), t] = 1
    return d


#: examples sent through the model at once (memory stays bounded for any batch)
CHUNK = 512


def logits_of(model, x: np.ndarray) -> np.ndarray:
    """The logits of ``x``, CHUNK examples at a time (call inside ``untouched``)."""
    return np.concatenate([forward(model, x[i:i + CHUNK]) for i in range(0, len(x), CHUNK)])


def chunks(model, x: np.ndarray, target, keep: int | None = None):
    """(rows, logits, targets[, kept]) of CHUNK examples at a time, each chunk forwarded
    once and ready for ``backward`` (call inside ``untouched``): the targets are the
    chunk's predicted classes where ``target`` is None, else its part of ``target``
    (checked against the whole batch with the first chunk's class count); with ``keep``,
    also the output of top-level layer ``keep`` (``forward``)."""
    given = None
    for i in range(0, len(x), CHUNK):
        rows = slice(i, i + CHUNK)
        out = forward(model, x[rows], keep)
        logits = out[0] if keep is not None else out
        if target is not None and given is None:
            given = checked(target, len(x), logits.shape[1])
        t = np.argmax(logits, axis=1) if target is None else given[rows]
        yield (rows, logits, t, out[1]) if keep is not None else (rows, logits, t)


def input_gradient(model, x: np.ndarray, target=None) -> np.ndarray:
    """d logit[n, t_n] / d x (x's shape), CHUNK examples at a time."""
    grad = np.empty_like(x)
    with untouched(model):
        for rows, logits, t in chunks(model, x, target):
            grad[rows] = backward(model, one_hot(t, logits))
    return grad
