"""Turn a photo or scan of one handwritten digit into an MNIST-style 28x28 image.

MNIST's own recipe (LeCun et al.): grey levels, white ink on black, the digit's
bounding box scaled (keeping its aspect ratio) to fit a 20x20 box with
anti-aliasing, then placed in a 28x28 field so that its centre of mass is at the
centre. Needs Pillow (``pip install 'bareprop[images]'``) to read PNG/JPEG files.

Only PNG and JPEG are decoded: Pillow is told so (``formats=``), so a GIF, TIFF, WebP,
ICO, BMP or EPS (which Pillow would hand to Ghostscript) is refused from its first bytes.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from .errors import ConfigError, DataError


def _pil():
    try:
        from PIL import Image
    except ImportError:
        raise ConfigError("reading images needs Pillow: pip install 'bareprop[images]'") from None
    return Image


# A 50-megapixel photo (the largest phone cameras) decodes to ~400 MB of float64 grey;
# anything larger is refused from its header, before a byte of pixels is decoded.
MAX_PIXELS = 50_000_000
#: the only formats Pillow may decode (its names): what the docs promise, nothing else
FORMATS = ("PNG", "JPEG")
# What a refused file most likely is, from its first bytes (for the error line only).
_MAGIC = ((b"GIF8", "GIF"), (b"BM", "BMP"), (b"II*\0", "TIFF"), (b"MM\0*", "TIFF"),
          (b"\0\0\1\0", "ICO"), (b"%!PS", "EPS"), (b"\xc5\xd0\xd3\xc6", "EPS"))

# Full scale of the modes that hold more than 8 bits per pixel: mapped linearly to 0..255
# (convert("L") would clip a 16-bit scan to 0/255).
_WIDE_MODES = {"I;16": 65535.0, "I;16L": 65535.0, "I;16B": 65535.0, "I;16N": 65535.0}
_ORIENTATION = 0x0112       # the EXIF tag of a photo's orientation


def _wide_to_grey(a: np.ndarray, mode: str) -> np.ndarray:
    """I;16*, I (32-bit int) or F (float) pixels -> float grey 0..255."""
    a = a.astype(np.float64)
    if mode in _WIDE_MODES:
        full = _WIDE_MODES[mode]
    else:
        # I and F carry no bit depth: 16-bit PNGs open as I on older Pillows, and float
        # TIFFs are usually 0..1; pick the smallest usual range that holds the data
        top = float(np.nanmax(a)) if a.size else 0.0
        full = next((f for f in (1.0, 255.0, 65535.0) if top <= f), top)
        if float(np.nanmin(a)) < 0:  # signed data: shift to start at zero
            a = a - np.nanmin(a)
            full = max(float(np.nanmax(a)), 1e-12)
    return np.clip(np.nan_to_num(a) * (255.0 / full), 0, 255)


def _kind(source) -> str:
    """What the unreadable ``source`` seems to be ("a WebP image"...), from its first bytes."""
    try:
        if hasattr(source, "read"):
            source.seek(0)
            head = source.read(16)
        else:
            with open(source, "rb") as f:
                head = f.read(16)
    except (OSError, ValueError):
        return "not a PNG or JPEG image"
    name = "WebP" if head[:4] == b"RIFF" and head[8:12] == b"WEBP" else \
        next((n for magic, n in _MAGIC if head.startswith(magic)), None)
    if name is None:
        return "not a PNG or JPEG image"
    return f"{'an' if name[0] in 'AEIO' else 'a'} {name} image, not PNG or JPEG"


def load_grey(path, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """The image at ``path`` as float grey levels 0..255, shape (H, W), upright.

    PNG or JPEG only (FORMATS; anything else is refused before Pillow decodes it), in
    any Pillow mode: 16-bit, 32-bit and float pixels are scaled (not clipped) to 0..255,
    transparency becomes white paper, the EXIF orientation of a phone photo is applied.
    Images over ``max_pixels`` (MAX_PIXELS for files; the web app passes its own, far
    lower bound) are refused from their header, before decoding. ``path`` may also be an
    open binary file (an upload held in memory); errors then name its ``name`` attribute.
    """
    Image = _pil()
    from PIL import ImageOps

    source = path if hasattr(path, "read") else Path(path)
    path = getattr(path, "name", "the upload") if hasattr(path, "read") else source
    try:
        with warnings.catch_warnings():
            # Pillow warns from 89 MP up; our own bound below is lower and says more
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(source, formats=FORMATS)
        with im:
            w, h = im.size
            if w * h > max_pixels:
                raise DataError(f"{path}: {w}x{h} is {w * h:,} pixels, more than the "
                                f"{max_pixels:,} allowed; scale the image down first")
            im.load()
            if im.getexif().get(_ORIENTATION, 1) != 1:     # a copy only when it turns
                im = ImageOps.exif_transpose(im)
            if im.mode in _WIDE_MODES or im.mode in ("I", "F"):
                return _wide_to_grey(np.asarray(im), im.mode)
            if _see_through(im):
                bg = Image.new("RGBA", im.size, (255, 255, 255, 255))
                im = Image.alpha_composite(bg, im.convert("RGBA"))  # transparent -> paper
            grey = np.asarray(im.convert("L"), dtype=np.float64)
    except FileNotFoundError:
        raise DataError(f"{path}: no such image file") from None
    except Image.DecompressionBombError:
        # Pillow's own guard (not an OSError) fires in open() for the most extreme sizes
        raise DataError(f"{path}: the image declares more than {max_pixels:,} pixels; "
                        "scale it down first") from None
    except Image.UnidentifiedImageError:
        raise DataError(f"{path}: {_kind(source)}; save or export it as PNG or JPEG "
                        "first") from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise DataError(f"{path}: not a readable PNG/JPEG image ({exc})") from None
    return grey


def _see_through(im) -> bool:
    """Whether some pixel of ``im`` is not opaque (then it is laid on white paper). A
    canvas drawn on a white fill is opaque throughout: no composite, no copy."""
    if im.mode in ("RGBA", "LA"):
        return im.getchannel("A").getextrema()[0] < 255
    return im.mode in ("PA", "RGBa", "La") or "transparency" in im.info


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


def read_digits(paths) -> np.ndarray:
    """PNG/JPEG files as (B, 28, 28) uint8 MNIST-style digits (``load_grey``, then
    ``to_mnist``): what ``predict`` and ``explain`` read."""
    return np.stack([to_mnist(load_grey(p)) for p in paths])
