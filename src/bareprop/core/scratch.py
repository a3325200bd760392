"""Eval mode's scratch arrays: kept across forwards, lent to one thread at a time.

A training step keeps its layer's scratch (a conv's padded input, columns, GEMM output)
from step to step: one thread trains. In eval mode several threads may run one model
(a server's requests), so eval forwards took fresh arrays each call - and a fresh
multi-megabyte array costs its page faults every time it is written: evaluating the
`cnn` preset's test set, 10,000 images in 32 MB chunks, took 1.40-1.58 s that way and
1.27-1.34 s with the arrays kept (docs/benchmarks.md). Here one set per layer is kept, lent to the
thread whose forward takes it first; a thread that finds it lent out gets fresh arrays
(as before), so the memory kept stays one set per layer however many threads predict.
"""
from __future__ import annotations

import threading
from contextlib import contextmanager

import numpy as np


class EvalScratch:
    """One layer's eval-mode scratch (name -> array), lent by ``lent()``."""

    def __init__(self):
        self._lock = threading.Lock()
        self._owner: int | None = None
        self._arrays: dict[str, np.ndarray] = {}

    @contextmanager
    def lent(self):
        """Lend the arrays to the calling thread for the block's duration, if free."""
        if not self._lock.acquire(blocking=False):     # another thread's forward has them
            yield
            return
        self._owner = threading.get_ident()
        try:
            yield
        finally:
            self._owner = None
            self._lock.release()

    def arrays(self) -> dict[str, np.ndarray] | None:
        """The kept arrays, if lent to the calling thread; else None (use fresh ones)."""
        return self._arrays if self._owner == threading.get_ident() else None

    def clear(self) -> None:
        self._arrays.clear()

    def __bool__(self) -> bool:
        return bool(self._arrays)

    def __reduce__(self):              # a copied or pickled layer starts with none kept
        return EvalScratch, ()


def equal_chunks(n: int, step: int) -> list[tuple[int, int, int]]:
    """range(n) in ceil(n / step) chunks (lo, hi, first), all of one size (at most
    ``step``): a second size would reallocate the kept scratch every call. When the
    sizes cannot tile n, the last chunk starts early, over examples its neighbour has
    computed, and its outputs from ``first`` on are the ones to keep (fewer than one
    example per chunk recomputed: 1001 in chunks of 101, the last from 900, first 9)."""
    parts = max(1, -(-n // step))
    size = -(-n // parts)
    chunks = []
    for i in range(parts):
        lo = min(i * size, n - size)
        chunks.append((lo, lo + size, i * size - lo))
    return chunks
