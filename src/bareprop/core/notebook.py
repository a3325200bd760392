"""The seed notebook's two departures from textbook backprop, as layer hooks that work
for any layer with parameters (Sequential.backward runs them around each such layer).

1. Delta clipping: the notebook clipped every delta (the gradient w.r.t. a layer's
   output, per example) to [-c, c] before the layer used it. Our deltas carry the mean
   loss's 1/N, so the bound applied is c / N.
2. Update as you go: each layer is updated as soon as its gradients are known, and the
   delta below it is formed with the *updated* weights. Without this order the seed
   preset's weights drift ~2e-4 relative from the notebook's in one epoch
   (tests/reference/test_reference_notebook.py checks the order to 1e-12).
"""
from __future__ import annotations

import numpy as np


class DeltaClip:
    """before(dout): clip the delta element-wise to [-c/N, c/N]; after(layer): nothing."""

    #: whether ``after`` changes the layer's weights (then its dx must come after it)
    steps = False

    def __init__(self, c: float | None):
        self.c = c

    def before(self, dout: np.ndarray) -> np.ndarray:
        if self.c is None:
            return dout
        bound = self.c / dout.shape[0]      # per-example delta c, mean loss 1/N
        return np.clip(dout, -bound, bound)

    def after(self, layer) -> None:
        pass


class UpdateAsYouGo(DeltaClip):
    """The notebook's order: clip (when ``c`` is set), then step ``optimizer`` on each
    layer's own parameters right after its gradients are filled."""

    steps = True

    def __init__(self, optimizer, c: float | None = None):
        super().__init__(c)
        self.optimizer = optimizer

    def after(self, layer) -> None:
        self.optimizer.step(layer.parameters())
