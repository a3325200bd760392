"""Which activation layout makes a training step's GEMMs faster: row-major or feature-major?

A Linear layer's three GEMMs can be written for activations kept row-major, (N, D) as
the batch arrives, or feature-major, (D, N), each C-ordered:

    row-major       y = x W^T        dW = dout^T x         dx = dout W
    feature-major   y^T = W x^T      dW = dout^T (x^T)^T   dx^T = W^T dout^T

Same values, but BLAS packs and splits the two differently. This times every GEMM of one
step of a 784-hidden-10 net both ways (float32, into preallocated outputs; the first
layer's input is the (N, 784) batch in both, and it forms no dx; the last layer's dout
is the loss's C-ordered (N, C) gradient in both), the two forms
alternating call by call, medians of ``--calls`` rounds, and prints microseconds per GEMM
and the step's totals. bareprop's Linear uses the feature-major forms (docs/benchmarks.md,
MLP speed round 2, third pass, has the measurements).

    python benchmarks/gemm_layouts.py
    python benchmarks/gemm_layouts.py --arch 784-800-800-10 --batch 128 --calls 50
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time

import numpy as np


def step_gemms(hidden, n: int, rng) -> list[tuple[str, object, object]]:
    """[(label, row-major call, feature-major call)] for one step's GEMMs."""
    widths = [784, *hidden, 10]
    x = rng.random((n, 784), dtype=np.float32)
    row = [x] + [rng.random((n, w), dtype=np.float32) for w in widths[1:]]        # (N, D)
    feat = [x.T] + [np.ascontiguousarray(a.T) for a in row[1:]]                   # (D, N)
    row_out = [np.empty((n, w), np.float32) for w in widths]
    feat_out = [np.empty((w, n), np.float32) for w in widths]
    # the douts: the loss's gradient is (N, C) C-ordered in both layouts
    dout_t = feat[:-1] + [row[-1].T]                                              # (D, N)
    gemms = []
    for k, (i, o) in enumerate(zip(widths[:-1], widths[1:])):
        w = rng.random((o, i), dtype=np.float32)
        dw, dw_t = np.empty_like(w), np.empty_like(w)       # one output per form
        gemms.append((f"layer {k + 1} forward ({n}x{i} -> {o})",
                      lambda k=k, w=w: np.matmul(row[k], w.T, out=row_out[k + 1]),
                      lambda k=k, w=w: np.matmul(w, feat[k], out=feat_out[k + 1])))
        gemms.append((f"layer {k + 1} dW ({o}x{i})",
                      lambda k=k, dw=dw: np.matmul(row[k + 1].T, row[k], out=dw),
                      lambda k=k, dw=dw_t: np.matmul(dout_t[k + 1], feat[k].T, out=dw)))
        if k > 0:
            gemms.append((f"layer {k + 1} dx ({n}x{o} -> {i})",
                          lambda k=k, w=w: np.matmul(row[k + 1], w, out=row_out[k]),
                          lambda k=k, w=w: np.matmul(w.T, dout_t[k + 1], out=feat_out[k])))
    return gemms


def _us(fn) -> float:
    t = time.perf_counter()
    fn()
    return (time.perf_counter() - t) * 1e6


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--arch", nargs="+", default=["784-128-10", "784-800-800-10"])
    p.add_argument("--batch", nargs="+", type=int, default=[128, 32])
    p.add_argument("--calls", type=int, default=100)
    args = p.parse_args(argv)
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))
    from bareprop.bench import blas_info, cpu_name, cpus_text

    info = blas_info()
    print(f"machine: {cpu_name()}, {cpus_text()}; numpy {np.__version__}; BLAS: "
          f"{info['blas']}, {info.get('threads', '?')} threads")
    print(f"date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; command: python "
          f"benchmarks/gemm_layouts.py {' '.join(argv if argv is not None else sys.argv[1:])}"
          .rstrip())
    print(f"python {platform.python_version()}; us per GEMM, median of {args.calls} "
          "alternating calls\n")
    print("| net | batch | GEMM | row-major us | feature-major us | feature / row |")
    print("|---|---:|---|---:|---:|---:|")
    rng = np.random.default_rng(0)
    for arch in args.arch:
        hidden = tuple(int(h) for h in arch.split("-")[1:-1])
        for n in args.batch:
            total_row = total_feat = 0.0
            for label, row_fn, feat_fn in step_gemms(hidden, n, rng):
                row_fn(), feat_fn()                                   # warm-up
                times = [(_us(row_fn), _us(feat_fn)) for _ in range(args.calls)]
                r = statistics.median(t[0] for t in times)
                f = statistics.median(t[1] for t in times)
                total_row, total_feat = total_row + r, total_feat + f
                print(f"| {arch} | {n} | {label} | {r:.1f} | {f:.1f} | {f / r:.2f} |")
            print(f"| {arch} | {n} | **all GEMMs of a step** | {total_row:.1f} | "
                  f"{total_feat:.1f} | {total_feat / total_row:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
