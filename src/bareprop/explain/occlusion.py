"""Occlusion (Zeiler & Fergus 2014) as Captum's ``Occlusion`` computes it: slide a window
over each example, replace what it covers by the baseline, and credit every covered
input with the drop of the target logit, averaged over the windows that covered it:

    attr_i = mean over windows W containing i of ( logit_t(x) - logit_t(x with W := b) )

Windows start at 0, stride, 2 stride, ... along each axis of one example, and one more
start is added past the last full step (Captum's ceil((D - window) / stride) + 1 starts),
the window then cut at the edge. No gradient is used: the forward pass alone.
"""
from __future__ import annotations

import itertools

import numpy as np

from ..errors import ConfigError
from .probe import CHUNK, as_input, forward, logits_of, targets, untouched

def _as_tuple(v, n: int, what: str) -> tuple[int, ...]:
    t = (v,) * n if isinstance(v, (int, np.integer)) else tuple(v)
    if len(t) != n or not all(isinstance(d, (int, np.integer)) and d >= 1 for d in t):
        raise ConfigError(f"the occlusion {what} must be {n} positive integers (one per axis "
                          f"of an example), got {v!r}")
    return tuple(int(d) for d in t)


def starts(shape, window, stride) -> list[tuple[int, ...]]:
    """Every window's first index (as Captum orders them: the first axis fastest)."""
    counts = []
    for d, w, s in zip(shape, window, stride):
        if w > d:
            raise ConfigError(f"an occlusion window of {tuple(window)} is larger than an "
                              f"example {tuple(shape)}; use a smaller window")
        if d > w and s > w:
            raise ConfigError(f"an occlusion stride of {tuple(stride)} skips inputs under a "
                              f"window of {tuple(window)}; use a stride no larger than the "
                              "window")
        counts.append(int(np.ceil((d - w) / s)) + 1)
    grid = itertools.product(*(range(c) for c in reversed(counts)))
    return [tuple(i * s for i, s in zip(reversed(idx), stride)) for idx in grid]


def occlusion(model, x, target=None, window=(1, 4, 4), stride=(1, 2, 2),
              baseline=0) -> np.ndarray:
    """Captum's ``Occlusion(model).attribute(x, sliding_window_shapes=window,
    strides=stride, target=target, baselines=baseline)``, in the model's dtype (Captum
    returns float32 whatever the model's). ``window`` and ``stride`` have one entry per
    axis of an example: (1, 4, 4) for a (1, 28, 28) image, (16,) for a flat MLP input."""
    x = as_input(model, x)
    shape = x.shape[1:]
    window = _as_tuple(window, len(shape), "window")
    stride = _as_tuple(stride, len(shape), "stride")
    where = starts(shape, window, stride)
    b = np.broadcast_to(np.asarray(baseline, dtype=x.dtype), x.shape)
    total = np.zeros_like(x)
    count = np.zeros(shape, x.dtype)
    cuts = [tuple(slice(s, s + w) for s, w in zip(st, window)) for st in where]
    for c in cuts:
        count[c] += 1
    with untouched(model):
        logits = logits_of(model, x)
        t = targets(target, logits)
        base = logits[np.arange(len(x)), t]
        # examples at most CHUNK at a time, and as many windows per forward as keep the
        # occluded copies within CHUNK rows
        for lo in range(0, len(x), CHUNK):
            xs, bs, ts = x[lo:lo + CHUNK], b[lo:lo + CHUNK], t[lo:lo + CHUNK]
            n = len(xs)
            per = max(1, CHUNK // n)
            for i in range(0, len(cuts), per):
                part = cuts[i:i + per]
                batch = np.repeat(xs[None], len(part), axis=0)                # (P, n, ...)
                for j, c in enumerate(part):
                    batch[(j, slice(None)) + c] = bs[(slice(None),) + c]
                out = forward(model, batch.reshape((-1,) + shape))
                hit = out[np.arange(len(out)), np.tile(ts, len(part))].reshape(len(part), n)
                drop = base[lo:lo + n] - hit
                for j, c in enumerate(part):
                    total[(slice(lo, lo + n),) + c] += drop[j].reshape((n,) + (1,) * len(shape))
    return total / count
