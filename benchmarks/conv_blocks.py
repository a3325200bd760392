"""The compiled convolution blocks against the reference path, step by step, in one process.

For each model (the benchmark CNN, the ``cnn`` preset's, or any ``--arch``) a training
step (TrainStep, as ``bareprop train`` runs it, Adam) on one fixed batch of random
(N, 1, 28, 28) images: the planned step with the compiled blocks (fast/conv.py) and the
same model on the reference path (``BAREPROP_ACCEL=numpy``), alternating rounds of
``--steps`` steps so that both see the same machine state. Printed: the median ms per
step of each and the median of the per-round ratios, and where the compiled step's time
goes (the training step's units, timed as bench.cnn.Profile does). One more variant
runs the exact columns' im2col/col2im generic instead of compiled for each layer's sizes
(fast/colkernels.py), so the last ratio is what those compiled copies give.

    python benchmarks/conv_blocks.py
    python benchmarks/conv_blocks.py --models cnn --rounds 7 --steps 10
"""
from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time

import numpy as np

from bareprop import core, optim
from bareprop.bench import cpu_name
from bareprop.bench.kit import blas_info
from bareprop.bench.cnn import NET, Profile
from bareprop.experiment import make_config
from bareprop.experiment.build import build_model
from bareprop.fast import colkernels, convsplit, kernels
from bareprop.train.step import TrainStep

MODELS = {"bench-cnn": dict(arch=NET), "cnn": dict(preset="cnn")}


def make_step(spec: dict, accel: str) -> TrainStep:
    """A TrainStep for the model ``spec`` names, planned under BAREPROP_ACCEL ``accel``."""
    kernels.use(accel)
    preset = spec.get("preset")
    explicit = {} if preset else {"arch": spec["arch"], "init": "kaiming_uniform"}
    model = build_model(make_config(explicit, preset=preset), (1, 28, 28), 10)
    step = TrainStep(model, core.CrossEntropyLoss(), optim.Adam(model.parameters(), lr=1e-3))
    kernels.use("auto")
    return step


def time_steps(step, x, y, n: int, split: bool, sized: bool = True) -> float:
    """Seconds per step of ``n`` steps; ``split=False`` keeps every block on one thread
    and BLAS at its own threads (convsplit.hold a no-op: the block as it ran before);
    ``sized=False`` runs the generic im2col/col2im on every layer."""
    hold, threshold = convsplit.hold, colkernels.SIZED_VALUES
    convsplit.hold = hold if split else (lambda dtype: contextlib.nullcontext())
    colkernels.SIZED_VALUES = threshold if sized else 1 << 62
    try:
        t = time.perf_counter()
        for _ in range(n):
            step(x, y)
        return (time.perf_counter() - t) / n
    finally:
        convsplit.hold, colkernels.SIZED_VALUES = hold, threshold


#: the variants timed: (name, BAREPROP_ACCEL, batch split over BLAS's threads, im2col and
#: col2im compiled for each layer's sizes)
VARIANTS = (("reference", "numpy", False, True), ("compiled, one thread", "auto", False, True),
            ("compiled, batch split, generic copies", "auto", True, False),
            ("compiled, batch split", "auto", True, True))
#: the ratios printed: (name, numerator variant, denominator variant)
RATIOS = (("compiled / reference", 1, 0), ("split / one thread", 3, 1),
          ("sized copies / generic", 3, 2))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--rounds", type=int, default=5, help="alternating rounds (default 5)")
    p.add_argument("--steps", type=int, default=10, help="steps per round (default 10)")
    args = p.parse_args(argv)
    if kernels.compiled() is None:
        raise SystemExit("numba is not installed: pip install -e '.[fast]'")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((args.batch, 1, 28, 28)).astype(np.float32)
    y = rng.integers(0, 10, args.batch)
    print(f"machine: {cpu_name()}; BLAS: {blas_info()}; "
          f"date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print("command: python benchmarks/conv_blocks.py " + " ".join(argv if argv is not None
                                                                 else sys.argv[1:]))
    print(f"batch {args.batch}, {args.rounds} alternating rounds of {args.steps} steps; "
          "ratios: median of the per-round ratios\n")
    print("| model | " + " | ".join(f"{v[0]} ms/step" for v in VARIANTS) + " | "
          + " | ".join(r[0] for r in RATIOS) + " |")
    print("|---|" + "---:|" * (len(VARIANTS) + len(RATIOS)))
    profiles = {}
    for name in args.models:
        steps = [make_step(MODELS[name], v[1]) for v in VARIANTS]
        for s, v in zip(steps, VARIANTS):
            time_steps(s, x, y, 2, v[2], v[3])                    # warm: buffers, kernels
        times = [[] for _ in VARIANTS]
        for _ in range(args.rounds):
            for t, s, v in zip(times, steps, VARIANTS):
                t.append(time_steps(s, x, y, args.steps, v[2], v[3]))
        ms = [statistics.median(t) * 1e3 for t in times]
        ratios = [statistics.median(a / b for a, b in zip(times[i], times[j]))
                  for _, i, j in RATIOS]
        print(f"| {name} | " + " | ".join(f"{m:.1f}" for m in ms)
              + " | " + " | ".join(f"{r:.2f}" for r in ratios) + " |")
        prof = Profile(steps[3])
        time_steps(steps[3], x, y, args.steps, True)
        profiles[name] = {k: v / args.steps * 1e3 for k, v in prof.seconds.items()}
    for name, seconds in profiles.items():
        print(f"\nWhere the compiled, split `{name}` step goes (ms per step):\n")
        print("| unit | phase | ms |")
        print("|---|---|---:|")
        for key, ms in sorted(seconds.items(), key=lambda kv: -kv[1]):
            unit, phase = key.rsplit(" ", 1)
            print(f"| {unit} | {phase} | {ms:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
