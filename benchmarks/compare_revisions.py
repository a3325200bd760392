"""Did a change make training faster? The same MLP epochs timed under two revisions of
bareprop, alternating, on this machine, in one run.

Each revision is checked out into a temporary git worktree (the working tree itself
with ``--head .``); every timing is a fresh subprocess that imports bareprop from that
tree's ``src``, trains ``--warmup`` batches, then times whole 60k-example MNIST epochs
(random pixels if MNIST is not found). The runs alternate base, head, base, head, ... so
a machine that slows down or speeds up during the run affects both sides alike; the
table gives the median seconds per epoch of each side and the median of the per-pair
ratios head / base (below 1: head is faster).

    python benchmarks/compare_revisions.py --base 89ed8b9^ --head . \\
        --arch 784-128-10 784-800-800-10 --optimizer sgd momentum nesterov adam
    python benchmarks/compare_revisions.py --arch cnn --examples 6000 --optimizer momentum
    python benchmarks/compare_revisions.py --dtype float64 --arch 784-800-800-10

OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE are unset in the subprocesses (they force slower
kernels on some processors); the BLAS kernel is printed.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
#: the benchmark's reference CNN (bareprop bench --cnn-only), "--arch cnn" here
CNN = ("conv(32,3) relu maxpool(2) conv(64,3) relu maxpool(2) flatten linear(128) relu "
       "linear(10)")
OPTIMIZERS = {"sgd": ("SGD", {"lr": 0.01}), "momentum": ("SGD", {"lr": 0.01, "momentum": 0.9}),
              "nesterov": ("SGD", {"lr": 0.01, "momentum": 0.9, "nesterov": True}),
              "adam": ("Adam", {"lr": 1e-3})}

WORKER = r"""
import json, sys, time
import numpy as np
import bareprop as bp
from bareprop.data import Batches, Scaler
from bareprop.train.step import TrainStep
task = json.loads(sys.argv[1])
try:
    ds = bp.data.load("mnist", verify=False, download_missing=False, progress=False)
    x, y, source = ds.x_train, ds.y_train, "MNIST"
except Exception:
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 256, (60000, 28, 28), dtype=np.uint8), rng.integers(0, 10, 60000)
    source = "random pixels (MNIST not found)"
n, dtype = task["examples"], task["dtype"]
if task["cnn"]:          # the benchmark's reference CNN, from the --arch grammar
    from bareprop.experiment.arch import build
    model = build(task["cnn"], (1, 28, 28), dtype=dtype)
    x = x.reshape(len(x), 1, 28, 28)
else:
    rng = np.random.default_rng(0)
    layers, w = [], 784
    for h in task["hidden"]:
        layers += [bp.Linear(w, h, rng=rng, dtype=dtype), bp.ReLU(inplace=True)]
        w = h
    model = bp.Sequential(*layers, bp.Linear(w, 10, rng=rng, dtype=dtype))
    x = x.reshape(len(x), -1)
batches = Batches(x[:n], y[:n], task["batch"], Scaler("unit"), dtype, shuffle=True, seed=0)
cls, hyper = task["optimizer"]
step = TrainStep(model, bp.CrossEntropyLoss(), getattr(bp.optim, cls)(model.parameters(), **hyper))
for i, (xb, yb) in enumerate(batches.epoch(0)):
    if i >= task["warmup"]:
        break
    step(xb, yb)
times = []
for e in range(task["epochs"]):
    t = time.perf_counter()
    for xb, yb in batches.epoch(e + 1):
        step(xb, yb)
    times.append(time.perf_counter() - t)
try:
    from threadpoolctl import threadpool_info
    blas = [f"{i.get('internal_api')} {i.get('version')} {i.get('architecture')}"
            for i in threadpool_info() if i.get("user_api") == "blas"][:1]
except ImportError:
    blas = []
print(json.dumps({"seconds": min(times) * 60000 / n, "blas": blas[0] if blas else "unknown",
                  "source": source}))
