"""Image augmentation for square grey images, vectorised over the batch and seeded.

Every transform is an inverse map: for each output pixel, where in the input to
sample from (bilinear, zero outside), so one gather serves shifts, rotations and
elastic distortions alike.
"""
from __future__ import annotations

import numpy as np

from ..errors import ConfigError


def _gaussian_matrix(n: int, sigma: float) -> np.ndarray:
    """G (n, n) with G @ f smoothing f by a Gaussian of ``sigma`` pixels (zero padding)."""
    i = np.arange(n)
    g = np.exp(-((i[:, None] - i[None, :]) ** 2) / (2 * sigma * sigma))
    return (g / g.sum(axis=1, keepdims=True)).astype(np.float32)


class Augment:
    """Random shift (+-max_shift px), rotation (+-max_rotate degrees; positive turns the
    image counter-clockwise as displayed, row 0 on top), optional left-right flip of a
    random half of the batch (for clothes, not digits) and optional
    elastic distortion (Simard et al. 2003: displacement fields U(-1, 1) smoothed by a
    Gaussian of ``elastic_sigma`` px and scaled by ``elastic_alpha``).

    ``augment(x, rng)`` takes x (B, side, side) (or (B, side*side)) float and returns a new
    array of x's shape.
    """

    def __init__(self, side: int = 28, max_shift: float = 2.0, max_rotate: float = 0.0,
                 elastic_alpha: float = 0.0, elastic_sigma: float = 4.0, hflip: bool = False):
        self.hflip = bool(hflip)
        if max_shift < 0 or max_rotate < 0 or elastic_alpha < 0:
            raise ConfigError("augmentation magnitudes must be >= 0")
        self.side, self.max_shift, self.max_rotate = side, float(max_shift), float(max_rotate)
        self.elastic_alpha, self.elastic_sigma = float(elastic_alpha), float(elastic_sigma)
        c = (side - 1) / 2.0
        r, q = np.mgrid[0:side, 0:side].astype(np.float32)
        self._r, self._q, self._c = (r - c).ravel(), (q - c).ravel(), c   # (P,) centred coords
        self._g = _gaussian_matrix(side, elastic_sigma) if elastic_alpha else None

    def __call__(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        b, s = x.shape[0], self.side
        out = self.sample(x.reshape(b, s, s), *self.draw(b, rng))             # (B, P)
        return out.reshape(x.shape).astype(x.dtype, copy=False)

    def draw(self, b: int, rng: np.random.Generator):
        """One batch's random transforms, drawn from ``rng`` in a fixed order (angles,
        shifts, mirrors, fields): cos, sin (B,), shift (2, B) (rows, columns), flip (B,)
        bool or None, field (2, B, P) (rows, columns) or None; all float32."""
        theta = np.deg2rad(rng.uniform(-self.max_rotate, self.max_rotate, b)).astype(np.float32)
        shift = rng.uniform(-self.max_shift, self.max_shift, (2, b)).astype(np.float32)
        flip = rng.random(b) < 0.5 if self.hflip else None
        field = None
        if self._g is not None:
            s = self.side
            field = rng.uniform(-1, 1, (2, b, s, s)).astype(np.float32)
            field = (self._g @ field @ self._g.T * self.elastic_alpha).reshape(2, b, -1)
        return np.cos(theta), np.sin(theta), shift, flip, field

    def sample(self, img: np.ndarray, cos, sin, shift, flip, field) -> np.ndarray:
        """img (B, S, S) sampled under draw()'s transforms: (B, P). For each output pixel
        p (centred coordinates r, q; q negated where flipped) the source is
        R(-theta) (p - shift) + centre (+ field), read bilinearly (zero outside).
        fast/augment.py computes the same, in the same float32 operations, in one pass."""
        cos, sin = cos[:, None], sin[:, None]                               # (B, 1)
        # inverse map: source = R(-theta) (p - t) + centre
        q = self._q[None, :]
        if flip is not None:
            q = np.where(flip[:, None], -q, q)                                # (B, P) mirrored
        pr, pq = self._r[None, :] - shift[0][:, None], q - shift[1][:, None]
        src_r = cos * pr + sin * pq + self._c                                 # (B, P)
        src_q = -sin * pr + cos * pq + self._c
        if field is not None:
            src_r += field[0]
            src_q += field[1]
        return _bilinear(img, src_r, src_q)


def _bilinear(img: np.ndarray, r: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Sample img (B, S, S) at float coords r, q (B, P), zero outside; returns (B, P).

    The image sits in a zero frame (1 px before, 2 px after) and coordinates are
    clipped into the frame, so a sample off the image reads only zeros.
    """
    b, s, _ = img.shape
    w = s + 3
    padded = np.zeros((b, w, w), img.dtype)
    padded[:, 1:s + 1, 1:s + 1] = img
    flat = padded.reshape(b, -1)
    r = np.clip(r + 1, 0, s + 1)
    q = np.clip(q + 1, 0, s + 1)
    r0, q0 = np.floor(r), np.floor(q)
    fr, fq = (r - r0).astype(img.dtype), (q - q0).astype(img.dtype)
    base = r0.astype(np.int64) * w + q0.astype(np.int64)                   # (B, P)
    v00 = np.take_along_axis(flat, base, 1)
    v01 = np.take_along_axis(flat, base + 1, 1)
    v10 = np.take_along_axis(flat, base + w, 1)
    v11 = np.take_along_axis(flat, base + w + 1, 1)
    top = v00 + (v01 - v00) * fq
    bottom = v10 + (v11 - v10) * fq
    return top + (bottom - top) * fr


PRESETS = {
    "none": None,
    "shift": dict(max_shift=2.0),
    "affine": dict(max_shift=2.0, max_rotate=10.0),
    "elastic": dict(max_shift=2.0, max_rotate=10.0, elastic_alpha=8.0, elastic_sigma=4.0),
    "flip-shift": dict(max_shift=2.0, hflip=True),
    "flip": dict(max_shift=0.0, hflip=True),
}
# "auto": what suits the dataset: digits must not be mirrored, clothes may be.
AUTO = {"mnist": "affine", "fashion-mnist": "flip"}


def make_augment(name: str, side: int = 28, dataset: str | None = None) -> Augment | None:
    if name == "auto":
        name = AUTO.get(dataset, "none")
    if name not in PRESETS:
        from ..errors import unknown_name

        raise unknown_name("augmentation", name, PRESETS)
    kw = PRESETS[name]
    return None if kw is None else Augment(side, **kw)


