"""The MLP benchmark's two diagnostic tables (run by tables.report):

1. Per GEMM at the real shapes: NumPy's ``matmul(out=)`` against torch's, one step of
   the net, and the SGD update of the largest weight three ways (NumPy's two passes,
   the fused BLAS GEMM of fast/sgd.py, torch's fused ``add_``). Whether bareprop can
   beat PyTorch on a processor is decided here: the step is mostly these GEMMs, and
   when NumPy's BLAS is slower at these shapes than PyTorch's, no framework-side saving
   makes up for it. The table says which case the machine is in.
2. The optimizers with and without fusion, in alternating segments of one process.
"""
from __future__ import annotations

import numpy as np

from .kit import median_seconds
from .mlp import OPTIMIZERS


def _median_ms(fn, calls: int) -> float:
    return 1e3 * median_seconds(fn, calls)


def _table(out, title: str, header: str) -> None:
    """A blank line, the title, a blank line, then the markdown header and its rule."""
    cols = header.count("|") - 1
    for line in ("", title, "", header, "|" + "---|" * cols):
        out(line)


def gemm_rows(hidden, bs: int, threads: int, calls: int = 60) -> list[dict]:
    """[{op, shape, numpy_ms, torch_ms}] for every GEMM of one training step of
    784-hidden-10 at batch ``bs`` (float32), then the update rows."""
    from ..fast.sgd import blas

    rng = np.random.default_rng(0)
    widths = [784, *hidden, 10]
    try:
        import torch

        torch.set_num_threads(threads)
    except ImportError:
        torch = None
    rows = []

    def row(op, shape, np_fn, torch_fn):
        rows.append({"op": op, "shape": shape, "numpy_ms": _median_ms(np_fn, calls),
                     "torch_ms": _median_ms(torch_fn, calls) if torch_fn else None})

    def t(a):
        return torch.from_numpy(a) if torch is not None else None

    # NumPy in bareprop's layouts (core's Linear): activations kept as their
    # C-ordered transposes (D, N), the first layer's input x as the (N, 784) batch and
    # the last layer's dout as the loss's C-ordered (N, C) gradient;
    # PyTorch as torch.nn.Linear computes: x W^T, dout^T x, dout W on (N, D) tensors
    for k, (i, o) in enumerate(zip(widths[:-1], widths[1:])):
        x, w = rng.random((bs, i), np.float32), rng.random((o, i), np.float32)
        d = rng.random((bs, o), np.float32)
        xt = x.T if k == 0 else np.ascontiguousarray(x.T)    # (in, N)
        last = k == len(widths) - 2                          # dout: the loss's (N, C)
        dt = d.T if last else np.ascontiguousarray(d.T)      # (out, N)
        yt, dw, dxt = np.empty((o, bs), np.float32), np.empty((o, i), np.float32), \
            np.empty((i, bs), np.float32)
        y, dx = np.empty((bs, o), np.float32), np.empty((bs, i), np.float32)
        tx, tw, td, ty, tdw, tdx = map(t, (x, w, d, y, dw, dx))
        tf = torch is not None
        row(f"layer {k + 1} forward y^T = W x^T", f"({o},{i})x({i},{bs})",
            lambda: np.matmul(w, xt, out=yt),
            (lambda: torch.matmul(tx, tw.T, out=ty)) if tf else None)
        row(f"layer {k + 1} dW = dout^T x", f"({o},{bs})x({bs},{i})",
            lambda: np.matmul(dt, xt.T, out=dw),
            (lambda: torch.matmul(td.T, tx, out=tdw)) if tf else None)
        if k > 0:
            row(f"layer {k + 1} dx^T = W^T dout^T", f"({i},{o})x({o},{bs})",
                lambda: np.matmul(w.T, dt, out=dxt),
                (lambda: torch.matmul(td, tw, out=tdx)) if tf else None)
    # the update of the largest weight
    k = int(np.argmax([i * o for i, o in zip(widths[:-1], widths[1:])]))
    i, o = widths[k], widths[k + 1]
    x, d = rng.random((bs, i), np.float32), rng.random((bs, o), np.float32) * 1e-3
    w, g = rng.random((o, i), np.float32), rng.random((o, i), np.float32)
    step = np.empty_like(w)

    def numpy_update():                       # the unfused rule: g *= lr into a scratch, W -= it
        np.multiply(g, 1e-3, out=step)
        np.subtract(w, step, out=w)
    tw, tg = t(w.copy()), t(g.copy())
    row(f"SGD update of W{k + 1} ({o}x{i}), separate passes", f"({o},{i})", numpy_update,
        (lambda: tw.add_(tg, alpha=-1e-3)) if torch is not None else None)
    fns = blas(np.float32)
    if fns is not None:
        dt, xt = np.ascontiguousarray(d.T), x.T if k == 0 else np.ascontiguousarray(x.T)
        fused = _median_ms(lambda: fns.gemm(-1e-3, dt, xt.T, 1.0, w), calls)
        rows.append({"op": f"SGD step of W{k + 1} fused: its dW GEMM as W <- W - lr dout^T x "
                     "(compare with its dW row + update row)",
                     "shape": f"({o},{i})", "numpy_ms": fused, "torch_ms": None})
    return rows


