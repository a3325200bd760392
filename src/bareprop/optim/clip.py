"""Gradient clipping utilities with torch.nn.utils' semantics."""
from __future__ import annotations

import math

import numpy as np


def clip_grad_norm_(params, max_norm: float, norm_type: float = 2.0) -> float:
    """Scale all gradients together so their joint norm is at most ``max_norm``.

    total = ||(||g_1||, ..., ||g_k||)||_p;  coef = max_norm / (total + 1e-6);
    every g *= min(coef, 1). Returns ``total`` (before clipping), as torch does.
    """
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return 0.0
    norm_type = float(norm_type)
    if math.isinf(norm_type):
        total = max(float(np.max(np.abs(g))) for g in grads)
    else:
        norms = [float(np.linalg.norm(g.ravel(), norm_type)) for g in grads]
        total = float(np.linalg.norm(np.array(norms), norm_type))
    coef = min(max_norm / (total + 1e-6), 1.0)
    for g in grads:
        g *= coef
    return total


def clip_grad_value_(params, clip_value: float) -> None:
    """Clip every gradient element to [-clip_value, clip_value], in place."""
    for p in params:
        if p.grad is not None:
            np.clip(p.grad, -clip_value, clip_value, out=p.grad)
