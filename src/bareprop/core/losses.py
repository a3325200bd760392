"""Losses: forward(pred, target) -> python float; backward() -> dL/dpred.

Both reduce by the mean, as PyTorch's defaults, so gradients carry a 1/N factor.
Not here: metrics such as accuracy (train/metrics.py).
"""
from __future__ import annotations

import functools
import math

import numpy as np

from ..errors import ConfigError
from .linear import ones

#: a signed label dtype's unsigned twin, for a one-reduction range check (native byte order;
#: others are looked up from their own dtype string, which keeps the byte order)
_UNSIGNED = {np.dtype(t): np.dtype(t.replace("i", "u")) for t in ("i1", "i2", "i4", "i8")}


def check_labels(y: np.ndarray, n: int, c: int) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim != 1 or y.shape[0] != n:
        raise ValueError(f"labels must have shape ({n},), got {y.shape}")
    if y.dtype.kind not in "iu":  # np.issubdtype says the same, 10x slower per call
        raise ValueError(f"labels must be integers (class indices), got dtype {y.dtype}")
    # one reduction: viewed as unsigned, a negative label is huge (min and max cost two)
    if n and (y.view(_UNSIGNED.get(y.dtype) or y.dtype.str.replace("i", "u"))
              if y.dtype.kind == "i" else y).max() >= c:
        raise ValueError(f"labels must lie in 0..{c - 1}, got values {y.min()}..{y.max()}")
    return y


class CrossEntropyLoss:
    """Softmax cross-entropy on logits with integer labels, mean over the batch.

    With q = (1 - eps) onehot(y) + eps / C (PyTorch's label_smoothing eps):
        L = -(1/N) sum_n sum_c q_nc log softmax(z)_nc
        dL/dz = (softmax(z) - q) / N

    Why fused: through a separate Softmax layer the gradient of -log p_y is -1/p_y,
    which overflows to inf (then NaN) once the true class's p underflows (a logit gap
    of ~89 in float32, ~710 in float64); ``p - q`` stays finite, and
    log p = z - shift - log(row sum) never forms log(0) (the notebook's ``log(0)``
    warning). Near p -> 1 both lose the same relative digits of p, which rounding fixes
    already (docs/backprop.md).
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
        y = check_labels(y, n, c)
        # (N,) index of z[n, y_n] in the C-ordered shifted logits (uint64 labels + int64
        # offsets would promote to float64: the checked labels are cast to intp first)
        flat = _row_starts(n, c) + y.astype(np.intp, copy=False)
        parts = _shared_shift(logits)
        if parts is None:                                          # per-row max: always safe
            shifted = np.subtract(logits, logits.max(axis=1, keepdims=True), order="C")
            e = np.exp(shifted)
            s = e.sum(axis=1)                                       # (N,), >= 1
        else:
            shifted, e, s = parts
        log_s = np.log(s)                                           # (N,)
        # -log p_{n,y_n} with log p = shifted - log s, without forming log p (N, C)
        per_example = log_s - shifted.ravel().take(flat)            # (N,)
        eps = self.label_smoothing
        if eps:   # mean_c -log p_nc = log s - mean_c shifted
            per_example = (1 - eps) * per_example + eps * (log_s - shifted.mean(axis=1))
        self._e, self._s, self._flat = e, s, flat
        # sum / n is what .mean() computes, without its Python-level overhead (~25 us a
        # call, 4% of a batch-32 step)
        return float(per_example.sum() / n)

    def backward(self) -> np.ndarray:
        e, s, flat = self._e, self._s, self._flat
        n, c = e.shape
        if n == 0:
            return np.zeros_like(e)
        dz = e / (s * n)[:, None]              # (N, C) p / N: a new C-ordered array (e is)
        eps = self.label_smoothing
        if eps:
            dz -= eps / (c * n)
        dz.ravel()[flat] -= (1 - eps) / n                           # - q / N
        return dz                                                   # (N, C)


@functools.cache
def _safe_sum(dtype) -> float:
    """sqrt of the smallest normal number of ``dtype``: a row sum above it keeps every
    probability that matters out of the subnormals."""
    return float(np.sqrt(np.finfo(dtype).tiny))


@functools.lru_cache(maxsize=64)
def _row_starts(n: int, c: int) -> np.ndarray:
    """[0, c, 2c, ...] (n,), the flat index of each row of an (n, c) array; read-only."""
    a = np.arange(0, n * c, c)
    a.flags.writeable = False
    return a


def _shared_shift(z: np.ndarray):
    """(z - g, exp(z - g), row sums (N,)) with one shift g = max(z) for the whole batch,
    or None where that is not safe. Why: a per-row max over a (N, 10) array costs ~7 us a
    call, the whole array's max ~1 us, and the row sums as a GEMV ~1 us against ~4
    (docs/benchmarks.md, MLP speed round 2). log p = z - g - log s is the same for any
    shift; only a row whose sum s underflows loses digits, so a row below sqrt(tiny)
    (a logit gap of ~44 in float32, ~354 in float64 from the batch's largest) takes the
    per-row path, as do empty and non-finite logits."""
    if z.size == 0 or z.dtype.kind != "f":
        return None
    g = z.max()
    if not math.isfinite(g):
        return None
    shifted = np.subtract(z, g, order="C")     # (N, C), max 0; C order: flat indices hold
    e = np.exp(shifted)
    s = e @ ones(z.shape[1], z.dtype)                               # (N,) row sums
    if s.min() < _safe_sum(z.dtype):
        return None
    return shifted, e, s


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
