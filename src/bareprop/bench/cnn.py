"""The convolutional rows of the benchmark: bareprop vs PyTorch eager on the same batches.

Net (the reference CNN of docs/benchmarks.md): conv(32,3) relu maxpool(2) conv(64,3)
relu maxpool(2) flatten linear(128) relu linear(10); float32, SGD momentum 0.9, MNIST
in (N, 1, 28, 28). Each row runs in its own subprocess (kit.run_task, OpenBLAS variables
unset). Besides seconds per 60k-example epoch it measures

* the GEMM-only bound: the epoch's matrix products alone at the exact im2col shapes
  of every conv (no wasted columns) and the Linear shapes, into preallocated outputs;
* a profile: seconds per epoch in each layer's forward, dx and parameter gradients
  (wall time around each call, so it includes the threads' work), and the optimizer.
"""
from __future__ import annotations

import time

import numpy as np

from .kit import (EPOCH, available, blas_info, epoch_of, epoch_result, load_data, md_row,
                  run_task, timed_epochs, torch_epoch)

#: the reference net, in the --arch grammar's terms
NET = "conv(32,3) relu maxpool(2) conv(64,3) relu maxpool(2) flatten linear(128) relu linear(10)"


def build_bareprop(dtype="float32"):
    """NET in bareprop (seeded initialisation)."""
    from .. import core

    rng = np.random.default_rng(0)
    return core.Sequential(
        core.Conv2d(1, 32, 3, rng=rng, dtype=dtype), core.ReLU(inplace=True), core.MaxPool2d(2),
        core.Conv2d(32, 64, 3, rng=rng, dtype=dtype), core.ReLU(inplace=True), core.MaxPool2d(2),
        core.Flatten(), core.Linear(1600, 128, rng=rng, dtype=dtype), core.ReLU(inplace=True),
        core.Linear(128, 10, rng=rng, dtype=dtype), input_shape=(1, 28, 28))


def build_torch():
    """NET in PyTorch (its default initialisation, seed 0)."""
    import torch
    from torch import nn

    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 32, 3), nn.ReLU(inplace=True), nn.MaxPool2d(2),
                         nn.Conv2d(32, 64, 3), nn.ReLU(inplace=True), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(1600, 128), nn.ReLU(inplace=True),
                         nn.Linear(128, 10))


def image_batches(task):
    """(Batches of (N, 1, 28, 28) float32 images, data source) for a CNN row."""
    from ..data import Batches, Scaler

    x, y, source = load_data(task["examples"])
    return Batches(x.reshape(len(x), 1, 28, 28), y, task["batch"], Scaler("unit"), "float32",
                   shuffle=True, seed=0), source


class Profile:
    """Wall seconds per (layer, phase), by wrapping the three methods of each unit the
    training step runs: the model's layers, or the fast unit fast/plan.py put in their
    place (named by the layers it stands for, so a profile shows the path that runs)."""

    def __init__(self, step):
        self.seconds: dict[str, float] = {}
        index = {id(layer): i for i, layer in enumerate(step.model.layers)}
        net = step.plan.net
        for unit in getattr(net, "layers", [net]):
            covers = unit.stands_for() if hasattr(unit, "stands_for") else [unit]
            name = "+".join(f"{index.get(id(m), '?')} {type(m).__name__}" for m in covers)
            for phase, attr in (("forward", "forward"), ("dx", "input_grad"),
                                ("grads", "accumulate_grads")):
                self.wrap(unit, attr, f"{name} {phase}")

    def wrap(self, obj, attr, key):
        """Time every call of ``obj.attr`` under ``key``."""
        inner = getattr(obj, attr)

        def timed(*a):
            t = time.perf_counter()
            r = inner(*a)
            self.seconds[key] = self.seconds.get(key, 0.0) + time.perf_counter() - t
            return r
        setattr(obj, attr, timed)


