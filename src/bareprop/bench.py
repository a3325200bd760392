"""Speed benchmark: bareprop vs PyTorch eager (and scikit-learn) on the same batches.

Every measurement runs in its own subprocess (so peak RSS is per row) with
OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE unset (they force slower kernels on some CPUs);
the BLAS kernel and thread count are read with threadpoolctl and printed.
Times are seconds per 60,000-example epoch (timed over ``examples`` examples and scaled
to 60k when fewer are used), the median of ``repeats`` rounds: in each round every row's
subprocess times one epoch, rows in turn, and "x PyTorch" is the median of the rounds'
ratios (PyTorch's threads cannot share a process with OpenBLAS's without both spinning).
The "lean NumPy loop" row is a hand-fused plain-NumPy trainer for the same net
(``lean_numpy_epoch``): what NumPy itself can reach here, framework cost aside.
The speed targets (time outside the GEMMs, bareprop against that loop) are read from
the paired table: bareprop, the lean loop and the GEMM-only bound run in alternating
segments of ~5,000 examples in one process (``paired``), and each ratio is the median
of the per-segment ratios, so the machine's drift between separate rows does not enter it.

    python -m bareprop.bench            # or: bareprop bench
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import sys
import time

import numpy as np

from .benchkit import (EPOCH, _blas_info, _clean_env, _data, _timed_epochs,  # noqa: F401
                       available, run_task, torch_epoch)

ARCHS = {"784-128-10": (128,), "784-800-800-10": (800, 800)}


# -- worker side ----------------------------------------------------------------------


def worker(task: dict) -> dict:
    kind = task["kind"]
    if kind.startswith("cnn-"):
        from . import bench_cnn

        return bench_cnn.worker(task)
    if kind == "peak":
        res = {}
        for dt in ("float32", "float64"):
            a = np.random.default_rng(0).random((2048, 2048)).astype(dt)
            a @ a
            ts = []
            for _ in range(5):
                t = time.perf_counter()
                a @ a
                ts.append(time.perf_counter() - t)
            res[dt] = 2 * 2048**3 / statistics.median(ts) / 1e9
        from .core import kernels

        return {**res, **_blas_info(), "kernels": kernels.describe()}
    if kind == "train-rss":
        return _train_rss(task)
    if kind == "gemms":
        from .bench_gemm import gemm_rows

        return {"rows": gemm_rows(tuple(task["hidden"]), task["batch"], task["threads"]),
                **_blas_info()}
    from .data import Batches, Scaler

    hidden, bs, dtype, examples = tuple(task["hidden"]), task["batch"], task["dtype"], task["examples"]
    x, y, source = _data(examples)
    # flat (N, 784) rows: every row (bareprop, lean loop, torch) times the same MLP work
    flat = x.reshape(len(x), -1)

    def make_batches():
        return Batches(flat, y, bs, Scaler("unit"), dtype, shuffle=True, seed=0)
    batches = make_batches()
    warm = max(1, min(len(batches), 2000 // bs))
    if kind == "paired":                 # bareprop (SGD, fused as `bareprop train` runs it),
        got = _paired_run({              # the lean loop and the GEMM-only bound
            "bareprop": bareprop_step(hidden, dtype),
            "lean": lean_numpy_step(*_lean_weights(hidden, dtype), 0.01),
            "bound": _bound_step(hidden, dtype, sizes=(bs, len(flat) % bs))}, make_batches, task)
        r = got["ratio"]
        return {"seconds": got["seconds"], "bareprop/bound": r["bareprop", "bound"],
                "lean/bound": r["lean", "bound"], "bareprop/lean": r["bareprop", "lean"],
                "bareprop/bound spread": got["spread"]["bareprop", "bound"],
                "source": source, **_blas_info()}
    if kind == "fusion":                 # one optimizer, fused against unfused (bench_gemm)
        got = _paired_run({f: bareprop_step(hidden, dtype, task["optimizer"], fuse=f == "fused")
                           for f in ("fused", "unfused")}, make_batches, task)
        return {"seconds": got["seconds"], "fused/unfused": got["ratio"]["fused", "unfused"],
                **_blas_info()}
    if kind == "bareprop":
        # the fused paths (optim/fused.py) unless the row asks for the unfused ones
        os.environ["BAREPROP_FUSED"] = "1" if task.get("fused", True) else "0"
        epoch = bareprop_epoch(hidden, dtype, batches, warm, task.get("optimizer", "sgd"))
        times = _timed_epochs(epoch, task["repeats"])
    elif kind == "numpy":
        times = _timed_epochs(_lean_epoch(hidden, dtype, batches, warm), task["repeats"])
    elif kind == "torch":
        import torch

        torch.set_num_threads(task["threads"])
        tdtype = torch.float32 if dtype == "float32" else torch.float64
        torch.manual_seed(0)
        mods, w = [], 784
        for h in hidden:
            mods += [torch.nn.Linear(w, h, dtype=tdtype), torch.nn.ReLU(inplace=True)]
            w = h
        model = torch.nn.Sequential(*mods, torch.nn.Linear(w, 10, dtype=tdtype))
        epoch = torch_epoch(model, torch.optim.SGD(model.parameters(), lr=0.01), batches, warm)
        times = _timed_epochs(epoch, task["repeats"])
    elif kind == "sklearn":
        import warnings

        from sklearn.neural_network import MLPClassifier

        xf = Scaler("unit").apply(x.reshape(len(x), -1), dtype)
        clf = MLPClassifier(hidden_layer_sizes=hidden, solver="sgd", batch_size=bs,
                            learning_rate_init=0.01, momentum=0.0, alpha=0.0,
                            random_state=0, shuffle=True)
        warnings.filterwarnings("ignore")

        def epoch(e, warmup=False):
            if warmup:
                clf.partial_fit(xf[:2000], y[:2000], classes=np.arange(10))
            else:
                clf.partial_fit(xf, y)

        times = _timed_epochs(epoch, task["repeats"])
    else:
        raise ValueError(kind)
    scale = EPOCH / examples
    return {"seconds": statistics.median(times) * scale, "all": [t * scale for t in times],
            "source": source,
            "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, **_blas_info()}


def bareprop_step(hidden, dtype, optimizer: str = "sgd", fuse: bool = True):
    """``step(xb, yb)``: bareprop's TrainStep on 784-hidden-10 (ReLU) with ``optimizer``
    (bench_gemm.OPTIMIZERS), fused where it pays unless ``fuse`` is False."""
    from . import core, optim
    from .bench_gemm import OPTIMIZERS
    from .train.step import TrainStep

    rng = np.random.default_rng(0)
    layers, w = [], 784
    for h in hidden:
        layers += [core.Linear(w, h, rng=rng, dtype=dtype), core.ReLU(inplace=True)]
        w = h
    model = core.Sequential(*layers, core.Linear(w, 10, rng=rng, dtype=dtype))
    cls, hyper = OPTIMIZERS[optimizer]
    lr = 1e-3 if cls == "Adam" else 0.01
    return TrainStep(model, core.CrossEntropyLoss(),
                     getattr(optim, cls)(model.parameters(), lr=lr, **hyper), fuse=fuse)


def bareprop_epoch(hidden, dtype, batches, warm: int, optimizer: str = "sgd"):
    """``epoch(e, warmup=False)`` of ``bareprop_step`` over ``batches``."""
    return _epoch_of(bareprop_step(hidden, dtype, optimizer), batches, warm)


def _lean_weights(hidden, dtype):
    rng = np.random.default_rng(0)
    widths = [784, *hidden, 10]
    ws = [(rng.standard_normal((i, o)) * np.sqrt(2.0 / i)).astype(dtype)   # (in, out)
          for i, o in zip(widths[:-1], widths[1:])]
    return ws, [np.zeros(o, dtype) for o in widths[1:]]


def _lean_epoch(hidden, dtype, batches, warm: int):
    return lean_numpy_epoch(*_lean_weights(hidden, dtype), 0.01, batches, warm)


def paired(steps: dict, make_batches, repeats: int, segment: int = 40) -> dict:
    """Time several ``step(xb, yb)`` functions against each other in one process: each
    epoch is cut into segments of ``segment`` batches and the contenders run one segment
    each in turn, every one on its own Batches from ``make_batches()`` (the same
    batches). A step whose name starts with "bound" is handed (None, y) from an iterator
    that only slices the labels (no gather, no scaling): it times GEMMs alone. Returns
    {"seconds": {name: median s per epoch}, "ratio": {(a, b): median over every segment
    of a's time / b's}, "spread": {(a, b): the quartiles of those segment ratios}}:
    ratios of segments run milliseconds apart, which a machine's drift affects alike."""
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
            "spread": {k: _quartiles(v) for k, v in per_seg.items()}}


