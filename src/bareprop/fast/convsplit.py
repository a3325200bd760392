"""One batch of a convolution block shared by threads, every pass of it: the block's
im2col, its three GEMMs, its epilogues and col2im each split into contiguous ranges of
examples, one range per thread, with BLAS held to one thread while they run.

Why not leave the GEMMs to BLAS's threads and the rest to one core, as before: between
the block's GEMMs come memory-bound passes over its largest arrays (im2col, col2im, the
epilogues), about half of a `cnn` step, and NumPy or a plain compiled loop runs them on
one core while OpenBLAS's second thread spins, waiting for the next GEMM. Splitting them
with BLAS left at two threads did not pay (core/threads.py: the two kinds of thread take
the same cores). Here there is one kind: for a whole training step (hold()) BLAS is held
at one thread, and in each block ``parts`` threads (the main one included) do every
pass for their own examples, so both cores work through the whole block; the step's
other GEMMs (a convnet's small Linear head) run on one thread meanwhile. ``parts`` is
the number of threads BLAS itself was given (OPENBLAS_NUM_THREADS, the cores, or what a
sweep's trial or an MPI rank was handed), so a step never uses more cores than before.

The per-range arithmetic is the whole batch's, within float32 rounding: a GEMM's output
column or row is the same dot product whichever block of them a call computes, but BLAS
rounds the edge tiles of a block its own way (seen: 4% of one small case's outputs
differed in the last bit); dW, a sum over the batch, and batch norm's sums are added
from per-range partial sums (dW in float32, the sums in float64).
Every element-wise result is the unsplit kernel's, NaN and inf included. The threads
compute under the caller's NumPy error settings (np.errstate is per thread).
tests/fast/test_conv.py runs every block case with the batch split three ways.
"""
from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import numpy as np

from ..core.im2col import shift_copy
from . import cblas

#: at most this many threads share a block, and a block splits only when it has at
#: least MIN_VALUES outputs (below that a thread hand-off, ~20 us, costs more than it saves)
MAX_PARTS = 8
MIN_VALUES = 1 << 16

_pool: ThreadPoolExecutor | None = None


def _forget_pool() -> None:
    """A forked child inherits the pool object but not its threads (as core/threads.py)."""
    global _pool
    _pool = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool)


