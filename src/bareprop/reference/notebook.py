"""The seed notebook's training step, re-expressed with matrix products.

Faithful to its arithmetic, quirks included: softmax without max-subtraction,
ReLU' = 1 at z == 0, deltas clipped to [-clip, clip], per-example deltas averaged
into dW/db, and layers updated from the output back, each hidden delta computed
with the next layer's weights *after* their update. Used by the tests to prove
``--preset seed`` reproduces the notebook; not part of the library.
"""
from __future__ import annotations

import numpy as np


def _relu_grad(z):
    return (z >= 0).astype(z.dtype)  # the notebook: 1 where z >= 0


def notebook_step(weights, biases, x, y, lr, clip=1.0, n_classes=10):
    """One SGD step in place on lists ``weights`` [(out, in)], ``biases`` [(out,)]; returns loss.

    x: (N, 28, 28) images or (N, 784) rows, as the notebook's flattened pixels."""
    x = x.reshape(len(x), -1)                           # (N, D)
    acts, zs = [x], []
    a = x
    for i, (w, b) in enumerate(zip(weights, biases)):
        z = a @ w.T + b                                 # (N, out)
        zs.append(z)
        if i < len(weights) - 1:
            a = np.maximum(z, 0)
        else:
            e = np.exp(z)                               # no max-subtraction, as the notebook
            a = e / e.sum(axis=1, keepdims=True)
        acts.append(a)
    n = len(y)
    onehot = np.eye(n_classes, dtype=x.dtype)[y]
    loss = float(-np.log(acts[-1][np.arange(n), y]).sum() / n)
    delta = np.clip(acts[-1] - onehot, -clip, clip)     # (N, C)
    for i in range(len(weights) - 1, -1, -1):
        dw = delta.T @ acts[i] / n                      # (out, in)
        db = delta.mean(axis=0)
        weights[i] -= lr * dw
        biases[i] -= lr * db
        if i > 0:                                       # uses the just-updated weights[i]
            delta = np.clip((delta @ weights[i]) * _relu_grad(zs[i - 1]), -clip, clip)
    return loss
