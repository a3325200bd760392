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