def _quartiles(values: list) -> tuple[float, float]:
    """(first, third) quartile: the middle half of a ratio's per-segment readings."""
    if len(values) < 2:
        return values[0], values[0]
    q = statistics.quantiles(values, n=4, method="inclusive")
    return q[0], q[2]


def _paired_run(steps: dict, make_batches, task: dict) -> dict:
    """``paired`` in segments of ~5,120 examples, with seconds scaled to a 60k epoch."""
    got = paired(steps, make_batches, task["repeats"], segment=max(1, 5120 // task["batch"]))
    scale = EPOCH / task["examples"]
    return {"seconds": {k: v * scale for k, v in got["seconds"].items()}, "ratio": got["ratio"],
            "spread": got["spread"]}


def lean_numpy_step(ws, bs_, lr):
    """The leanest plain-NumPy SGD step we know for a ReLU MLP with softmax
    cross-entropy, as a floor for any NumPy trainer on this machine: no modules, no
    checks, no gradient arrays kept, ReLU and the softmax done in place, lr folded into
    the output delta. ``ws[k]`` (in, out) and ``bs_[k]`` (out,) are updated in place.
    Returns ``step(xb, yb)``.
    """
    dtype = ws[0].dtype
    last = len(ws) - 1

    def step(xb, yb):
        acts = [xb]
        for k, (w, b) in enumerate(zip(ws, bs_)):
            z = acts[-1] @ w                                  # (N, out)
            z += b
            if k < last:
                np.maximum(z, 0, out=z)
            acts.append(z)
        d = acts[-1]                                          # logits -> dL/dz in place
        d -= d.max(axis=1, keepdims=True)
        np.exp(d, out=d)
        d /= d.sum(axis=1, keepdims=True)
        d[np.arange(len(yb)), yb] -= 1
        d *= dtype.type(lr / len(yb))                         # lr folded into the delta
        for k in range(last, -1, -1):
            below = None
            if k > 0:
                below = d @ ws[k].T                           # (N, in), with the old W
                below *= acts[k] > 0
            ws[k] -= acts[k].T @ d                            # W -= lr dW
            bs_[k] -= d.sum(axis=0)
            d = below
    return step


def lean_numpy_epoch(ws, bs_, lr, batches, warm=0):
    """``epoch(e, warmup=False)`` of ``lean_numpy_step`` over ``batches``; a warm-up epoch
    stops after ``warm`` batches."""
    return _epoch_of(lean_numpy_step(ws, bs_, lr), batches, warm)


def _epoch_of(step, batches, warm):
    def epoch(e, warmup=False):
        for i, (xb, yb) in enumerate(batches.epoch(max(e, 0))):
            if warmup and i >= warm:
                break
            step(xb, yb)
    return epoch


def _bound_step(hidden, dtype, sizes=()):
    """``step(None, y)`` running just the GEMMs of one step on a batch of len(y), at their
    real shapes and in bareprop's layouts (core/layers.Linear: W (out, in), activations
    as their C-ordered transposes (D, N), except the loss's gradient, (N, C) C-ordered;
    forward y^T = W x^T, dW = dout^T x, dx^T = W^T dout^T; no dx for the first layer),
    into preallocated outputs: the GEMM-only bound. Arrays for the batch sizes in
    ``sizes`` are made up front (others on first use)."""
    rng = np.random.default_rng(0)
    widths = [784, *hidden, 10]
    ws = [rng.random((o, i)).astype(dtype) for i, o in zip(widths[:-1], widths[1:])]
    dws = [np.empty_like(w) for w in ws]
    arrays: dict = {}

    def make(n):
        x = rng.random((n, 784)).astype(dtype)                  # the batch, (N, 784)
        dz = rng.random((n, widths[-1])).astype(dtype)          # the loss's (N, C) gradient
        a = [x.T] + [rng.random((w, n)).astype(dtype) for w in widths[1:]]
        arrays[n] = (a, [None] + [np.empty((w, n), dtype) for w in widths[1:]],
                     a[:-1] + [dz.T])                           # douts: the last is dz^T
    for n in sizes:
        if n:
            make(n)

    def step(_, y):
        n = len(y)
        if n not in arrays:
            make(n)
        a, o, d = arrays[n]                                      # (D, N) each
        for k, w in enumerate(ws):
            np.matmul(w, a[k], out=o[k + 1])                    # forward y^T = W x^T
        for k in range(len(ws) - 1, -1, -1):
            np.matmul(d[k + 1], a[k].T, out=dws[k])             # dW = dout^T x
            if k > 0:
                np.matmul(ws[k].T, d[k + 1], out=o[k])          # dx^T = W^T dout^T
    return step


def _train_rss(task) -> dict:
    """Peak and per-epoch RSS of a real `bareprop train`-style run, and data load time."""
    from . import core, optim
    from .data import Batches, Scaler, load
    from .train import Callback, fit

    def rss_mb():
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20

    t = time.perf_counter()
    ds = load("mnist", verify=True, download_missing=False, progress=False)
    load_s = time.perf_counter() - t
    scaler = Scaler("unit")
    train = Batches(ds.x_train, ds.y_train, 128, scaler, shuffle=True, seed=0)
    test = Batches(ds.x_test, ds.y_test, 1000, scaler)
    model = core.Sequential(core.Flatten(), core.Linear(784, 128, rng=0), core.ReLU(inplace=True),
                            core.Linear(128, 10, rng=1))
    per_epoch = []

    class Rss(Callback):
        needs_grads = False
        def on_epoch_end(self, state, logs):
            per_epoch.append(rss_mb())

    fit(model, core.CrossEntropyLoss(), optim.Adam(model.parameters()), train, task["epochs"],
        test=test, callbacks=[Rss()])
    return {"load_seconds": load_s, "rss_per_epoch_mb": per_epoch,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "dataset_float32_mb": (70_000 * 784 * 4) / 2**20}


# -- parent side ------------------------------------------------------------------------


def flops_per_epoch(hidden) -> float:
    """Forward + backward GEMM FLOPs for 60k examples (the first layer has no dx)."""
    widths = [784, *hidden, 10]
    per_example = sum(2 * i * o for i, o in zip(widths[:-1], widths[1:]))
    return EPOCH * (3 * per_example - 2 * widths[0] * widths[1])


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The benchmark's flags, shared by ``python -m bareprop.bench`` and ``bareprop bench``."""
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--arch", nargs="+", default=list(ARCHS), choices=list(ARCHS))
    p.add_argument("--batch", nargs="+", type=int, default=[32, 128, 1024])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--examples", type=int, default=EPOCH,
                   help="examples timed per epoch (scaled to 60k); fewer = quicker")
    p.add_argument("--no-float64", action="store_true")
    p.add_argument("--no-sklearn", action="store_true")
    p.add_argument("--no-rss", action="store_true")
    p.add_argument("--no-gemms", action="store_true",
                   help="skip the per-GEMM NumPy vs PyTorch table")
    p.add_argument("--no-optimizers", action="store_true",
                   help="skip the fused vs unfused table of each optimizer")
    p.add_argument("--markdown", help="also write the report to this file")
    p.add_argument("--cnn-batch", type=int, default=128,
                   help="batch size of the convolutional rows (bench_cnn.NET)")
    p.add_argument("--no-cnn", action="store_true", help="skip the convolutional rows")
    p.add_argument("--cnn-only", action="store_true", help="only the convolutional rows")
    p.add_argument("--no-profile", action="store_true",
                   help="skip the per-layer profile of the convolutional net")


def run(args: argparse.Namespace) -> int:
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return 0
    return report(args)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="bareprop bench", description=__doc__.splitlines()[0])
    add_arguments(p)
    return run(p.parse_args(argv))


