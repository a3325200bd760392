"""The parent side of the benchmark: run every row in its own subprocess
(kit.run_task) and print the report as markdown tables.

Tables, in order: the machine's stamp; the MLP rows (s/epoch, x PyTorch, GFLOP/s, % of
the matmul peak, peak RSS); the paired table the speed targets are read from; the
per-GEMM table and each optimizer fused and unfused (gemm.py); the CNN rows and their
profile (cnn.py); the named nets against their PyTorch twins (nets.py); the memory of a real training run. Flags (command.py) leave parts out.
"""
from __future__ import annotations

import os
import platform
import statistics
import sys
import time

import numpy as np

from .cnn import report_cnn
from .gemm import report_gemms, report_optimizers
from .kit import available, cpu_name, cpus_text, md_row, run_task
from .mlp import ARCHS, flops_per_epoch
from .nets import report_nets

#: the speed targets for time outside the GEMMs (docs/benchmarks.md): bareprop's epoch /
#: the GEMM-only bound, at batch 128
BOUND_TARGETS = {"784-128-10": 1.35, "784-800-800-10": 1.10}


def report(args) -> int:
    """Run the benchmark ``args`` asks for, print it, and write it to ``args.markdown``."""
    lines = []

    def out(s=""):
        print(s, flush=True)
        lines.append(s)

    peak = run_task({"kind": "peak"})
    threads = peak.get("threads") or os.cpu_count()
    out(f"machine: {cpu_name()}, {cpus_text()}; {platform.platform()}")
    out(f"date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; python {platform.python_version()}, "
        f"numpy {np.__version__}; BLAS: {peak.get('blas')}, {threads} threads "
        "(OPENBLAS_CORETYPE/OPENBLAS_L2_SIZE unset)")
    argv = sys.argv[1:][1:] if sys.argv[1:2] == ["bench"] else sys.argv[1:]  # bareprop bench
    out(f"command: python -m bareprop.bench {' '.join(argv)}".rstrip())
    out(f"sgemm peak (2048^3): {peak['float32']:.1f} GFLOP/s float32, {peak['float64']:.1f} float64")
    out(f"bareprop's float32 element-wise work: {peak['kernels']}")
    base = {"kind": None, "examples": args.examples, "repeats": args.repeats, "threads": threads}
    rss = not args.no_rss
    only = args.cnn_only or args.nets_only
    mlp_archs = {} if only else {a: ARCHS[a] for a in args.arch}
    if mlp_archs:
        report_mlp(out, base, mlp_archs, args, peak, rss)
        report_paired(out, base, mlp_archs, args.batch)
    if mlp_archs and not args.no_gemms:
        report_gemms(out, run_task, base, mlp_archs, args.batch)
    if mlp_archs and not args.no_optimizers:
        report_optimizers(out, run_task, base, mlp_archs, 128)
    if not args.no_cnn and not args.nets_only:
        report_cnn(out, base, args.cnn_batch, profile=not args.no_profile, rss=rss)
    if not args.no_nets and not args.cnn_only:
        report_nets(out, base, args.nets, args.cnn_batch, profile=not args.no_profile, rss=rss)
    if rss and not only:
        report_train_rss(out, run_task({"kind": "train-rss", "epochs": 3}))
    if args.markdown:
        from ..archive import atomic_write

        atomic_write(args.markdown, ("\n".join(lines) + "\n").encode())
    return 0


def report_mlp(out, base: dict, archs: dict, args, peak: dict, rss: bool) -> None:
    """The MLP rows: every framework at every batch size, rows taking turns (``rounds``)."""
    cols = ["net", "batch", "framework", "dtype", "s/epoch (median)",
            "x PyTorch (median of rounds)", "GFLOP/s", "% of peak"] + (["peak RSS MB"] if rss else [])
    out()
    out(md_row(*cols))
    out("|---|---:|---|---|" + "---:|" * (len(cols) - 4))
    rows = [("bareprop", "float32")] + ([] if args.no_float64 else [("bareprop", "float64")])
    rows += [("numpy", "float32")] + ([("torch", "float32")] if available("torch") else [])
    rows += [("sklearn", "float32")] if available("sklearn") and not args.no_sklearn else []
    for arch, hidden in archs.items():
        flops = flops_per_epoch(hidden)
        for bs in args.batch:
            results = rounds(base, rows, hidden, bs)
            torch_r = results.get(("torch", "float32"), {})
            for (kind, dtype), r in results.items():
                if "error" in r:
                    out(md_row(arch, bs, kind, dtype, f"error: {r['error']}", width=len(cols)))
                    continue
                s = r["seconds"]
                ratio = "-"
                if "all" in torch_r:          # each round's ratio, then their median
                    ratio = f"{statistics.median(a / b for a, b in zip(r['all'], torch_r['all'])):.2f}"
                gf = flops / s / 1e9
                name = "lean NumPy loop" if kind == "numpy" else kind
                out(md_row(arch, bs, name, dtype, f"{s:.3f}", ratio, f"{gf:.1f}",
                           f"{100 * gf / peak[dtype]:.0f}%", *([f"{r['rss_mb']:.0f}"] if rss else [])))