def cnn_row(task: dict) -> dict:
    """One row: {"kind": "cnn-bareprop" | "cnn-torch" | "cnn-bound", ...}; with
    "profile" set, one profiled bareprop epoch instead of the timed ones."""
    kind = task["kind"]
    batches, source = image_batches(task)
    warm = max(1, min(len(batches), 1000 // task["batch"]))
    profile = None
    if kind == "cnn-bareprop":
        from .. import core, optim
        from ..train.step import TrainStep

        model = build_bareprop()
        opt = optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        step = TrainStep(model, core.CrossEntropyLoss(), opt)
        if task.get("profile"):
            profile = Profile(step)
            profile.wrap(opt, "step", "optimizer step")
        epoch = epoch_of(step, batches, warm)
    elif kind == "cnn-torch":
        import torch

        torch.set_num_threads(task["threads"])
        model = build_torch()
        epoch = torch_epoch(model, torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9),
                            batches, warm)
    elif kind == "cnn-bound":
        epoch = gemm_bound_epoch(task["batch"], task["examples"])
    else:
        raise ValueError(f"unknown benchmark row kind {kind!r}")
    if profile is None:
        return epoch_result(timed_epochs(epoch, task["repeats"]), task["examples"], source)
    epoch(-1, warmup=True)
    profile.seconds.clear()
    t = time.perf_counter()
    epoch(0)
    total = time.perf_counter() - t
    scale = EPOCH / task["examples"]
    return {"seconds": total * scale, "source": source, **blas_info(),
            "profile": {k: v * scale for k, v in profile.seconds.items()}}


def gemm_shapes(batch: int) -> list[tuple[int, int, int, bool]]:
    """(M, K, N, transposed) of every matrix product one training step of NET needs, at
    exact im2col shapes, with each operand laid out as a good implementation has it
    (``transposed``: the right operand is stored (N, K) and used as its transpose).
    Per conv: Y = W X_col (O, CKK, B*L), dW = dY X_col^T (O, B*L, CKK, transposed) and,
    but for the first layer, dX_col = W^T dY (CKK, O, B*L); per Linear: y = x W^T,
    dW = dy^T x, dx = dy W."""
    b = batch
    shapes = []
    for o, ckk, l, first in ((32, 9, 26 * 26, True), (64, 288, 11 * 11, False)):
        shapes += [(o, ckk, b * l, False), (o, b * l, ckk, True)]
        shapes += [] if first else [(ckk, o, b * l, False)]
    for i, o in ((1600, 128), (128, 10)):
        shapes += [(b, i, o, True), (o, b, i, False), (b, o, i, False)]
    return shapes


def gemm_bound_epoch(batch: int, examples: int):
    """An epoch of just NET's GEMMs (gemm_shapes) into preallocated outputs."""
    rng = np.random.default_rng(0)
    n_full, rest = divmod(examples, batch)
    sizes = [batch] * n_full + ([rest] if rest else [])
    ops = {}
    for n in set(sizes):
        ops[n] = []
        for m, k, nn, transposed in gemm_shapes(n):
            a = rng.random((m, k), dtype=np.float32)
            b = rng.random((nn, k), dtype=np.float32).T if transposed else \
                rng.random((k, nn), dtype=np.float32)
            ops[n].append((a, b, np.empty((m, nn), np.float32)))

    def epoch(e, warmup=False):
        for n in sizes[:1] if warmup else sizes:
            for a, b, out in ops[n]:
                np.matmul(a, b, out=out)
    return epoch


def report_cnn(out, base: dict, batch: int, profile: bool, rss: bool = True) -> None:
    """Print the CNN rows (and the profile table) through ``out``; ``rss``: with the
    peak RSS column."""
    cols = ["framework", "s/epoch (median)", "x PyTorch eager", "x GEMM-only bound"] + \
        (["peak RSS MB"] if rss else [])
    out()
    out(f"CNN `{NET}`, batch {batch}, float32, SGD momentum 0.9, MNIST (N, 1, 28, 28):")
    out()
    out(md_row(*cols))
    out("|---|" + "---:|" * (len(cols) - 1))
    task = {**base, "batch": batch}
    rows = {"bareprop": run_task({**task, "kind": "cnn-bareprop"})}
    if available("torch"):
        rows["PyTorch eager"] = run_task({**task, "kind": "cnn-torch"})
    bound = run_task({**task, "kind": "cnn-bound"})
    torch_s = rows.get("PyTorch eager", {}).get("seconds")
    bound_s = bound.get("seconds")

    def ratios(s):
        return [f"{s / torch_s:.2f}", f"{s / bound_s:.2f}"] if torch_s and bound_s else ["-", "-"]
    for name, r in rows.items():
        if "error" in r:
            out(md_row(name, f"error: {r['error']}", width=len(cols)))
            continue
        s = r["seconds"]
        out(md_row(name, f"{s:.2f}", *ratios(s), *([f"{r['rss_mb']:.0f}"] if rss else [])))
    if bound_s:
        out(md_row("GEMMs alone (exact im2col shapes)", f"{bound_s:.2f}",
                   f"{bound_s / torch_s:.2f}" if torch_s else "-", "1.00", width=len(cols)))
    if profile:
        report_profile(out, run_task({**task, "kind": "cnn-bareprop", "profile": True,
                                      "repeats": 1}))


def report_profile(out, r: dict) -> None:
    """The profiled epoch ``r`` as a table, the largest share first."""
    if "error" in r:
        out(f"profile: error: {r['error']}")
        return
    out()
    out(f"Where bareprop's epoch goes (one profiled epoch, {r['seconds']:.2f} s; wall time "
        "inside each call):")
    out()
    out("| layer | phase | s/epoch | share |")
    out("|---|---|---:|---:|")
    for key, s in sorted(r["profile"].items(), key=lambda kv: -kv[1]):
        layer, _, phase = key.rpartition(" ")
        out(f"| {layer} | {phase} | {s:.2f} | {100 * s / r['seconds']:.0f}% |")
    rest = r["seconds"] - sum(r["profile"].values())
    out(f"| loss, batches, Python | - | {rest:.2f} | {100 * rest / r['seconds']:.0f}% |")