def report(args) -> int:
    lines = []

    def out(s=""):
        print(s, flush=True)
        lines.append(s)

    peak = run_task({"kind": "peak"})
    threads = peak.get("threads") or os.cpu_count()
    cpu = cpu_name()
    out(f"machine: {cpu}, {cpus_text()}; {platform.platform()}")
    out(f"date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; python {platform.python_version()}, "
        f"numpy {np.__version__}; BLAS: {peak.get('blas')}, {threads} threads "
        "(OPENBLAS_CORETYPE/OPENBLAS_L2_SIZE unset)")
    argv = sys.argv[1:][1:] if sys.argv[1:2] == ["bench"] else sys.argv[1:]  # bareprop bench
    out(f"command: python -m bareprop.bench {' '.join(argv)}".rstrip())
    out(f"sgemm peak (2048^3): {peak['float32']:.1f} GFLOP/s float32, {peak['float64']:.1f} float64")
    out(f"bareprop's float32 element-wise work: {peak['kernels']}")
    out()
    out("| net | batch | framework | dtype | s/epoch (median) | x PyTorch (median of rounds) "
        "| GFLOP/s | % of peak | peak RSS MB |")
    out("|---|---:|---|---|---:|---:|---:|---:|---:|")
    base = {"kind": None, "examples": args.examples, "repeats": args.repeats, "threads": threads}
    have_torch, have_sk = available("torch"), available("sklearn") and not args.no_sklearn
    for arch in [] if args.cnn_only else args.arch:
        hidden = ARCHS[arch]
        flops = flops_per_epoch(hidden)
        for bs in args.batch:
            rows = [("bareprop", "float32")]
            if not args.no_float64:
                rows.append(("bareprop", "float64"))
            rows.append(("numpy", "float32"))
            if have_torch:
                rows.append(("torch", "float32"))
            if have_sk:
                rows.append(("sklearn", "float32"))
            results = _rounds(base, rows, hidden, bs)
            torch_r = results.get(("torch", "float32"), {})
            for (kind, dtype), r in results.items():
                if "error" in r:
                    out(f"| {arch} | {bs} | {kind} | {dtype} | error: {r['error']} | | | | |")
                    continue
                s = r["seconds"]
                ratio = "-"
                if "all" in torch_r:          # each round's ratio, then their median
                    ratio = f"{statistics.median(a / b for a, b in zip(r['all'], torch_r['all'])):.2f}"
                gf = flops / s / 1e9
                pk = peak[dtype]
                name = "lean NumPy loop" if kind == "numpy" else kind
                out(f"| {arch} | {bs} | {name} | {dtype} | {s:.3f} | {ratio} | "
                    f"{gf:.1f} | {100 * gf / pk:.0f}% | {r['rss_mb']:.0f} |")
    mlp_archs = {} if args.cnn_only else {a: ARCHS[a] for a in args.arch}
    if mlp_archs:
        report_paired(out, base, mlp_archs, args.batch)
    if mlp_archs and not args.no_gemms:
        from .bench_gemm import report_gemms

        report_gemms(out, run_task, base, mlp_archs, args.batch)
    if mlp_archs and not args.no_optimizers:
        from .bench_gemm import report_optimizers

        report_optimizers(out, run_task, base, mlp_archs, 128)
    if not args.no_cnn:
        from . import bench_cnn

        bench_cnn.report(out, base, args.cnn_batch, profile=not args.no_profile)
    if not args.no_rss and not args.cnn_only:
        r = run_task({"kind": "train-rss", "epochs": 3})
        out()
        if "error" in r:
            out(f"train RSS: error: {r['error']}")
        else:
            limit = 1.5 * r["dataset_float32_mb"] + 150
            out(f"MNIST load (decompress + parse + content SHA-256): {r['load_seconds']:.2f} s")
            out(f"784-128-10 Adam training, 3 epochs: peak RSS {r['peak_rss_mb']:.0f} MB "
                f"(limit 1.5 x {r['dataset_float32_mb']:.0f} MB float32 data + 150 = {limit:.0f} MB); "
                f"RSS after each epoch: {', '.join(f'{v:.0f}' for v in r['rss_per_epoch_mb'])} MB")
    if args.markdown:
        from .archive import atomic_write

        atomic_write(args.markdown, ("\n".join(lines) + "\n").encode())
    return 0


