"""Numerical gradient check: the hand-written backward against central differences.

Not a training tool: it runs 2 forward passes per parameter (and input) element.
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


def numeric_grad(f, a: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """Central differences of the scalar ``f()`` with respect to the array ``a``:

        df/da_i ~= (f(a + eps e_i) - f(a - eps e_i)) / (2 eps)

    ``f`` takes no argument and reads ``a``, which is moved in place one element at a
    time and restored. ``a`` must be C-contiguous (a parameter's data, an input array).
    """
    if not a.flags.c_contiguous:
        raise ValueError("numeric_grad needs a C-contiguous array to perturb in place")
    grad = np.empty_like(a)
    flat, gflat = a.reshape(-1), grad.reshape(-1)               # views of a and grad
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + eps
        plus = f()
        flat[i] = old - eps
        minus = f()
        flat[i] = old
        gflat[i] = (plus - minus) / (2 * eps)
    return grad


def gradcheck(model, loss_fn, x, y, eps: float = 1e-6,
              wrt_input: bool = False) -> dict[str, float]:
    """Compare backward's gradients with float64 central differences.

    dL/dtheta_i ~= (L(theta + eps e_i) - L(theta - eps e_i)) / (2 eps)

    Works on a float64 deep copy of ``model`` (the original is untouched) in its
    current mode. Returns {parameter name: relative_error}, plus {"input": ...} for
    dL/dx when ``wrt_input`` is True — values below ~1e-6 mean the backward pass is right.

    >>> import numpy as np, bareprop as bp
    >>> net = bp.Sequential(bp.Linear(4, 3, rng=0), bp.Tanh(), bp.Linear(3, 2, rng=1))
    >>> errs = bp.gradcheck(net, bp.CrossEntropyLoss(), np.ones((5, 4)), np.array([0, 1, 0, 1, 1]))
    >>> max(errs.values()) < 1e-6
    True
    """
    model = copy.deepcopy(model).astype(np.float64)
    x = np.array(x, dtype=np.float64, order="C")                 # a copy: perturbed below
    if hasattr(model, "clip_delta"):
        model.clip_delta = None  # clipping is not a gradient; check the true one
    for m in model.modules():
        if hasattr(m, "freeze_mask"):
            m.freeze_mask = True  # one fixed dropout mask: the function must not change
    model.zero_grad()
    loss_fn.forward(model.forward(x), y)
    dout = loss_fn.backward()
    dx = model.backward(dout, need_dx=True) if wrt_input else model.backward(dout)
    # the arrays to perturb, and copies of their analytic gradients (copies: the
    # forwards below must not reach them through a layer's scratch buffers)
    wrt = {name: p.data for name, p in model.named_parameters()}
    analytic = {name: p.grad.copy() for name, p in model.named_parameters()}
    if wrt_input:
        wrt["input"], analytic["input"] = x, np.array(dx)

    def loss():
        return loss_fn.forward(model.forward(x), y)

    return {name: relative_error(analytic[name], numeric_grad(loss, a, eps))
            for name, a in wrt.items()}