def rounds(base: dict, rows, hidden, bs) -> dict:
    """Each row's subprocess run once per round, ``base["repeats"]`` rounds, rows in turn:
    a row's epochs are then seconds, not minutes, apart from the other rows' of its
    round, and "x PyTorch" is the median of the rounds' ratios. {(kind, dtype): the last
    round's result with "all" (every round's s/epoch) and "seconds" (their median)}; a row
    that fails in any round is reported as that round's error."""
    got: dict = {}
    for _ in range(base["repeats"]):
        for kind, dtype in rows:
            r = run_task({**base, "repeats": 1, "kind": kind, "hidden": hidden, "batch": bs,
                          "dtype": dtype})
            prev = got.get((kind, dtype), {})
            if "error" in r or "error" in prev:
                got[(kind, dtype)] = prev if "error" in prev else r
                continue
            r["all"] = prev.get("all", []) + r["all"]
            r["rss_mb"] = max(r["rss_mb"], prev.get("rss_mb", 0))
            got[(kind, dtype)] = r
    for r in got.values():
        if "all" in r:
            r["seconds"] = statistics.median(r["all"])
    return got


def report_paired(out, base, archs: dict, batches) -> None:
    """The table the speed targets are read from: each ratio is the median of the ratios of
    segments run in turn in one process (pairing.paired)."""
    out()
    out("bareprop (SGD, fused as `bareprop train` runs it), the lean NumPy loop and the "
        "GEMM-only bound (the step's GEMMs alone, in bareprop's layouts, into preallocated "
        "outputs), float32, in alternating segments of ~5,000 examples in one process "
        "(bench.paired): s/epoch (median of repeats) and medians of the per-segment ratios; "
        "the last column is the middle half (quartiles) of bareprop x bound's segments, the "
        "noise a single reading carries:")
    out()
    out("| net | batch | bareprop s/epoch | lean s/epoch | bound s/epoch | bareprop x bound "
        "(target) | lean x bound | bareprop / lean | bareprop x bound, quartiles |")
    out("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for arch, hidden in archs.items():
        for bs in batches:
            r = run_task({**base, "kind": "paired", "hidden": hidden, "batch": bs,
                          "dtype": "float32"})
            if "error" in r:
                out(md_row(arch, bs, f"error: {r['error']}", width=9))
                continue
            sec, goal = r["seconds"], BOUND_TARGETS.get(arch)
            target = f" (<= {goal:.2f}: {'met' if r['bareprop/bound'] <= goal else 'NOT met'})" \
                if goal and bs == 128 else ""
            q1, q3 = r["bareprop/bound spread"]
            out(f"| {arch} | {bs} | {sec['bareprop']:.3f} | {sec['lean']:.3f} | "
                f"{sec['bound']:.3f} | {r['bareprop/bound']:.2f}{target} | "
                f"{r['lean/bound']:.2f} | {r['bareprop/lean']:.2f} | {q1:.2f}-{q3:.2f} |")


def report_train_rss(out, r: dict) -> None:
    """The data's load time and a 3-epoch training run's peak RSS against its limit."""
    out()
    if "error" in r:
        out(f"train RSS: error: {r['error']}")
        return
    limit = 1.5 * r["dataset_float32_mb"] + 150
    out(f"MNIST load (decompress + parse + content SHA-256): {r['load_seconds']:.2f} s")
    out(f"784-128-10 Adam training, 3 epochs: peak RSS {r['peak_rss_mb']:.0f} MB "
        f"(limit 1.5 x {r['dataset_float32_mb']:.0f} MB float32 data + 150 = {limit:.0f} MB); "
        f"RSS after each epoch: {', '.join(f'{v:.0f}' for v in r['rss_per_epoch_mb'])} MB")