"""


def checkout(rev: str, keep: list) -> str:
    """A tree holding ``rev`` ('.' is the working tree as it is)."""
    if rev == ".":
        return ROOT
    path = tempfile.mkdtemp(prefix="bareprop-rev-")
    subprocess.run(["git", "-C", ROOT, "worktree", "add", "--detach", "-q", path, rev], check=True)
    keep.append(path)
    return path


def time_epoch(tree: str, task: dict) -> dict:
    env = {k: v for k, v in os.environ.items()
           if k not in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "PYTHONPATH")}
    env["PYTHONPATH"] = os.path.join(tree, "src")
    if env.get("BAREPROP_DATA_DIR"):     # the worker runs in the tree: keep the path's meaning
        env["BAREPROP_DATA_DIR"] = os.path.abspath(env["BAREPROP_DATA_DIR"])
    r = subprocess.run([sys.executable, "-c", WORKER, json.dumps(task)], capture_output=True,
                       text=True, env=env, cwd=tree, timeout=1800)
    if r.returncode != 0:
        raise SystemExit(f"the worker failed in {tree}: "
                         f"{(r.stderr.strip().splitlines() or ['?'])[-1]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--base", default="HEAD", help="git revision to compare against")
    p.add_argument("--head", default=".", help="git revision, or '.' for the working tree")
    p.add_argument("--arch", nargs="+", default=["784-128-10"])
    p.add_argument("--batch", nargs="+", type=int, default=[128])
    p.add_argument("--optimizer", nargs="+", default=["sgd"], choices=list(OPTIMIZERS))
    p.add_argument("--pairs", type=int, default=5, help="alternating base/head runs per row")
    p.add_argument("--epochs", type=int, default=1, help="timed epochs per run (the best counts)")
    p.add_argument("--warmup", type=int, default=20, help="batches before the timing")
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    p.add_argument("--examples", type=int, default=60000,
                   help="examples a timed epoch takes (seconds are scaled to 60k)")
    args = p.parse_args(argv)
    from bareprop.bench import cpu_name, cpus_text

    keep: list = []
    try:
        trees = {"base": checkout(args.base, keep), "head": checkout(args.head, keep)}
        revs = {k: subprocess.run(["git", "-C", t, "rev-parse", "--short", "HEAD"],
                                  capture_output=True, text=True).stdout.strip()
                for k, t in trees.items()}
        dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True).stdout.strip()
        if args.head == "." and dirty:
            revs["head"] += " + uncommitted changes"
        rows, blas, source = [], None, None
        for arch in args.arch:
            hidden = [] if arch == "cnn" else [int(h) for h in arch.split("-")[1:-1]]
            for bs in args.batch:
                for opt in args.optimizer:
                    task = {"hidden": hidden, "batch": bs, "optimizer": OPTIMIZERS[opt],
                            "epochs": args.epochs, "warmup": args.warmup,
                            "dtype": args.dtype, "examples": args.examples,
                            "cnn": CNN if arch == "cnn" else None}
                    got = {"base": [], "head": []}
                    for _ in range(args.pairs):
                        for side in ("base", "head"):
                            r = time_epoch(trees[side], task)
                            got[side].append(r["seconds"])
                            blas, source = r["blas"], r["source"]
                    ratio = statistics.median(h / b for b, h in zip(got["base"], got["head"]))
                    rows.append((arch, bs, opt, statistics.median(got["base"]),
                                 statistics.median(got["head"]), ratio))
                    print(f"  {arch} b{bs} {opt}: {rows[-1][3]:.3f} -> {rows[-1][4]:.3f} s "
                          f"({ratio:.2f})", file=sys.stderr, flush=True)
    finally:
        for path in keep:
            subprocess.run(["git", "-C", ROOT, "worktree", "remove", "--force", path])
    print(f"machine: {cpu_name()}, {cpus_text()}; python {platform.python_version()}; "
          f"BLAS: {blas}")
    print(f"date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; data: {source}")
    print(f"command: python benchmarks/compare_revisions.py {' '.join(sys.argv[1:])}")
    print(f"base: {args.base} ({revs['base']}); head: {args.head} ({revs['head']})")
    print()
    print(f"dtype: {args.dtype}; examples timed per epoch: {args.examples:,} (scaled to 60k)")
    print()
    print("| net | batch | optimizer | base s/epoch | head s/epoch | head / base (median of pairs) |")
    print("|---|---:|---|---:|---:|---:|")
    for arch, bs, opt, b, h, ratio in rows:
        print(f"| {arch} | {bs} | {opt} | {b:.3f} | {h:.3f} | {ratio:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
