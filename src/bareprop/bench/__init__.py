"""Speed benchmark: bareprop vs PyTorch eager (and scikit-learn) on the same batches.

Every measurement runs in its own subprocess (so peak RSS is per row) with
OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE unset (they force slower kernels on some CPUs);
the BLAS kernel and thread count are read with threadpoolctl and printed.
Times are seconds per 60,000-example epoch (timed over ``examples`` examples and scaled
to 60k when fewer are used), the median of ``repeats`` rounds: in each round every row's
subprocess times one epoch, rows in turn, and "x PyTorch" is the median of the rounds'
ratios (PyTorch's threads cannot share a process with OpenBLAS's without both spinning).
The "lean NumPy loop" row is a hand-fused plain-NumPy trainer for the same net
(``lean_numpy_step``): what NumPy itself can reach here, framework cost aside.
The speed targets (time outside the GEMMs, bareprop against that loop) are read from
the paired table: bareprop, the lean loop and the GEMM-only bound (``bound_step``) run
in alternating segments of ~5,000 examples in one process (``paired``), and each ratio
is the median of the per-segment ratios, so the machine's drift between separate rows
does not enter it. Measured runs and what they say: docs/benchmarks.md.

    python -m bareprop.bench            # or: bareprop bench

The package, one concern a module:

- ``kit``: what every row shares (data, machine stamp, the epoch loop, subprocesses);
- ``mlp``: the MLP contenders as steps (bareprop, the lean loop, the GEMM-only bound);
- ``pairing``: contenders timed against each other segment by segment;
- ``cnn``: the convolutional rows; ``gemm``: the per-GEMM and per-optimizer tables;
- ``nets``: any ``--arch`` net (the LSTM, the vision transformer) against its PyTorch twin;
- ``tasks``: the worker side (one row per subprocess); ``tables``: the report;
- ``command``: the flags, ``main`` and ``run``.

benchmarks/*.py build on the names exported here.
"""
from __future__ import annotations

from .cnn import NET, build_bareprop, build_torch, gemm_bound_epoch, gemm_shapes
from .command import DESCRIPTION, add_arguments, main, run
from .gemm import gemm_rows
from .kit import (EPOCH, available, blas_info, clean_env, cpu_name, cpus_text, epoch_of,
                  load_data, median_seconds, run_task, timed_epochs, torch_epoch, torch_step)
from .mlp import (ARCHS, OPTIMIZERS, bareprop_epoch, bareprop_step, bound_step,
                  flops_per_epoch, lean_numpy_epoch, lean_numpy_step, lean_weights)
from .pairing import paired, quartiles
from .tables import BOUND_TARGETS, report
from .tasks import worker

__all__ = [
    "ARCHS", "BOUND_TARGETS", "DESCRIPTION", "EPOCH", "NET", "OPTIMIZERS",
    "add_arguments", "available", "bareprop_epoch", "bareprop_step", "blas_info",
    "bound_step", "build_bareprop", "build_torch", "clean_env", "cpu_name", "cpus_text",
    "epoch_of", "flops_per_epoch", "gemm_bound_epoch", "gemm_rows", "gemm_shapes",
    "lean_numpy_epoch", "lean_numpy_step", "lean_weights", "load_data", "main",
    "median_seconds", "paired", "quartiles", "report", "run", "run_task", "timed_epochs",
    "torch_epoch", "torch_step", "worker",
]
