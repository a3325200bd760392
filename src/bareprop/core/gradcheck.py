"""Numerical gradient check: the hand-written backward against central differences.

Not a training tool: it runs 2 forward passes per parameter element.
"""
from __future__ import annotations

import copy

import numpy as np


def relative_error(analytic: np.ndarray, numeric: np.ndarray) -> float:
    """max |a - n| / max(max |a|, max |n|): the worst element, relative to the scale.

    Normalising by the largest magnitude (not element by element) keeps elements
    whose true gradient is ~0 from turning round-off into huge ratios.
    """
    scale = max(float(np.max(np.abs(analytic), initial=0.0)),
                float(np.max(np.abs(numeric), initial=0.0)))
    if scale == 0.0:
        return 0.0
    return float(np.max(np.abs(analytic - numeric))) / scale


def gradcheck(model, loss_fn, x, y, eps: float = 1e-6) -> dict[str, float]:
    """Compare backward's gradients with float64 central differences.

    dL/dtheta_i ~= (L(theta + eps e_i) - L(theta - eps e_i)) / (2 eps)

    Works on a float64 deep copy of ``model`` (the original is untouched) in its
    current mode. Returns {parameter name: relative_error} — values below ~1e-6
    mean the backward pass is right.

    >>> import numpy as np, bareprop as bp
    >>> net = bp.Sequential(bp.Linear(4, 3, rng=0), bp.Tanh(), bp.Linear(3, 2, rng=1))
    >>> errs = bp.gradcheck(net, bp.CrossEntropyLoss(), np.ones((5, 4)), np.array([0, 1, 0, 1, 1]))
    >>> max(errs.values()) < 1e-6
    True
    """
    model = copy.deepcopy(model).astype(np.float64)
    x = np.asarray(x, dtype=np.float64)
    if hasattr(model, "clip_delta"):
        model.clip_delta = None  # clipping is not a gradient; check the true one
    for m in model.modules():
        if hasattr(m, "freeze_mask"):
            m.freeze_mask = True  # one fixed dropout mask: the function must not change
    model.zero_grad()
    loss_fn.forward(model.forward(x), y)
    model.backward(loss_fn.backward())
    errors = {}
    for name, p in model.named_parameters():
        analytic = p.grad.copy()
        numeric = np.empty_like(p.data)
        flat, nflat = p.data.reshape(-1), numeric.reshape(-1)
        for i in range(flat.size):
            old = flat[i]
            flat[i] = old + eps
            plus = loss_fn.forward(model.forward(x), y)
            flat[i] = old - eps
            minus = loss_fn.forward(model.forward(x), y)
            flat[i] = old
            nflat[i] = (plus - minus) / (2 * eps)
        errors[name] = relative_error(analytic, numeric)
    return errors

