"""How trials share a machine: the same unpruned sweep run with one trial at a time
(all cores' BLAS threads), with --jobs J capped at cores // J threads each (what
``bareprop sweep`` does), and with J trials each asking for every core's threads (the
oversubscription the cap avoids). Prints a table: wall time, trial-epochs, seconds per
trial-epoch, and the speed-up over one at a time.

    unset OPENBLAS_CORETYPE OPENBLAS_L2_SIZE
    BAREPROP_DATA_DIR=../shared/data python benchmarks/sweep_bench.py [--trials 6] [--epochs 4]

The three sweeps draw the same trials (the same seed, --jobs 1's order differs from the
others' only in which run at once; with no pruning each trial trains every epoch).
"""
from __future__ import annotations

import argparse
import platform
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from bareprop.sweep.optuna_engine import Loop
from bareprop.sweep.plan import new_record, plan
from bareprop.sweep.trials import cores

SPACE = ["lr=log(3e-4,3e-2)", "dropout=uniform(0,0.5)", "hidden=int(64,512,log)"]


def one(tmp: Path, name: str, jobs: int, threads: int | None, trials: int, epochs: int):
    sw = plan(tmp / name, {"preset": "default", "dataset": "fashion-mnist", "epochs": epochs},
              SPACE, trials, jobs=jobs, prune="none", seed=0)
    if threads is not None:
        sw.threads = threads
    sw.folder.mkdir(parents=True)
    record = new_record(sw)
    t0 = time.perf_counter()
    Loop(sw, record, lambda row: None, lambda: None).run()
    wall = time.perf_counter() - t0
    spent = sum(len(t["val_accuracy"]) for t in record["trials"])
    return wall, spent, sw.threads


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=6)
    ap.add_argument("--epochs", type=int, default=4)
    args = ap.parse_args()
    n = cores()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        base = None
        for label, jobs, threads in (("--jobs 1", 1, None),
                                     (f"--jobs {n} (capped)", n, None),
                                     (f"--jobs {n}, {n} threads each", n, n)):
            wall, spent, used = one(Path(tmp), f"s{len(rows)}", jobs, threads, args.trials,
                                    args.epochs)
            base = base or wall
            rows.append((label, used, wall, spent, wall / spent, base / wall))
    print(f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, {platform.processor() or platform.machine()}, "
          f"{n} cores; {args.trials} trials x {args.epochs} epochs, default preset MLP on "
          "fashion-mnist, no pruning")
    print(f"{'sweep':<26}{'threads':>8}{'wall s':>9}{'trial-epochs':>14}{'s/trial-epoch':>15}"
          f"{'speed-up':>10}")
    for label, used, wall, spent, per, speed in rows:
        print(f"{label:<26}{used:>8}{wall:>9.1f}{spent:>14}{per:>15.2f}{speed:>10.2f}")


if __name__ == "__main__":
    main()
