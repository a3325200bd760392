"""The two im2col layouts of Conv2d (conv.py), and the view of its GEMM's output.

* stride 1 (the common case, "same" included): the *shifted-row* trick. Flatten each
  padded image plane to a row of Hp*Wp pixels; the input pixel under kernel tap (i, j)
  for output (oh, w) is then at flat index ``oh*Wp + w + (i*Wp + j)``, so the column
  block of tap (i, j) is one contiguous slice of that row, shifted by ``i*Wp + j``.
  Computing outputs for all Wp columns of each output row (the last kw-1 are garbage
  and dropped) turns im2col and col2im into kh*kw long contiguous copies/adds instead
  of short strided ones, about twice as fast, for Wp/OW more GEMM work
  (docs/benchmarks.md, "Figures behind the code's choices").
* stride > 1: the plain strided im2col over (C, kh, kw, N, OH, OW).

Both lay the columns out channel-major, (C*kh*kw, N*positions) (or per example, when
Conv2d._batch_major says so), so the forward, dW and dcols are each a single large GEMM
(one call, BLAS-threaded), and the row order (c, i, j) is torch's weight layout:
``W.reshape(O, C*kh*kw)`` needs no transpose.
"""
from __future__ import annotations

import numpy as np


def shift_copy(cols, planes, wp: int, p: int, add: bool) -> None:
    """The stride-1 im2col of shifted rows and its adjoint, on (N, C, kh, kw, q) columns
    and (N, C, Hp*Wp) flat planes (any memory layout): tap (i, j)'s columns are the planes
    from offset i*Wp + j on, p values long. ``add=False``: columns <- planes (im2col);
    ``add=True``: planes += columns (col2im, where overlapping taps accumulate)."""
    kh, kw = cols.shape[2:4]
    for i in range(kh):
        for j in range(kw):
            off = i * wp + j
            if add:
                planes[:, :, off:off + p] += cols[:, :, i, j, :p]
            else:
                cols[:, :, i, j, :p] = planes[:, :, off:off + p]


def outputs_view(full, batch: bool, ow: int):
    """The (N, O, OH, OW) view of a conv buffer laid out (N, O, OH, W) when ``batch``,
    else (O, N, OH, W): its first OW columns, batch axis first."""
    v = full[..., :ow]
    return v if batch else v.transpose(1, 0, 2, 3)


class Shifted:
    """The stride-1 GEMM of a Conv2d on one padded batch ``xp`` (N, C, Hp, Wp), by shifted
    rows: its operands, its buffers (from ``buffer(name, shape)``, kept by the layer) and
    the two steps that fill them, each on any contiguous range ``s`` of the examples, so
    that threads may share a batch (fast/convsplit.py):

        columns(s):   cols[.., s, ..] <- the shifted rows of planes[s]        (im2col)
        product(s):   full[s] <- W cols[s]   (batch-major: one GEMM per example)
        gemm_rows():  full <- W cols, the whole channel-major product in one GEMM

    ``batch`` picks the layout (Conv2d._batch_major): cols (N, C, kh, kw, q) and full
    (N, O, q), or cols (C, kh, kw, N, q) and full (O, N*q); q = OH*Wp positions an image,
    of which the last kw-1 of each row are garbage (never read as outputs)."""

    def __init__(self, xp, wm, kernel, buffer, batch: bool):
        n, c, hp, wp = xp.shape
        kh, kw = kernel
        self.n, self.wp, self.oh, self.ow = n, wp, hp - kh + 1, wp - kw + 1
        self.q = self.oh * wp                            # positions computed per image
        self.p = (self.oh - 1) * wp + self.ow            # ... of which in bounds to read
        self.wm, self.batch, self.k = wm, batch, c * kh * kw                 # (O, CKK)
        self.planes = xp.reshape(n, c, hp * wp)                             # (N, C, Hp*Wp)
        shape = (n, c, kh, kw, self.q) if batch else (c, kh, kw, n, self.q)
        self.cols = buffer("cols", shape)                                   # tail [p:] stays 0
        self.view = self.cols if batch else self.cols.transpose(3, 0, 1, 2, 4)
        o = wm.shape[0]
        self.full = buffer("full", (n, o, self.q) if batch else (o, n * self.q))

    def columns(self, s: slice) -> None:
        shift_copy(self.view[s], self.planes[s], self.wp, self.p, add=False)

    def product(self, s: slice) -> None:
        """Batch-major: full[s] <- W cols[s], a GEMM per example (numpy's stacked matmul)."""
        cols = self.cols[s]
        np.matmul(self.wm, cols.reshape(cols.shape[0], self.k, self.q), out=self.full[s])

    def gemm_rows(self) -> None:
        """Channel-major: full (O, N*q) <- W (O, CKK) cols (CKK, N*q), one GEMM."""
        np.matmul(self.wm, self.cols.reshape(self.k, -1), out=self.full)

    def output(self):
        """full as (N, O, OH, Wp) (batch-major) or (O, N, OH, Wp)."""
        o = self.wm.shape[0]
        return self.full.reshape((self.n, o, self.oh, self.wp) if self.batch
                                 else (o, self.n, self.oh, self.wp))
