"""Contenders timed against each other in one process, segment by segment.

Separate rows of the benchmark run seconds to minutes apart, and a shared machine drifts
by tens of percent over that time. The ratios the speed targets name (bareprop against
the GEMM-only bound and the lean NumPy loop) are therefore read from ``paired``: each
epoch is cut into short segments that the contenders run in turn, and a ratio is the
median of the per-segment ratios, readings milliseconds apart that drift affects alike.
"""
from __future__ import annotations

import statistics
import time

from .kit import EPOCH


def paired(steps: dict, make_batches, repeats: int, segment: int = 40) -> dict:
    """Time several ``step(xb, yb)`` functions against each other in one process: each
    epoch is cut into segments of ``segment`` batches and the contenders run one segment
    each in turn, every one on its own Batches from ``make_batches()`` (the same
    batches). A step whose name starts with "bound" is handed (None, y) from an iterator
    that only slices the labels (no gather, no scaling): it times GEMMs alone. Returns
    {"seconds": {name: median s per epoch}, "ratio": {(a, b): median over every segment
    of a's time / b's}, "spread": {(a, b): the quartiles of those segment ratios}}."""
    names = list(steps)
    batches = {n: make_batches() for n in names}
    per_epoch = {n: [] for n in names}
    seg_times = {n: [] for n in names}

    def epoch(name, e):
        b = batches[name]
        if not name.startswith("bound"):
            return iter(b.epoch(e))
        order = b.order(e)                               # labels only: no data work
        return ((None, b.y[order[i:i + b.batch_size]]) for i in range(0, b.n, b.batch_size))

    def run(name, it) -> tuple[int, float]:
        step = steps[name]
        k, t = 0, time.perf_counter()
        for xb, yb in it:
            step(xb, yb)
            k += 1
            if k == segment:
                break
        return k, time.perf_counter() - t
    for name in names:                                   # warm-up: one segment each
        run(name, epoch(name, 0))
    for r in range(repeats):
        its = {n: epoch(n, r + 1) for n in names}
        totals = dict.fromkeys(names, 0.0)
        while True:
            segs = {name: run(name, its[name]) for name in names}
            if any(k == 0 for k, _ in segs.values()):
                break
            for name, (_, dt) in segs.items():
                totals[name] += dt
                seg_times[name].append(dt)
        for name in names:
            per_epoch[name].append(totals[name])
    per_seg = {(a, b): [x / y for x, y in zip(seg_times[a], seg_times[b])]
               for a in names for b in names if a != b}
    return {"seconds": {k: statistics.median(v) for k, v in per_epoch.items()},
            "ratio": {k: statistics.median(v) for k, v in per_seg.items()},
            "spread": {k: quartiles(v) for k, v in per_seg.items()}}


def quartiles(values: list) -> tuple[float, float]:
    """(first, third) quartile: the middle half of a ratio's per-segment readings."""
    if len(values) < 2:
        return values[0], values[0]
    q = statistics.quantiles(values, n=4, method="inclusive")
    return q[0], q[2]


def paired_task(steps: dict, make_batches, task: dict) -> dict:
    """``paired`` for a benchmark row: segments of ~5,120 examples, ``task["repeats"]``
    epochs of ``task["examples"]``, seconds scaled to a 60k epoch."""
    got = paired(steps, make_batches, task["repeats"], segment=max(1, 5120 // task["batch"]))
    scale = EPOCH / task["examples"]
    return {"seconds": {k: v * scale for k, v in got["seconds"].items()}, "ratio": got["ratio"],
            "spread": got["spread"]}
