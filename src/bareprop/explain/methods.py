"""The methods by the names the CLI, the report and the web app use, and what each one's
map looks like on the input's pixels.

``run(name, model, x, target, **options)`` returns the attribution in Captum's shape;
``picture(attr, image_shape)`` makes of it one (H, W) map per example for display: the
channels summed, a flat input's row laid out as its image, a Grad-CAM map upsampled.
"""
from __future__ import annotations

import numpy as np

from ..errors import ConfigError
from .gradcam import gradcam, spatial_layer, upsample
from .gradients import input_x_gradient, integrated_gradients, riemann, saliency
from .occlusion import _as_tuple, occlusion, starts

#: name -> whether its maps are signed (shown on a diverging colour map)
SIGNED = {"saliency": False, "input-x-gradient": True, "integrated-gradients": True,
          "gradcam": False, "occlusion": True}
METHODS = tuple(SIGNED)


def check(name: str, model, steps: int = 50, layer=None, window: int = 4,
          stride: int = 2) -> dict:
    """The options of method ``name`` checked against the model before any work (one-line
    ConfigError each); returns them as ``run`` takes them."""
    if name not in SIGNED:
        raise ConfigError(f"unknown method {name!r}; use one of {', '.join(METHODS)}")
    shape = getattr(model, "input_shape", None)
    if name == "integrated-gradients":
        riemann("riemann_trapezoid", steps)
        return {"steps": steps}
    if name == "gradcam":
        return {"layer": spatial_layer(model, layer)}
    if name == "occlusion":
        if shape is None:
            raise ConfigError("occlusion needs a model whose input shape is known")
        # k x k over the image's last two axes, one channel at a time: (1, k, k); a flat
        # input (an MLP's 784 pixels) gets the 1-D window of as many pixels, (k * k,)
        (k,), (j,) = _as_tuple(window, 1, "window"), _as_tuple(stride, 1, "stride")
        if len(shape) == 1:
            w, s = (k * k,), (j * j,)
        else:
            w = (1,) * (len(shape) - 2) + (k, k)
            s = (1,) * (len(shape) - 2) + (j, j)
        starts(shape, w, s)
        return {"window": w, "stride": s}
    return {}


def offered(model) -> list[str]:
    """The methods ``model`` can be explained by with their default options (Grad-CAM
    needs a layer with image-shaped maps)."""
    def ok(name):
        try:
            check(name, model)
        except ConfigError:
            return False
        return True
    return [m for m in METHODS if ok(m)]


def run(name: str, model, x: np.ndarray, target=None, **options) -> np.ndarray:
    """The attribution of method ``name`` (options from ``check``)."""
    if name == "saliency":
        return saliency(model, x, target)
    if name == "input-x-gradient":
        return input_x_gradient(model, x, target)
    if name == "integrated-gradients":
        return integrated_gradients(model, x, target, steps=options.get("steps", 50))
    if name == "gradcam":
        return gradcam(model, x, target, layer=options.get("layer"))
    if name == "occlusion":
        return occlusion(model, x, target, options["window"], options["stride"])
    raise ConfigError(f"unknown method {name!r}; use one of {', '.join(METHODS)}")


def picture(attr: np.ndarray, image_shape=(28, 28)) -> np.ndarray:
    """(N, ...) attributions -> (N, H, W) maps over the image: channels summed, flat rows
    laid out as the image, smaller maps (Grad-CAM's) upsampled bilinearly."""
    a = np.asarray(attr)
    h, w = image_shape
    if a.ndim == 4:                                   # (N, C, h, w)
        if a.shape[2:] != (h, w):
            a = upsample(a, (h, w))
        return a.sum(axis=1)
    if a.ndim == 3 and a.shape[1:] == (h, w):         # (N, H, W)
        return a
    flat = a.reshape(len(a), -1)
    if flat.shape[1] == h * w:
        return flat.reshape(len(a), h, w)
    raise ConfigError(f"an attribution of shape {a.shape[1:]} cannot be shown as a "
                      f"{h}x{w} image")
