"""Measure data-parallel training on this machine: seconds per epoch of 1 process x T
BLAS threads against K ranks x 1 thread (and 1 process x 1 thread, the compute
baseline the scaling model needs), and the time each step spends in the allreduce.

    python benchmarks/mpi_bench.py --out mpi_bench.json          # the full measurement
    python benchmarks/mpi_bench.py --steps 1 --warmup 1 --data-dir SMALL \\
        --examples-per-epoch 600 --out /tmp/smoke.json          # a smoke run (seconds)
    python benchmarks/mpi_model.py mpi_bench.json                # the projection table

Nets: ``best-mlp`` (784-1024-1024-10, batch 256, dropout and augmentation as the preset)
and ``cnn`` (the preset, batch 128), each trained by bp.fit exactly as ``bareprop train``
does (the preset's model, optimizer, dtype, augmentation; no schedule, no evaluation).
Each configuration runs in its own subprocess (``mpirun -n K`` for K > 1) with the BLAS
thread count set before NumPy loads. Timed: ``--steps`` steps after ``--warmup`` steps;
seconds per epoch are EXTRAPOLATED from the mean step time to a 60,000-example epoch
(235 steps at batch 256, 469 at 128), and stated as such in the JSON. The allreduce
time is the slowest rank's. Run it on a quiet machine: other load makes it garbage.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

NETS = {"best-mlp": {"preset": "best-mlp"}, "cnn": {"preset": "cnn"}}
EPOCH = 60_000


def worker(net: str, steps: int, warmup: int, data_dir: str | None) -> dict:
    """One configuration, inside its process (or mpirun job): the rank-0 result row."""
    import numpy as np

    import bareprop as bp
    from bareprop.data import Batches
    from bareprop.distributed import from_environment
    from bareprop.experiment import build_run, make_config

    comm = from_environment()
    explicit = dict(NETS[net], data_dir=data_dir, verify=False)
    cfg = make_config(explicit)
    with tempfile.TemporaryDirectory() as tmp:
        r = build_run(cfg, Path(tmp), quiet=True, comm=comm)      # nothing is written there
    b = cfg.batch_size

    def batches(n_steps: int, seed: int) -> Batches:
        n = n_steps * b
        return Batches(r.train.x[:n], r.train.y[:n], b, r.scaler, cfg.dtype, shuffle=True,
                       seed=seed, augment=r.train.augment)

    fit = dict(seed=cfg.seed, comm=comm)
    bp.fit(r.model, r.loss_fn, r.optimizer, batches(warmup, 1), 1, **fit)
    h = bp.fit(r.model, r.loss_fn, r.optimizer, batches(steps, 2), 1, **fit)
    logs = h.epochs[-1]
    step = logs["seconds"] / steps
    per_epoch = math.ceil(EPOCH / b)
    params = r.model.num_parameters()
    # the allreduce buffer (distributed/gradsync.py): grads, batch-norm statistics, 2 values
    stats = sum(a.size for _, a in r.model.named_buffers() if a.dtype.kind == "f")
    item = np.dtype(cfg.dtype).itemsize
    return {"net": net, "processes": 1 if comm is None else comm.size,
            "blas_threads": int(os.environ.get("OPENBLAS_NUM_THREADS", "0") or 0),
            "batch": b, "dtype": cfg.dtype, "params": params,
            "allreduce_bytes": (params + stats + 2) * item,
            "steps_timed": steps, "warmup_steps": warmup,
            "seconds_per_step": step,
            "allreduce_seconds_per_step": logs.get("allreduce_seconds", 0.0) / steps,
            "steps_per_epoch": per_epoch,
            "seconds_per_epoch_extrapolated": step * per_epoch}


def _run(net, processes, threads, args) -> dict:
    env = dict(os.environ, OPENBLAS_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads),
               MKL_NUM_THREADS=str(threads), OMPI_ALLOW_RUN_AS_ROOT="1",
               OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    env.pop("BAREPROP_NUM_THREADS", None)       # bareprop's own batch threads stay off
    cmd = [sys.executable, __file__, "--worker", net, "--steps", str(args.steps),
           "--warmup", str(args.warmup)] + (["--data-dir", args.data_dir] if args.data_dir else [])
    if processes > 1:
        mpirun = Path(sys.executable).parent / "mpirun"
        cmd = [str(mpirun if mpirun.exists() else "mpirun"), "-n", str(processes),
               "--oversubscribe", "--bind-to", "none", *cmd]
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if r.returncode != 0:
        sys.exit(f"mpi_bench: {' '.join(cmd)} failed:\n{r.stderr[-2000:]}")
    row = json.loads(r.stdout.strip().splitlines()[-1])
    row["command"] = " ".join(cmd)
    return row


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="mpi_bench.json")
    p.add_argument("--nets", nargs="+", default=list(NETS), choices=list(NETS))
    p.add_argument("--ranks", type=int, default=2, help="K of the data-parallel rows")
    p.add_argument("--threads", type=int, default=2, help="BLAS threads of the 1-process row")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--data-dir", help="folder holding mnist/ (default: bareprop's search)")
    p.add_argument("--examples-per-epoch", type=int, default=EPOCH,
                   help="for a smoke run on a small dataset only; the figures use 60,000")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        row = worker(args.worker, args.steps, args.warmup, args.data_dir)
        if int(os.environ.get("OMPI_COMM_WORLD_RANK", "0")) == 0:
            print(json.dumps(row))
        return 0
    from bareprop.bench import cpu_name
    from bareprop.experiment import machine

    rows = []
    for net in args.nets:
        for processes, threads in ((1, args.threads), (1, 1), (args.ranks, 1)):
            row = _run(net, processes, threads, args)
            if args.examples_per_epoch != EPOCH:
                row["steps_per_epoch"] = math.ceil(args.examples_per_epoch / row["batch"])
                row["seconds_per_epoch_extrapolated"] = row["seconds_per_step"] * \
                    row["steps_per_epoch"]
            rows.append(row)
            print(f"{net:9s} {processes} process(es) x {threads} BLAS thread(s): "
                  f"{row['seconds_per_step'] * 1e3:8.1f} ms/step, "
                  f"{row['seconds_per_epoch_extrapolated']:7.1f} s/epoch (extrapolated), "
                  f"allreduce {row['allreduce_seconds_per_step'] * 1e3:6.2f} ms/step", flush=True)
    result = {"what": "bareprop data-parallel step times (benchmarks/mpi_bench.py)",
              "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
              "machine": {**machine(), "cpu": cpu_name()},
              "command": " ".join([Path(sys.executable).name, *sys.argv]),
              "epoch_examples": args.examples_per_epoch,
              "note": "seconds_per_epoch_extrapolated = seconds_per_step (mean of steps_timed "
                      "steps after warmup_steps) x steps_per_epoch",
              "rows": rows}
    Path(args.out).write_text(json.dumps(result, indent=1))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
