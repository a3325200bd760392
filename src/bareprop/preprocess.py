"""Turn a photo or scan of one handwritten digit into an MNIST-style 28x28 image.

MNIST's own recipe (LeCun et al.): grey levels, white ink on black, the digit's
bounding box scaled (keeping its aspect ratio) to fit a 20x20 box with
anti-aliasing, then placed in a 28x28 field so that its centre of mass is at the
centre. Needs Pillow (``pip install 'bareprop[images]'``) to read PNG/JPEG files.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import ConfigError, DataError


def _pil():
    try:
        from PIL import Image
    except ImportError:
        raise ConfigError("reading images needs Pillow: pip install 'bareprop[images]'") from None
    return Image


def load_grey(path) -> np.ndarray:
    """The image at ``path`` as float grey levels 0..255, shape (H, W)."""
    Image = _pil()
    path = Path(path)
    try:
        with Image.open(path) as im:
            im.load()
            if im.mode in ("RGBA", "LA") or "transparency" in im.info:
                bg = Image.new("RGBA", im.size, (255, 255, 255, 255))
                im = Image.alpha_composite(bg, im.convert("RGBA"))  # transparent -> paper
            grey = np.asarray(im.convert("L"), dtype=np.float64)
    except FileNotFoundError:
        raise DataError(f"{path}: no such image file") from None
    except OSError as exc:
        raise DataError(f"{path}: not a readable PNG/JPEG image ({exc})") from None
    return grey


def to_mnist(grey: np.ndarray) -> np.ndarray:
    """(H, W) grey 0..255 -> (28, 28) uint8, white digit on black, MNIST-centred."""
    Image = _pil()
    g = grey.astype(np.float64)
    border = np.concatenate([g[0], g[-1], g[:, 0], g[:, -1]])
    if np.median(border) > 127:                # dark ink on light paper: invert
        g = 255.0 - g
    g -= np.median(border) if np.median(border) <= 127 else 255.0 - np.median(border)
    g = np.clip(g, 0, None)
    if g.max() <= 0:
        raise DataError("the image is blank: no ink found")
    g *= 255.0 / g.max()
    ink = g > 0.2 * 255
    rows, cols = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    crop = g[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    h, w = crop.shape
    scale = 20.0 / max(h, w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    small = Image.fromarray(crop.astype(np.uint8)).resize((nw, nh), Image.LANCZOS)
    small = np.asarray(small, dtype=np.float64)
    total = small.sum()
    r, c = np.indices(small.shape)
    cy, cx = (r * small).sum() / total, (c * small).sum() / total
    top, left = int(round(13.5 - cy)), int(round(13.5 - cx))
    top, left = min(max(top, 0), 28 - nh), min(max(left, 0), 28 - nw)
    out = np.zeros((28, 28))
    out[top:top + nh, left:left + nw] = small
    return np.clip(out, 0, 255).astype(np.uint8)
