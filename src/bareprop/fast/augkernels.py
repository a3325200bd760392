"""Augmentation's sampling, compiled (float32): the kernel behind fast/augment.py.

    affine_sample(img, cos, sin, shift, flip, field, out)
        out (B, S*S) from img (B, S, S) under data/augment.Augment.draw's transforms,
        pixel by pixel in Augment.sample's float32 operations (fast/augment.py says which).
"""
from __future__ import annotations

import numpy as np

from .cellkernels import _jit

f32 = np.float32
_kernel = _jit(nogil=True, error_model="numpy")


@_jit(inline="always", error_model="numpy")
def _frame(v, hi):
    """v clipped into [0, hi] (NaN -> 0): a coordinate in the padded image."""
    if not v >= 0:
        return f32(0)
    return v if v <= hi else hi


@_kernel
def affine_sample(img, cos, sin, shift, flip, field, out):
    """out (B, S*S) from img (B, S, S): see the module docstring; flip (B,) bool or
    empty (none mirrored), field (2, B, P) or empty (no field)."""
    nb, s, _ = img.shape
    c = f32((s - 1) / 2.0)
    hi = f32(s + 1)
    mirror, elastic = flip.shape[0] > 0, field.shape[0] > 0
    pad = np.zeros((s + 3, s + 3), np.float32)      # one image in its zero frame
    for b in range(nb):
        for r in range(s):
            for q in range(s):
                pad[r + 1, q + 1] = img[b, r, q]
        cb, sb, t0, t1 = cos[b], sin[b], shift[0, b], shift[1, b]
        neg = mirror and flip[b]
        for r in range(s):
            pr = (f32(r) - c) - t0
            for q in range(s):
                qc = f32(q) - c
                if neg:
                    qc = -qc
                pq = qc - t1
                sr = cb * pr + sb * pq + c
                sq = -sb * pr + cb * pq + c
                p = r * s + q
                if elastic:
                    sr += field[0, b, p]
                    sq += field[1, b, p]
                rr, qq = _frame(sr + f32(1), hi), _frame(sq + f32(1), hi)
                i, j = int(rr), int(qq)                 # floor: rr, qq >= 0
                fr, fq = rr - f32(i), qq - f32(j)
                v00, v01 = pad[i, j], pad[i, j + 1]
                v10, v11 = pad[i + 1, j], pad[i + 1, j + 1]
                top = v00 + (v01 - v00) * fq
                bottom = v10 + (v11 - v10) * fq
                out[b, p] = top + (bottom - top) * fr


def compile_kernels() -> dict:
    """The kernels by name (kernels.py's _warm compiles them at load)."""
    return {"affine_sample": affine_sample}
