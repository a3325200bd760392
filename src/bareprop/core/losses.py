"""Losses: forward(pred, target) -> python float; backward() -> dL/dpred.

Both reduce by the mean, as PyTorch's defaults, so gradients carry a 1/N factor.
Not here: metrics such as accuracy (train/metrics.py).
"""
from __future__ import annotations

import numpy as np

from ..errors import ConfigError


def _check_labels(y: np.ndarray, n: int, c: int) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim != 1 or y.shape[0] != n:
        raise ValueError(f"labels must have shape ({n},), got {y.shape}")
    if y.dtype.kind not in "iu":  # np.issubdtype says the same, 10x slower per call
        raise ValueError(f"labels must be integers (class indices), got dtype {y.dtype}")
    if n and (y.min() < 0 or y.max() >= c):
        raise ValueError(f"labels must lie in 0..{c - 1}, got values {y.min()}..{y.max()}")
    return y


def log_softmax(z: np.ndarray, return_probs: bool = False):
    """log p = z - max - log(sum exp(z - max)), finite for any finite z.

    With ``return_probs`` also returns p = exp(z - max) / sum, from the same
    exponentials (the backward needs p; recomputing exp(log p) costs a pass).
    """
    shifted = z - z.max(axis=1, keepdims=True)                     # (N, C), max 0
    e = np.exp(shifted)
    s = e.sum(axis=1, keepdims=True)                               # (N, 1), >= 1
    shifted -= np.log(s)                                           # log p
    if return_probs:
        e /= s
        return shifted, e
    return shifted


class CrossEntropyLoss:
    """Softmax cross-entropy on logits with integer labels, mean over the batch.

    With q = (1 - eps) onehot(y) + eps / C (PyTorch's label_smoothing eps):
        L = -(1/N) sum_n sum_c q_nc log softmax(z)_nc
        dL/dz = (softmax(z) - q) / N

    Why fused: through a separate Softmax layer the gradient of -log p_y is -1/p_y,
    which overflows to inf (then NaN) once the true class's p underflows (a logit gap
    of ~89 in float32, ~710 in float64); ``p - q`` stays finite, and log_softmax never
    forms log(0) (the notebook's ``log(0)`` warning). Near p -> 1 both lose the same
    relative digits of p, which rounding fixes already (docs/backprop.md).
    """

    def __init__(self, label_smoothing: float = 0.0):
        if not 0.0 <= label_smoothing <= 1.0:
            raise ConfigError(f"label_smoothing must be in [0, 1], got {label_smoothing}")
        self.label_smoothing = float(label_smoothing)

    def __call__(self, logits, y) -> float:
        return self.forward(logits, y)

    def forward(self, logits: np.ndarray, y: np.ndarray) -> float:
        if logits.ndim != 2:
            raise ValueError(f"logits must have shape (N, C), got {logits.shape}")
        n, c = logits.shape
        y = _check_labels(y, n, c)
        logp, p = log_softmax(logits, return_probs=True)            # (N, C) each
        rows = np.arange(n)
        nll = -logp[rows, y]                                        # (N,)
        eps = self.label_smoothing
        if eps:
            per_example = (1 - eps) * nll - eps * logp.mean(axis=1)  # (N,)
        else:
            per_example = nll
        self._p, self._y = p, y
        # sum / n is what .mean() computes, without its Python-level overhead (~25 us a
        # call, 4% of a batch-32 step)
        return float(per_example.sum() / n)

    def backward(self) -> np.ndarray:
        p, y = self._p, self._y
        n, c = p.shape
        dz = p.copy()                                               # (N, C); backward twice stays right
        eps = self.label_smoothing
        if eps:
            dz -= eps / c
        dz[np.arange(n), y] -= 1 - eps
        dz /= n
        return dz                                                   # (N, C)


class MSELoss:
    """L = mean((pred - target)^2) over all elements; dL/dpred = 2 (pred - target) / numel."""

    def __call__(self, pred, target) -> float:
        return self.forward(pred, target)

    def forward(self, pred: np.ndarray, target: np.ndarray) -> float:
        target = np.asarray(target)
        if pred.shape != target.shape:
            raise ValueError(
                f"MSELoss needs pred and target of the same shape, got {pred.shape} and "
                f"{target.shape} (one-hot encode class labels first)"
            )
        self._diff = pred - target.astype(pred.dtype, copy=False)
        return float(np.mean(self._diff * self._diff))

    def backward(self) -> np.ndarray:
        return self._diff * (2.0 / self._diff.size)