def report_gemms(out, run_task, base, archs: dict, batches) -> None:
    """The per-GEMM table of every net in ``archs`` at every batch size in ``batches``,
    with a verdict row: are NumPy's GEMMs slower here than PyTorch's?"""
    _table(out, "Per-GEMM times at the real shapes, one training step (float32, median ms "
           "of 60 calls into preallocated outputs; NumPy's BLAS vs PyTorch's):",
           "| net | batch | op | shape | NumPy ms | PyTorch ms | NumPy / PyTorch |")
    for arch, hidden in archs.items():
        for bs in batches:
            r = run_task({**base, "kind": "gemms", "hidden": hidden, "batch": bs})
            if "error" in r:
                out(f"| {arch} | {bs} | error: {r['error']} | | | | |")
                continue
            gemm_np = gemm_t = 0.0
            for row in r["rows"]:
                t = row["torch_ms"]
                ratio = f"{row['numpy_ms'] / t:.2f}" if t else "-"
                out(f"| {arch} | {bs} | {row['op']} | {row['shape']} | {row['numpy_ms']:.3f} | "
                    f"{t if t is None else f'{t:.3f}'} | {ratio} |".replace("| None |", "| - |"))
                if row["op"].startswith("layer") and t:
                    gemm_np, gemm_t = gemm_np + row["numpy_ms"], gemm_t + t
            if gemm_t:
                verdict = ("NumPy's GEMMs are not slower" if gemm_np <= gemm_t * 1.02 else
                           "NumPy's GEMMs are SLOWER")
                out(f"| {arch} | {bs} | **all GEMMs of a step** | | {gemm_np:.3f} | {gemm_t:.3f} | "
                    f"{gemm_np / gemm_t:.2f} ({verdict}) |")


def report_optimizers(out, run_task, base, archs: dict, bs: int) -> None:
    """Each optimizer of mlp.OPTIMIZERS fused and unfused, paired in one process."""
    _table(out, f"Each optimizer fused (as `bareprop train` runs it) and unfused "
           f"(TrainStep(fuse=False)), batch {bs}, float32, alternating segments of one "
           "process (bench.paired): s/epoch (median) and the median of per-segment ratios:",
           "| net | optimizer | unfused | fused | fused / unfused |")
    for arch, hidden in archs.items():
        for name in OPTIMIZERS:
            r = run_task({**base, "kind": "fusion", "hidden": hidden, "batch": bs,
                          "dtype": "float32", "optimizer": name})
            if "error" in r:
                out(f"| {arch} | {name} | error: {r['error']} | | |")
                continue
            label = name + (" (never fused: a control row, its ratio is the noise)"
                            if name == "adam" else "")
            sec = r["seconds"]
            out(f"| {arch} | {label} | {sec['unfused']:.3f} | {sec['fused']:.3f} | "
                f"{r['fused/unfused']:.2f} |")
