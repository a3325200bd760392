"""What every row of the benchmark shares: the data, the machine's stamp (CPU, BLAS and
its threads), the one epoch loop and its timing, the PyTorch step, markdown rows, and
running one row in a clean subprocess (``python -m bareprop.bench --worker``).

Each row runs in a subprocess of its own so that its peak RSS is its own and PyTorch's
threads never share a process with OpenBLAS's (both would spin). The subprocess runs
with OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE unset: they force slower kernels on some CPUs.

Not here: the rows (mlp.py, cnn.py, gemm.py) and the report's tables (tables.py).
"""
from __future__ import annotations

import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

import numpy as np

#: examples in an MNIST training epoch: every time is scaled to one such epoch
EPOCH = 60_000


def load_data(examples: int):
    """(x, y, source): the first ``examples`` MNIST training images (N, 28, 28) uint8 and
    labels, or random pixels of the same shape when MNIST is not on disk (they time the
    same); ``source`` says which ("MNIST" or "random")."""
    from ..data import load

    try:
        ds = load("mnist", verify=False, download_missing=False, progress=False)
        return ds.x_train[:examples], ds.y_train[:examples], "MNIST"
    except Exception:  # no local MNIST: random pixels time the same
        rng = np.random.default_rng(0)
        x = rng.integers(0, 256, (examples, 28, 28), dtype=np.uint8)
        return x, rng.integers(0, 10, examples), "random"


def blas_info() -> dict:
    """{"blas": "<library> <version> <kernel>", "threads": n} of NumPy's BLAS, read with
    threadpoolctl (``{"blas": "unknown ..."}`` without it)."""
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


def epoch_of(step, batches, warm: int = 0):
    """``epoch(e, warmup=False)``: ``step(xb, yb)`` on every batch of ``batches.epoch(e)``
    (epoch 0 for e < 0); a warm-up epoch stops after ``warm`` batches. The one epoch loop
    of every contender that trains by steps (bareprop, the lean loop, PyTorch, the CNN)."""
    def epoch(e, warmup=False):
        for i, (xb, yb) in enumerate(batches.epoch(max(e, 0))):
            if warmup and i >= warm:
                break
            step(xb, yb)
    return epoch


def timed_epochs(epoch, repeats: int) -> list[float]:
    """Wall seconds of ``repeats`` epochs of ``epoch(e, warmup=False)``, after a warm-up."""
    epoch(-1, warmup=True)
    out = []
    for r in range(repeats):
        t = time.perf_counter()
        epoch(r)
        out.append(time.perf_counter() - t)
    return out


def peak_rss_mb() -> float:
    """This process's peak resident memory so far, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def epoch_result(times: list[float], examples: int, source: str) -> dict:
    """A row's answer: its epochs' times scaled from ``examples`` to a 60k epoch ("all")
    and their median ("seconds"), the data source, peak RSS and the BLAS stamp."""
    scale = EPOCH / examples
    return {"seconds": statistics.median(times) * scale, "all": [t * scale for t in times],
            "source": source, "rss_mb": peak_rss_mb(), **blas_info()}


def median_seconds(fn, calls: int) -> float:
    """The median wall time of ``calls`` calls of ``fn()``, after one untimed call."""
    fn()
    ts = []
    for _ in range(calls):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)


def torch_step(model, opt):
    """``step(xb, yb)``: one PyTorch eager training step of ``model`` with ``opt`` and
    cross-entropy on NumPy batches (shared memory, no copy)."""
    import torch

    loss_fn = torch.nn.CrossEntropyLoss()

    def step(xb, yb):
        loss = loss_fn(model(torch.from_numpy(xb)), torch.from_numpy(yb))
        opt.zero_grad()
        loss.backward()
        opt.step()
    return step


def torch_epoch(model, opt, batches, warm: int):
    """``epoch(e, warmup=False)`` of ``torch_step(model, opt)`` over ``batches``."""
    return epoch_of(torch_step(model, opt), batches, warm)


def md_row(*cells, width: int = 0) -> str:
    """A markdown table row of ``cells``, padded with empty cells to ``width``."""
    cells = [str(c) for c in cells] + [""] * (width - len(cells))
    return "|" + "|".join(f" {c} " if c else " " for c in cells) + "|"


def clean_env() -> dict:
    """This process's environment without the OpenBLAS variables that force slow kernels."""
    env = dict(os.environ)
    env.pop("OPENBLAS_CORETYPE", None)
    env.pop("OPENBLAS_L2_SIZE", None)
    return env


def run_task(task: dict, timeout: float = 1800) -> dict:
    """Run one row (``task``, a JSON-able dict with its "kind") in a fresh
    ``python -m bareprop.bench --worker`` and return its JSON answer, or
    {"error": its last line of stderr}."""
    r = subprocess.run([sys.executable, "-m", "bareprop.bench", "--worker", json.dumps(task)],
                       capture_output=True, text=True, env=clean_env(), timeout=timeout)
    if r.returncode != 0:
        return {"error": (r.stderr.strip().splitlines() or ["failed"])[-1]}
    return json.loads(r.stdout.strip().splitlines()[-1])


def available(module: str) -> bool:
    """Whether ``module`` can be imported here (without importing it)."""
    import importlib.util

    return importlib.util.find_spec(module) is not None
