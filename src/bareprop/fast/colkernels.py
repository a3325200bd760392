"""im2col and col2im on exact columns (stride 1, no garbage outputs), compiled (float32),
each on examples n0..n1-1 only (threads share a batch: convsplit.py):

    im2col_exact(xp, cols, n0, n1)
        cols[c, i, j, n, h*OW + w] = xp[n, c, h + i, w + j]; xp (N, C, Hp, Wp) and cols
        (C, kh, kw, N, OH*OW), C-ordered, OH = Hp - kh + 1, OW = Wp - kw + 1.
    col2im_exact(dcols, dxp, n0, n1)
        its adjoint, dxp[c, n, h + i, w + j] += dcols[c, i, j, n, h*OW + w], with the taps
        added in the order Conv2d.input_grad adds them (i, then j), so the sums are the
        same; dxp (C, N, Hp, Wp).

(The shifted rows of core/im2col.py are long NumPy copies but compute Wp - OW extra
outputs a row: 12-18% more GEMM work in the `cnn` preset's and the benchmark CNN's
second layers. Compiled, the short exact copies cost little.)

Why a version for one layer's sizes (for_sizes): a copy's inner loop runs OW times, 14
in the `cnn` preset's second layer. Not knowing OW, LLVM vectorises that loop for many
values a turn (32 here), and a 14-value row runs entirely in the scalar remainder; with
kh, kw, OH and OW compile-time constants it vectorises the row itself. One source
compiles both ways (_pair; sizes of 0 are read from the arrays). On that layer, inside a
training step on 2 threads, im2col took 4.7 -> 2.0 ms and col2im 4.8 -> 2.4 ms
(docs/benchmarks.md). A layer's pair compiles at its first call (~0.5 s; numba's disk
cache keys it by the sizes, so once per machine), and only for layers large enough to
repay it: every other layer runs the generic pair, as before.
"""
from __future__ import annotations

import threading
import warnings

import numpy as np

from .cellkernels import _jit

_kernel = _jit(nogil=True, error_model="numpy")

#: a layer with fewer column values than this a batch runs the generic pair
SIZED_VALUES = 1 << 20


def _pair(KH: int, KW: int, OH: int, OW: int):   # noqa: N803 - compile-time constants
    """(im2col_exact, col2im_exact) compiled for these sizes; 0: read from the arrays."""

    @_kernel
    def im2col(xp, cols, n0, n1):
        kh, kw = (KH if KH else cols.shape[1]), (KW if KW else cols.shape[2])
        oh, ow = (OH if OH else xp.shape[2] - kh + 1), (OW if OW else xp.shape[3] - kw + 1)
        for c in range(cols.shape[0]):
            for i in range(kh):
                for j in range(kw):
                    for n in range(n0, n1):
                        dst = cols[c, i, j, n]
                        for h in range(oh):
                            src = xp[n, c, h + i]
                            for w in range(ow):
                                dst[h * ow + w] = src[w + j]

    @_kernel
    def col2im(dcols, dxp, n0, n1):
        kh, kw = (KH if KH else dcols.shape[1]), (KW if KW else dcols.shape[2])
        oh, ow = (OH if OH else dxp.shape[2] - kh + 1), (OW if OW else dxp.shape[3] - kw + 1)
        for c in range(dcols.shape[0]):
            for n in range(n0, n1):
                plane = dxp[c, n]
                for i in range(kh):
                    for j in range(kw):
                        src = dcols[c, i, j, n]
                        for h in range(oh):
                            row = plane[h + i]
                            for w in range(ow):
                                row[w + j] += src[h * ow + w]
    return im2col, col2im


im2col_exact, col2im_exact = _pair(0, 0, 0, 0)

_sized: dict[tuple[int, int, int, int], tuple] = {}
_lock = threading.Lock()


def for_sizes(padded_shape, kernel_size, values: int):
    """(im2col, col2im) for a layer whose padded input is ``padded_shape`` (N, C, Hp, Wp)
    and kernel (kh, kw): the pair compiled for its sizes when the batch has at least
    SIZED_VALUES column values, else (or where that compile fails: a warning, once) the
    generic pair. The sizes come from the arrays' own shapes, so a pair never runs on
    arrays of other sizes."""
    if values < SIZED_VALUES:
        return im2col_exact, col2im_exact
    (kh, kw), (hp, wp) = kernel_size, padded_shape[2:]
    key = (kh, kw, hp - kh + 1, wp - kw + 1)
    pair = _sized.get(key)
    if pair is None:
        with _lock:                         # one thread compiles, any other waits for it
            pair = _sized.get(key) or _sized.setdefault(key, _compiled(*key))
    return pair


def _compiled(kh: int, kw: int, oh: int, ow: int):
    """_pair(sizes), compiled now (on one example), or the generic pair with a warning."""
    try:
        im2col, col2im = _pair(kh, kw, oh, ow)
        planes = np.zeros((1, 1, oh + kh - 1, ow + kw - 1), np.float32)
        cols = np.zeros((1, kh, kw, 1, oh * ow), np.float32)
        im2col(planes, cols, 0, 1)
        col2im(cols, planes, 0, 1)
        return im2col, col2im
    except Exception as exc:   # noqa: BLE001 - any failure: the generic pair serves
        warnings.warn(f"bareprop: numba could not compile im2col for {oh}x{ow} outputs "
                      f"({exc!r}); the generic kernels serve that layer", RuntimeWarning,
                      stacklevel=3)
        return im2col_exact, col2im_exact
