"""How much slower is NumPy's element-wise work right after a BLAS GEMM than alone?

Inside a training step every ReLU, bias add and loss pass runs just after a GEMM, and
on the project's 2-core VM they took about twice their isolated time (docs/benchmarks.md,
MLP speed round 2). This times three small pieces of work alone and right after a
(128, 800) x (800, 800) float32 GEMM (the 784-800-800-10 net's hidden layer), medians of
``--calls`` calls:

- ``mask``: ``d * (y > 0)`` on (128, 800), a ReLU backward;
- ``bias``: ``h += b`` on (128, 800);
- ``small``: ten ufunc calls on (128, 10) arrays, a loss's worth.

Run it as is (BLAS threads as NumPy starts them), then with ``OPENBLAS_NUM_THREADS=1``:
if the penalty mostly goes away with one thread, it comes from the GEMM's second thread
(its half of the output, and memory it last wrote, sit in the other core's cache), not
from the cache being full.

    python benchmarks/after_gemm.py
    OPENBLAS_NUM_THREADS=1 python benchmarks/after_gemm.py
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--calls", type=int, default=300)
    args = p.parse_args(argv)
    rng = np.random.default_rng(0)
    a, w = rng.random((128, 800), np.float32), rng.random((800, 800), np.float32)
    d, y = rng.random((128, 800), np.float32), rng.random((128, 800), np.float32) - 0.5
    b, h = rng.random(800, np.float32), rng.random((128, 800), np.float32)
    z = rng.standard_normal((128, 10)).astype(np.float32)

    def small():
        s = z - z.max()
        e = np.exp(s)
        t = e @ np.ones(10, np.float32)
        np.log(t)
        e / t[:, None]
        s.sum()
        (e * 2).max()
        return e

    def add():
        np.add(h, b, out=h)
    work = {"mask": lambda: d * (y > 0), "bias": add, "small": small}

    def timed(fn, after: bool) -> float:
        if after:
            a @ w.T
        t = time.perf_counter()
        fn()
        return time.perf_counter() - t

    from bareprop.bench import blas_info

    info = blas_info()
    print(f"date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; BLAS: "
          f"{info['blas']}, {info.get('threads', '?')} threads; OPENBLAS_NUM_THREADS="
          f"{os.environ.get('OPENBLAS_NUM_THREADS', '(unset)')}")
    print("| work | alone us | right after the GEMM us | ratio |")
    print("|---|---:|---:|---:|")
    for name, fn in work.items():
        for after in (False, True):          # one untimed round of each first
            timed(fn, after)
        alone = statistics.median(timed(fn, False) for _ in range(args.calls))
        after = statistics.median(timed(fn, True) for _ in range(args.calls))
        print(f"| {name} | {alone * 1e6:.1f} | {after * 1e6:.1f} | {after / alone:.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
