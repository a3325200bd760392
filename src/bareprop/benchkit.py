"""What every row of the benchmark shares: the data, the BLAS stamp, timed epochs, the
PyTorch loop, and running one row in a clean subprocess (``python -m bareprop.bench
--worker``). Its own module so that bench.py (the MLP rows and the report) and
bench_cnn.py (the convolutional rows) both import it and not each other."""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np

EPOCH = 60_000


def _data(examples: int):
    from .data import load

    try:
        ds = load("mnist", verify=False, download_missing=False, progress=False)
        x, y = ds.x_train[:examples], ds.y_train[:examples]
        source = "MNIST"
    except Exception:  # no local MNIST: random pixels time the same
        rng = np.random.default_rng(0)
        x = rng.integers(0, 256, (examples, 28, 28), dtype=np.uint8)
        y = rng.integers(0, 10, examples)
        source = "random"
    return x, y, source


def _blas_info() -> dict:
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return {"blas": "unknown (pip install threadpoolctl)"}
    info = [i for i in threadpool_info() if i.get("user_api") == "blas"]
    if not info:
        return {"blas": "none found"}
    i = info[0]
    return {"blas": f"{i.get('internal_api')} {i.get('version')} {i.get('architecture', '')}",
            "threads": i.get("num_threads")}


def _timed_epochs(step_epoch, repeats: int) -> list[float]:
    step_epoch(-1, warmup=True)
    out = []
    for r in range(repeats):
        t = time.perf_counter()
        step_epoch(r)
        out.append(time.perf_counter() - t)
    return out


def median_seconds(fn, calls: int) -> float:
    """The median wall time of ``calls`` calls of ``fn()``, after one untimed call."""
    fn()
    ts = []
    for _ in range(calls):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)


def torch_epoch(model, opt, batches, warm):
    """``epoch(e, warmup=False)`` training a torch ``model`` with ``opt`` and cross-entropy
    on ``batches`` (a warm-up epoch stops after ``warm`` batches)."""
    import torch

    loss_fn = torch.nn.CrossEntropyLoss()

    def epoch(e, warmup=False):
        for i, (xb, yb) in enumerate(batches.epoch(max(e, 0))):
            if warmup and i >= warm:
                break
            loss = loss_fn(model(torch.from_numpy(xb)), torch.from_numpy(yb))
            opt.zero_grad()
            loss.backward()
            opt.step()
    return epoch


def _clean_env() -> dict:
    env = dict(os.environ)
    env.pop("OPENBLAS_CORETYPE", None)
    env.pop("OPENBLAS_L2_SIZE", None)
    return env


def run_task(task: dict, timeout: float = 1800) -> dict:
    r = subprocess.run([sys.executable, "-m", "bareprop.bench", "--worker", json.dumps(task)],
                       capture_output=True, text=True, env=_clean_env(), timeout=timeout)
    if r.returncode != 0:
        return {"error": (r.stderr.strip().splitlines() or ["failed"])[-1]}
    return json.loads(r.stdout.strip().splitlines()[-1])


def available(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None
