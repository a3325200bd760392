"""Augmentation's sampling in one compiled pass (float32): data/augment.Augment.sample's
inverse map and bilinear read, per output pixel (augkernels.py), instead of some twenty NumPy passes
over (B, P) arrays (coordinates, clips, floors, four gathers, three lerps: about 3 ms of
a `cnn` step's ~45 on the main thread, while the other core waits).

    out[b, p] = bilinear(img[b], src_r, src_q), for the pixel p = (r, q), centred
    (rc = r - c, qc = q - c, c = (S - 1) / 2; qc negated where flip[b]):
        pr, pq = rc - shift[0, b], qc - shift[1, b]
        src_r = (cos[b] pr + sin[b] pq) + c  (+ field[0, b, p])
        src_q = (-sin[b] pr + cos[b] pq) + c (+ field[1, b, p])
    read from the image in a zero frame (1 px before, 2 after), coordinates clipped into
    it, as _bilinear: the same float32 operations in the same order, so the same bits
    (tests/fast/test_augment.py). A NaN coordinate (none arises from draw()) reads the
    frame's corner, a zero, where NumPy would fail on the index.

The random draws stay Augment.draw's, so a seeded run augments the same on either path.
"""
from __future__ import annotations

import numpy as np

from . import kernels


class CompiledAugment:
    """An Augment whose sampling runs in affine_sample for float32 batches (its draws,
    and anything else, are the Augment's own)."""

    def __init__(self, augment):
        self.augment = augment

    def __call__(self, x: np.ndarray, rng) -> np.ndarray:
        k = kernels.get(x.dtype)
        if k is None:                                 # float64, or BAREPROP_ACCEL=numpy
            return self.augment(x, rng)
        b, s = x.shape[0], self.augment.side
        cos, sin, shift, flip, field = self.augment.draw(b, rng)
        out = np.empty((b, s * s), np.float32)
        k.affine_sample(np.ascontiguousarray(x.reshape(b, s, s)), cos, sin, shift,
                        np.zeros(0, bool) if flip is None else flip,
                        np.zeros((0, b, s * s), np.float32) if field is None else field, out)
        return out.reshape(x.shape)

    def __getattr__(self, name):             # side, max_shift, ... as the Augment's
        if name == "augment":                # (not set yet: a copy being made)
            raise AttributeError(name)
        return getattr(self.augment, name)


def compiled(augment, dtype):
    """``augment`` (an Augment or None) with its sampling compiled, for batches of
    ``dtype``, where the compiled kernels run; the Augment itself otherwise."""
    if augment is None or kernels.get(np.dtype(dtype)) is None:
        return augment
    return CompiledAugment(augment)