class Team:
    """``parts`` threads for one block's passes (1: everything on the calling thread, with
    BLAS's own threads, exactly as the unsplit block)."""

    def __init__(self, parts: int, blas=None):
        self.parts, self.blas = parts, blas

    def ranges(self, size: int) -> list[tuple[int, int]]:
        b = [size * i // self.parts for i in range(self.parts + 1)]
        return [(lo, hi) for lo, hi in zip(b, b[1:]) if hi > lo]

    def run(self, fn, size: int) -> None:
        """fn(i, lo, hi) for the i-th of ``parts`` contiguous ranges of range(size), each on
        its own thread (the calling thread takes the first; BLAS is at one thread, held
        there by hold()); returns when all are done and raises the first error."""
        ranges = self.ranges(size)
        if len(ranges) < 2:
            for i, (lo, hi) in enumerate(ranges):
                fn(i, lo, hi)
            return
        global _pool
        if _pool is None:
            _pool = ThreadPoolExecutor(MAX_PARTS - 1, thread_name_prefix="bareprop-conv")
        errs = np.geterr()

        def under_errs(i, lo, hi):
            with np.errstate(**errs):
                fn(i, lo, hi)
        futures = [_pool.submit(under_errs, i, lo, hi)
                   for i, (lo, hi) in enumerate(ranges) if i > 0]
        try:
            fn(0, *ranges[0])
        finally:
            errors = [f.exception() for f in futures]    # waits for every range
        for e in errors:
            if e is not None:
                raise e


_held = threading.local()          # .threads: BLAS's count while hold() keeps it at one


@contextmanager
def hold(dtype):
    """BLAS at one thread for the duration (a training step), its threads handed to the
    blocks' Teams instead. Held for the whole step, not block by block: OpenBLAS's idle
    threads spin for a while after each call, so setting the count back to two between
    blocks left a spinning BLAS thread on the core a Team's thread needed (a `cnn` step:
    101 ms toggled per block, 63 ms held for the step, 72 ms unsplit;
    docs/benchmarks.md)."""
    blas = cblas.load(dtype)
    threads = blas.threads() if blas is not None else None
    if not threads or threads < 2 or getattr(_held, "threads", 0):
        yield
        return
    blas.set_threads(1)
    _held.threads = threads
    try:
        yield
    finally:
        _held.threads = 0
        blas.set_threads(threads)


def team_for(n: int, values: int, dtype) -> Team:
    """The Team for a block of ``n`` examples and ``values`` outputs: inside hold(), as
    many threads as BLAS had (at most MAX_PARTS and n); otherwise, or for a small block,
    one (the block on the calling thread, BLAS with its own threads)."""
    threads, blas = getattr(_held, "threads", 0), cblas.load(dtype)
    if threads < 2 or values < MIN_VALUES:
        return Team(1, blas)
    return Team(max(1, min(threads, MAX_PARTS, n)), blas)


# -- exact columns: channel-major, stride 1, no garbage outputs -------------------------
def exact(conv, team: Team) -> bool:
    """Whether the block's conv runs on exact columns (im2col_exact): stride 1, the
    channel-major layout (a long reduction; the per-example layout of a first layer
    keeps its shifted rows) and NumPy's BLAS at hand for the GEMMs on column blocks."""
    k = conv.in_channels * conv.kernel_size[0] * conv.kernel_size[1]
    return conv.stride == (1, 1) and not conv._batch_major(k) and team.blas is not None


def exact_forward(team: Team, conv, x, k, then=None):
    """(full (O, N, OH, OW), False, OW, the cache) of Conv2d._gemm, from exact columns
    (C, kh, kw, N, OH*OW), each thread on its examples; ``then(i, lo, hi, result)``, if
    given, runs on each thread after its GEMM, on its own examples (batch norm's first
    sums: one hand-off fewer, read while the outputs are warm)."""
    xp = conv._padded(x)
    n, c, hp, wp = xp.shape
    (kh, kw), o = conv.kernel_size, conv.out_channels
    oh, ow = hp - kh + 1, wp - kw + 1
    q = oh * ow
    cols = conv._buffer("cols", (c, kh, kw, n, q), x.dtype)
    full = conv._buffer("full", (o, n * q), x.dtype)
    c2, wm = cols.reshape(c * kh * kw, n * q), conv.weight.data.reshape(o, -1)
    result = full.reshape(o, n, oh, ow), False, ow, (x.shape, cols, hp, wp, oh, ow, False)
    im2col = k.exact_copies(xp.shape, (kh, kw), cols.size)[0]     # compiled for its sizes

    def part(i, lo, hi):
        im2col(xp, cols, lo, hi)
        team.blas.gemm(1.0, wm, c2[:, lo * q:hi * q], 0.0, full[:, lo * q:hi * q])
        if then is not None:
            then(i, lo, hi, result)
    team.run(part, n)
    return result


def exact_input_grad(team: Team, conv, d, k):
    """Conv2d.input_grad after exact_forward: dcols = W^T d, then col2im_exact."""
    shape, cols, hp, wp, oh, ow, _ = conv._cache
    n, c, h, w = shape
    kh, kw = conv.kernel_size
    q, kk = oh * ow, c * kh * kw
    wmt = conv.weight.data.reshape(-1, kk).T                                # (CKK, O)
    dcols = conv._buffer("dcols", (kk, n * q), d.dtype)                     # (CKK, N*q)
    dxp = np.zeros((c, n, hp, wp), d.dtype)                                 # (C, N, Hp, Wp)
    col2im = k.exact_copies((n, c, hp, wp), (kh, kw), dcols.size)[1]

    def part(_, lo, hi):
        team.blas.gemm(1.0, wmt, d[:, lo * q:hi * q], 0.0, dcols[:, lo * q:hi * q])
        col2im(dcols.reshape(c, kh, kw, n, q), dxp, lo, hi)
    team.run(part, n)
    pt, _, pl, _ = conv.pads()
    return dxp.transpose(1, 0, 2, 3)[:, :, pt:pt + h, pl:pl + w]         # (N, C, H, W) view


# -- the conv's passes by range (stride 1, core/im2col.Shifted's layouts) --------------
def forward_gemm(team: Team, g, then=None) -> None:
    """im2col and the forward GEMM of Shifted ``g``: per example in the batch-major
    layout, each thread on its examples, then ``then(i, lo, hi)`` on them (as
    exact_forward's); the channel-major layout in one GEMM, then ``then`` over the batch
    (a split block runs that layout on exact columns instead: exact())."""
    if not g.batch:
        g.columns(slice(0, g.n))
        g.gemm_rows()
        if then is not None:
            then(0, 0, g.n)
        return

    def part(i, lo, hi):
        g.columns(slice(lo, hi))
        g.product(slice(lo, hi))
        if then is not None:
            then(i, lo, hi)
    team.run(part, g.n)


def weight_grad(team: Team, conv, d, first=None) -> None:
    """Conv2d.accumulate_grads for the delta ``d`` (N, O, q) or (O, N*q), split by
    examples: each thread's dW over its examples, added after; ``first(lo, hi)``, if
    given, runs on each thread before, on its examples' deltas (batch norm's dx, which
    completes them: one hand-off fewer). (Split by output rows
    instead, each thread packed the whole column matrix for its GEMM: the `cnn` preset's
    second block took 10.6-11.9 ms that way against 8.6-9.3 by examples.)"""
    cols, n = conv._cache[1], conv._cache[0][0]
    if d.ndim == 3:
        _, o, q = d.shape
        per = conv._buffer("dw", (n, o, cols[0].size // q), d.dtype)       # (N, O, CKK)

        def partial(_, lo, hi):
            np.matmul(d[lo:hi], cols[lo:hi].reshape(hi - lo, -1, q).transpose(0, 2, 1),
                      out=per[lo:hi])
        axes = (0, 2)
    else:      # each thread its examples' columns, their partial dW added after
        c2 = cols.reshape(-1, d.shape[1])                                   # (CKK, N*q)
        q = d.shape[1] // n
        per = np.empty((team.parts, d.shape[0], c2.shape[0]), d.dtype)     # (T, O, CKK)

        def partial(i, lo, hi):
            team.blas.gemm(1.0, d[:, lo * q:hi * q], c2[:, lo * q:hi * q].T, 0.0, per[i])
        axes = 1

    def part(i, lo, hi):
        if first is not None:
            first(lo, hi)
        partial(i, lo, hi)
    team.run(part, n)
    dw = per.sum(axis=0)
    db = d.sum(axis=axes) if conv.bias is not None else None
    conv.weight.accumulate(dw.reshape(conv.weight.shape))
    if db is not None:
        conv.bias.accumulate(db)                                # (O,); garbage columns are 0


def input_grad(team: Team, conv, d):
    """Conv2d.input_grad for the delta ``d`` (N, O, q) of a batch-major stride-1 layer
    (a split channel-major one runs on exact columns: exact_input_grad), each thread on
    its examples: dcols = W^T d, then col2im into the zeroed padded input gradient."""
    shape, cols, hp, wp, oh, ow, _ = conv._cache
    n, c, h, w = shape
    kh, kw = conv.kernel_size
    k, p = c * kh * kw, (oh - 1) * wp + ow
    wmt = conv.weight.data.reshape(-1, k).T                                 # (CKK, O)
    pt, _, pl, _ = conv.pads()
    dcols = conv._buffer("dcols", (n, k, d.shape[2]), d.dtype)              # (N, CKK, q)
    dc = dcols.reshape(n, c, kh, kw, -1)
    dxp = np.zeros((n, c, hp * wp), d.dtype)

    def part(_, lo, hi):
        np.matmul(wmt, d[lo:hi], out=dcols[lo:hi])
        shift_copy(dc[lo:hi], dxp[lo:hi], wp, p, add=True)
    team.run(part, n)
    return dxp.reshape(n, c, hp, wp)[:, :, pt:pt + h, pl:pl + w]
