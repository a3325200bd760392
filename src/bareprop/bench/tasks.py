"""The worker side of the benchmark: ``python -m bareprop.bench --worker '<task JSON>'``
runs ``worker(task)`` in a fresh process and prints its JSON answer (kit.run_task reads
it). A task's "kind" picks the row: the MLP rows (mlp.py), the CNN rows ("cnn-*",
cnn.py), the named nets' rows ("net-*", nets.py), the per-GEMM table ("gemms", gemm.py), the machine's matmul peak ("peak") and
the memory of a real training run ("train-rss")."""
from __future__ import annotations

import os
import statistics
import time

import numpy as np

from .cnn import cnn_row
from .gemm import gemm_rows
from .kit import blas_info, peak_rss_mb
from .mlp import mlp_row
from .nets import net_row


def worker(task: dict) -> dict:
    """The answer of one benchmark row, as a JSON-able dict."""
    kind = task["kind"]
    if kind.startswith("cnn-"):
        return cnn_row(task)
    if kind.startswith("net-"):
        return net_row(task)
    if kind == "peak":
        return peak()
    if kind == "train-rss":
        return train_rss(task)
    if kind == "gemms":
        return {"rows": gemm_rows(tuple(task["hidden"]), task["batch"], task["threads"]),
                **blas_info()}
    return mlp_row(task)


def peak() -> dict:
    """GFLOP/s of a 2048^3 matmul in float32 and float64 (median of 5, after one), the
    BLAS stamp, and what bareprop's float32 element-wise work runs on."""
    from ..fast import kernels        # this package's one use of the kernel module

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
    return {**res, **blas_info(), "kernels": kernels.describe()}


def train_rss(task) -> dict:
    """Peak and per-epoch RSS of a real `bareprop train`-style run (784-128-10, Adam,
    ``task["epochs"]`` epochs of MNIST with a test pass), and the data's load time."""
    from .. import core, optim
    from ..data import Batches, Scaler, load
    from ..train import Callback, fit

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
        test=test, callbacks=[Rss()], verbose=False)
    return {"load_seconds": load_s, "rss_per_epoch_mb": per_epoch,
            "peak_rss_mb": peak_rss_mb(), "dataset_float32_mb": (70_000 * 784 * 4) / 2**20}