def _rounds(base: dict, rows, hidden, bs) -> dict:
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


#: issue #17's targets for time outside the GEMMs: bareprop's epoch / the GEMM-only bound
BOUND_TARGETS = {"784-128-10": 1.35, "784-800-800-10": 1.10}


def report_paired(out, base, archs: dict, batches) -> None:
    """The table the speed targets are read from: each ratio is the median of the ratios of
    segments run in turn in one process (``paired``)."""
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
                out(f"| {arch} | {bs} | error: {r['error']} | | | | | | |")
                continue
            sec, goal = r["seconds"], BOUND_TARGETS.get(arch)
            target = f" (<= {goal:.2f}: {'met' if r['bareprop/bound'] <= goal else 'NOT met'})" \
                if goal and bs == 128 else ""
            q1, q3 = r["bareprop/bound spread"]
            out(f"| {arch} | {bs} | {sec['bareprop']:.3f} | {sec['lean']:.3f} | "
                f"{sec['bound']:.3f} | {r['bareprop/bound']:.2f}{target} | "
                f"{r['lean/bound']:.2f} | {r['bareprop/lean']:.2f} | {q1:.2f}-{q3:.2f} |")


def cpus_text() -> str:
    """"N cpus", or "N cpus, K usable" when affinity (taskset) confines the process."""
    total = os.cpu_count()
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        return f"{total} cpus"
    return f"{total} cpus" if usable == total else f"{total} cpus, {usable} usable (affinity)"


def cpu_name() -> str:
    """The CPU model from /proc/cpuinfo (or platform.processor()), for result stamps."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


if __name__ == "__main__":
    sys.exit(main())
