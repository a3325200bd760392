"""Softmax cross-entropy, loss and gradient in one compiled call (fast/kernels.py), for a
training step whose logits are float32: what core/losses.CrossEntropyLoss computes, within
float32 rounding. Anything else (float64, an empty batch, no numba) is the reference
loss's own path.
"""
from __future__ import annotations

import numpy as np

from ..core.losses import check_labels
from . import kernels


class FastCrossEntropy:
    """Stands for ``loss`` (a CrossEntropyLoss, whose label smoothing it reads at every
    call) in a training step."""

    def __init__(self, loss):
        self.loss = loss
        self._dz = None

    def __call__(self, logits, y) -> float:
        return self.forward(logits, y)

    def forward(self, logits: np.ndarray, y: np.ndarray) -> float:
        n = len(logits) if logits.ndim == 2 else 0
        k = kernels.get(logits.dtype) if n else None
        if k is None:
            self._dz = None
            return self.loss.forward(logits, y)
        y = check_labels(y, *logits.shape)
        self._dz = dz = np.empty(logits.shape, logits.dtype)               # (N, C), C order
        return float(k.softmax_ce(logits, y.astype(np.intp, copy=False),
                                  self.loss.label_smoothing, dz))

    def backward(self) -> np.ndarray:
        if self._dz is None:
            return self.loss.backward()
        return self._dz.copy()        # each call its own array, as the reference's
