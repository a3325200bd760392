"""Keras' weight layout against bareprop's (which is PyTorch's), for weights files and the
Keras twin alike.

A layer's Keras weights are its state-dict arrays in order (kernel, bias; gamma, beta,
moving mean, moving variance), kernels transposed:
    Dense   (in, out)         <- bareprop (out, in)
    Conv2D  (kh, kw, C, O)    <- bareprop (O, C, kh, kw)
and images are channels-last, so a Flatten of an image orders its features (H, W, C)
in Keras and (C, H, W) here: the layers after it up to the first kernel see their input
features in another order (``flatten_orders``).
"""
from __future__ import annotations

import numpy as np

from .. import core


def to_keras(w: np.ndarray) -> np.ndarray:
    """A bareprop array in Keras' layout: kernels transposed, vectors unchanged."""
    if w.ndim == 4:
        return np.ascontiguousarray(w.transpose(2, 3, 1, 0))        # (kh, kw, C, O)
    return np.ascontiguousarray(w.T) if w.ndim == 2 else w           # (in, out)


def from_keras(w: np.ndarray) -> np.ndarray:
    """A Keras array back in bareprop's layout (the inverse of ``to_keras``)."""
    return w.transpose(3, 2, 0, 1) if w.ndim == 4 else (w.T if w.ndim == 2 else w)


def keras_weights(layer) -> list[np.ndarray]:
    """``layer``'s arrays in Keras' order and layout (what ``set_weights`` takes)."""
    return [to_keras(v) for v in layer.state_dict().values()]


def flatten_orders(model, shape=None) -> dict[str, np.ndarray]:
    """state-dict prefix -> the permutation taking Keras' channels-last flat features to
    bareprop's channels-first ones (perm[bareprop index] = Keras index), for every layer
    with arrays that reads a Flatten of an image (C, H, W), up to and including the
    first one with a kernel (a Linear)."""
    orders, perm = {}, None
    for step in core.walk(model, shape):
        layer = step.layer
        if isinstance(layer, core.Flatten) and step.in_shape is not None \
                and len(step.in_shape) == 3:
            c, h, w = step.in_shape
            perm = np.arange(c * h * w).reshape(h, w, c).transpose(2, 0, 1).ravel()
        elif perm is not None and layer.state_dict():
            orders[step.where] = perm
            if any(v.ndim >= 2 for v in layer.state_dict().values()):
                perm = None
    return orders


def reorder(arrays: dict[str, np.ndarray], perm: np.ndarray | None) -> dict[str, np.ndarray]:
    """One layer's arrays (bareprop's layout, by state-dict name) with their input features
    taken out of Keras' flatten order: a kernel's columns (a Linear's bias is per output:
    unchanged), or, in a layer without a kernel (a BatchNorm1d between Flatten and the
    first Linear), every per-feature vector. Arrays whose size does not fit are left for
    the caller's shape check."""
    if perm is None:
        return arrays
    kernel = any(v.ndim >= 2 for v in arrays.values())
    n = len(perm)
    return {k: (v[:, perm] if kernel and v.ndim == 2 and v.shape[1] == n else
                v[perm] if not kernel and v.ndim == 1 and len(v) == n else v)
            for k, v in arrays.items()}
