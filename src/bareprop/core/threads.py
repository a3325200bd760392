"""Batch-parallel element-wise work: split the batch axis over a few threads (opt-in).

NumPy runs one ufunc or copy on one core, BLAS on all of them. The strided copies and
maxima of convolution and pooling (im2col, col2im, the 2x2 max) are compute-bound
enough that two threads on two halves of the batch run them about twice as fast *in
isolation* (NumPy releases the GIL inside those loops). Inside a training step it did
not pay on the 2-core machines measured: OpenBLAS's threads still spin after each GEMM
and take the second core, and with other processes busy the two kinds of threads
thrash (figures: docs/benchmarks.md, "Figures behind the code's choices"). So the
default is one thread; set ``BAREPROP_NUM_THREADS`` to try more on a machine with cores
to spare. (The compiled conv blocks do pay for threads, by another route: a convnet's
step holds BLAS at one thread and splits each block's whole batch, GEMMs included, over
the threads BLAS had: fast/convsplit.py.)

Each thread computes the same element-wise function on its own examples, so results
are bit-identical to one thread (tested).
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

# below this many elements per call a thread hand-off (~20 us) costs more than it saves
MIN_ELEMENTS = 1 << 18

_pool: ThreadPoolExecutor | None = None
_workers: int | None = None


def _forget_pool() -> None:
    """A forked child (MPI launchers, the web app's jobs) inherits the pool object but
    not its threads: start a fresh one there."""
    global _pool
    _pool = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool)


def num_threads() -> int:
    """Threads for batch-parallel work: BAREPROP_NUM_THREADS (1..8), default 1."""
    global _workers
    if _workers is None:
        env = os.environ.get("BAREPROP_NUM_THREADS", "").strip()
        try:
            n = int(env) if env else 1
        except ValueError:
            n = 1
        _workers = max(1, min(8, n))
    return _workers


def over_batch(fn, n: int, elements: int) -> None:
    """Call ``fn(slice)`` on contiguous chunks of range(n) covering it, in parallel when
    ``elements`` (the work's size) is large enough to pay for it; returns when all are
    done and re-raises the first error."""
    workers = min(num_threads(), n)
    if workers < 2 or elements < MIN_ELEMENTS:
        fn(slice(0, n))
        return
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(num_threads(), thread_name_prefix="bareprop")
    bounds = [n * i // workers for i in range(workers + 1)]
    futures = [_pool.submit(fn, slice(a, b)) for a, b in zip(bounds, bounds[1:]) if b > a]
    for f in futures:
        f.result()
