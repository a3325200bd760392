"""Keras' weight layout against bareprop's (which is PyTorch's), for weights files and the
Keras twin alike.

A layer's Keras weights are its state-dict arrays in order (kernel, bias; gamma, beta,
moving mean, moving variance), kernels transposed:
    Dense   (in, out)         <- bareprop (out, in)
    Conv2D  (kh, kw, C, O)    <- bareprop (O, C, kh, kw)
(recurrent layers: per layer and direction kernel, recurrent kernel and Keras' one bias,
below), and images are channels-last, so a Flatten of an image orders its features (H, W, C)
in Keras and (C, H, W) here: the layers after it up to the first kernel see their input
features in another order (``flatten_orders``).
"""
from __future__ import annotations

import numpy as np

from .. import core
from ..core.bptt import Recurrent


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
    if isinstance(layer, Recurrent):
        return _recurrent_to_keras(layer)
    return [to_keras(v) for v in layer.state_dict().values()]


def keras_shapes(layer) -> list[tuple[int, ...]]:
    """The shapes of ``layer``'s arrays in Keras' order and layout."""
    if isinstance(layer, Recurrent):
        return [w.shape for w in _recurrent_to_keras(layer)]
    return [tuple(v.shape[i] for i in (2, 3, 1, 0)) if v.ndim == 4 else v.shape[::-1]
            for v in layer.state_dict().values()]


def from_keras_arrays(layer, arrays: list[np.ndarray]) -> dict[str, np.ndarray]:
    """``layer``'s state dict from its Keras arrays (in ``keras_shapes(layer)``, checked
    by the caller): the inverse of ``keras_weights``, except that the one bias Keras
    keeps for an LSTM or SimpleRNN becomes b_ih, with b_hh = 0 (the same sums)."""
    if isinstance(layer, Recurrent):
        return _recurrent_from_keras(layer, arrays)
    return {name: from_keras(a) for name, a in zip(layer.state_dict(), arrays)}


# -- recurrent layers: Keras' LSTM, GRU(reset_after=True) and SimpleRNN -------------------
# Per layer and direction Keras keeps kernel (F, G H) = W_ih^T, recurrent_kernel (H, G H)
# = W_hh^T and one bias: LSTM and SimpleRNN b_ih + b_hh (G H,), GRU the two apart, (2, 3H).
# LSTM's gate order (i, f, c, o) is PyTorch's (i, f, g, o); GRU's is (z, r, h) for
# PyTorch's (r, z, n): the same permutation both ways.
def _gates(layer, a: np.ndarray) -> np.ndarray:
    """a (G H, ...) with its gate blocks in the other framework's order (GRU: r and z
    swap; the others keep theirs)."""
    if type(layer).__name__ != "GRU":
        return a
    h = layer.hidden_size
    return np.concatenate([a[h:2 * h], a[:h], a[2 * h:]])


def _groups(layer):
    """[(W_ih name, W_hh name, b_ih name or None, b_hh name or None)] per layer and
    direction, in state-dict order."""
    names = list(layer.state_dict())
    step = 4 if layer.bias else 2
    return [tuple(names[i:i + step]) + ((None, None) if step == 2 else ())
            for i in range(0, len(names), step)]


def _recurrent_to_keras(layer) -> list[np.ndarray]:
    state, out = layer.state_dict(), []
    for w_ih, w_hh, b_ih, b_hh in _groups(layer):
        out += [to_keras(_gates(layer, state[w_ih])), to_keras(_gates(layer, state[w_hh]))]
        if b_ih is not None:
            bi, bh = _gates(layer, state[b_ih]), _gates(layer, state[b_hh])
            out.append(np.stack([bi, bh]) if type(layer).__name__ == "GRU" else bi + bh)
    return out


def _recurrent_from_keras(layer, arrays) -> dict[str, np.ndarray]:
    state, arrays = {}, iter(arrays)
    for w_ih, w_hh, b_ih, b_hh in _groups(layer):
        state[w_ih] = _gates(layer, from_keras(next(arrays)))
        state[w_hh] = _gates(layer, from_keras(next(arrays)))
        if b_ih is not None:
            b = np.asarray(next(arrays))
            if type(layer).__name__ == "GRU":
                state[b_ih], state[b_hh] = _gates(layer, b[0]), _gates(layer, b[1])
            else:
                state[b_ih], state[b_hh] = b, np.zeros_like(b)
    return state


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
