"""Grad-CAM (Selvaraju et al. 2017) as Captum's ``LayerGradCam`` computes it, and the
bilinear upsampling that lays its map over the input (``LayerAttribution.interpolate``).

For the output A (N, C, h, w) of a layer and the target logit y_t:

    alpha_c = mean_{i,j} d y_t / d A[c, i, j]          (one weight per channel)
    map     = ReLU( sum_c alpha_c A[c] )                (N, 1, h, w)

The gradient is the layer's output's, not the input's: the last convolutional maps
still say *where* (their h x w grid) and already say *what* (their channels mean parts
of digits), so weighting them by how much the class wants each gives a coarse picture
of where the evidence is.
"""
from __future__ import annotations

import numpy as np

from ..errors import ConfigError
from .probe import as_input, backward, chunks, layers_of, one_hot, untouched


def spatial_layer(model, layer=None) -> int:
    """The index among the model's top-level layers of ``layer`` (a layer of the model,
    or its index; None: the last one whose output is (N, C, h, w)). ConfigError when it
    is not one of them or its output has no spatial axes."""
    from ..core import walk

    layers = layers_of(model)
    shapes = [s.out_shape for s in walk(model, nested=False)] if \
        getattr(model, "input_shape", None) is not None else None
    if shapes is None:
        raise ConfigError("Grad-CAM needs a model whose input shape is known (build it, "
                          "or run it on one batch first)")
    if layer is None:
        found = [i for i, s in enumerate(shapes) if len(s) == 3]
        if not found:
            raise ConfigError("this model has no layer with an (N, C, h, w) output, so no "
                              "map for Grad-CAM; explain it with saliency or "
                              "integrated gradients")
        return found[-1]
    if isinstance(layer, (int, np.integer)):
        if not -len(layers) <= layer < len(layers):
            raise ConfigError(f"layer {layer} is not one of the model's {len(layers)} "
                              f"layers (0..{len(layers) - 1})")
        index = int(layer) % len(layers)
    else:
        index = next((i for i, m in enumerate(layers) if m is layer), None)
        if index is None:
            raise ConfigError(f"{type(layer).__name__} is not one of the model's top-level "
                              "layers; pass one of model.layers, or its index")
    if len(shapes[index]) != 3:
        raise ConfigError(f"layer {index} ({layers[index].short_name()}) gives "
                          f"{shapes[index]} per example, not (C, h, w): Grad-CAM needs a "
                          "convolutional layer's maps")
    return index


def gradcam(model, x, target=None, layer=None, relu: bool = True) -> np.ndarray:
    """The Grad-CAM map (N, 1, h, w) at ``layer``'s resolution: Captum's
    ``LayerGradCam(model, layer).attribute(x, target, relu_attributions=relu)``."""
    x = as_input(model, x)
    k = spatial_layer(model, layer)
    parts = []
    with untouched(model):
        for _, logits, t, acts in chunks(model, x, target, keep=k):
            d = one_hot(t, logits)
            grads = backward(model, d, down_to=k + 1) if k + 1 < len(layers_of(model)) else d
            alpha = grads.mean(axis=(2, 3), keepdims=True)               # (n, C, 1, 1)
            parts.append((alpha * acts).sum(axis=1, keepdims=True))      # (n, 1, h, w)
    cam = np.concatenate(parts)
    return np.maximum(cam, 0) if relu else cam


def upsample(attr: np.ndarray, size) -> np.ndarray:
    """(N, C, h, w) -> (N, C, *size), bilinear with align_corners=False: PyTorch's
    ``F.interpolate(attr, size, mode="bilinear")``, what Captum's
    ``LayerAttribution.interpolate`` does. Output pixel p samples the input at
    (p + 0.5) h / H - 0.5 (clamped at 0), between its two neighbours."""
    a = np.asarray(attr)
    if a.ndim != 4:
        raise ConfigError(f"upsample takes (N, C, h, w) maps, got shape {a.shape}")
    out_h, out_w = (int(s) for s in size)
    if out_h < 1 or out_w < 1:
        raise ConfigError(f"the size to upsample to must be positive, got {tuple(size)}")

    def axis(n_in, n_out):
        scale = n_in / n_out
        src = np.maximum((np.arange(n_out) + 0.5) * scale - 0.5, 0)
        i0 = np.floor(src).astype(np.intp)
        i0 = np.minimum(i0, n_in - 1)
        i1 = np.minimum(i0 + 1, n_in - 1)
        return i0, i1, (src - i0).astype(a.dtype)
    r0, r1, wr = axis(a.shape[2], out_h)
    c0, c1, wc = axis(a.shape[3], out_w)
    rows = a[:, :, r0] * (1 - wr)[:, None] + a[:, :, r1] * wr[:, None]     # (N, C, H, w)
    return rows[..., c0] * (1 - wc) + rows[..., c1] * wc


interpolate = upsample            # Captum's name for it
