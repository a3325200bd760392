"""``bareprop lr-find [--preset P | --arch ...] [train flags]``: the learning-rate range
test (train/lr_find.py) on the model, optimizer and training data a ``bareprop train``
with the same flags would use (experiment.build_run), from the same initial weights; writes lr_find.png, prints
the suggestion and the ``bareprop train`` command that trains with it."""
from __future__ import annotations

import argparse
import shlex
import tempfile
import time
from pathlib import Path

from ..errors import ConfigError
from .args import add_config_arguments, explicit_settings


def add_parser(sub) -> None:
    p = sub.add_parser("lr-find", help="find a learning rate by the range test (Smith 2017)",
                       description="Train from the initial weights with a learning rate "
                                   "rising exponentially from --start to --end over at "
                                   "most one epoch; plot the loss against it and suggest "
                                   "one. Every train flag means what it means for train.",
                       argument_default=argparse.SUPPRESS)
    p.add_argument("--start", type=float, default=1e-7,
                   help="the first learning rate (default: 1e-7)")
    p.add_argument("--end", type=float, default=10.0,
                   help="the last learning rate (default: 10)")
    p.add_argument("--steps", type=int, default=100,
                   help="batches, at most one epoch's (default: 100, as fastai and Lightning)")
    p.add_argument("--plot", default="lr_find.png",
                   help="where the plot goes (default: lr_find.png, or inside --out)")
    add_config_arguments(p, without=("epochs",))
    p.set_defaults(run=run)


def train_command(explicit: dict, lr: float) -> str:
    """The ``bareprop train`` command of the flags typed here, with ``--lr`` set."""
    from ..experiment.flags import command_words

    kept = {k: v for k, v in explicit.items() if k not in ("lr", "out")}
    return shlex.join(command_words(kept) + ["--lr", f"{lr:.3g}"])


def run(args: argparse.Namespace) -> int:
    from ..experiment import build_run, check_flags, make_config
    from ..runs.lock import claim_run_folder
    from ..train.lr_find import check_range, lr_find

    explicit = explicit_settings(args)
    cfg = make_config(explicit)
    check_flags(explicit, cfg)
    if args.steps is not None and args.steps < 2:
        raise ConfigError(f"--steps must be at least 2, got {args.steps}")
    check_range(args.start, args.end)            # before a folder is claimed or data read
    plot = Path(args.plot)
    if "out" in explicit and not plot.is_absolute():
        out, lock = claim_run_folder(cfg.out)          # a folder of its own, not a run's
        plot = out / plot
    else:
        lock = None
    try:
        t0 = time.perf_counter()
        # train's own Run (model, optimizer, loss, the augmented training batches without
        # the held-out part), built in a folder of its own that nothing is kept from
        with tempfile.TemporaryDirectory() as tmp:
            r = build_run(cfg, Path(tmp), quiet=getattr(args, "quiet", False))
        result = lr_find(r.model, r.loss_fn, r.optimizer, r.train, start=args.start,
                         end=args.end, steps=args.steps, seed=cfg.seed)
        seconds = time.perf_counter() - t0
        drawn = result.plot(plot, title=f"{cfg.dataset}, preset {cfg.preset}: range test")
    finally:
        if lock is not None:
            lock.release()
    stop = "the loss diverged" if result.diverged else "the end of the range"
    print(f"{len(result.lrs)} batches, lr {result.lrs[0]:.2g} .. {result.lrs[-1]:.2g} "
          f"(stopped at {stop}), {seconds:.1f} s")
    if result.suggestion is None:
        print("no suggestion: the curve is too short (give more --steps, or a wider "
              "--start/--end range)")
    else:
        print(f"suggested learning rate: {result.suggestion:.3g} (steepest descent of the "
              "smoothed loss)")
        print(f"train with it: {train_command(explicit, result.suggestion)}")
    if drawn:
        print(f"wrote {plot}")
    return 0
