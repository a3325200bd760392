"""The benchmark's command line, shared by ``python -m bareprop.bench`` and
``bareprop bench``: its flags (each with its help and default), how long a run takes,
and ``main``/``run``. A hidden ``--worker '<task JSON>'`` runs one row (tasks.py)."""
from __future__ import annotations

import argparse
import json

from .kit import EPOCH
from .mlp import ARCHS
from .nets import DEFAULT_NETS, NETS
from .tables import report
from .tasks import worker

#: the command's one-line description (the package docstring's first line)
DESCRIPTION = "Speed benchmark: bareprop vs PyTorch eager (and scikit-learn) on the same batches."

#: how long a run takes, estimated from the runs recorded in docs/benchmarks.md (2-core
#: VMs): not measured by the command itself
DURATION = ("How long: approximate, from the runs in docs/benchmarks.md on a 2-core machine. "
            "The defaults take roughly 10-25 minutes (whole 60,000-example epochs, "
            "3 repeats, both nets, 3 batch sizes, float64 rows, the CNN rows with a profile "
            "and a 3-epoch training run for memory); most of it is the "
            "784-800-800-10 rows and the CNN's. A quick look: "
            "--examples 6400 --repeats 1 --no-cnn, about a minute or two. Times scale "
            "with --examples and --repeats.")

DEFAULT_BATCHES = [32, 128, 1024]


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The benchmark's flags on ``p``, and its description and duration note."""
    p.description = p.description or DESCRIPTION
    p.epilog = DURATION
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--arch", nargs="+", default=list(ARCHS), choices=list(ARCHS),
                   metavar="NET", help=f"the MLPs to time, of {', '.join(ARCHS)} "
                   f"(default: {' '.join(ARCHS)})")
    p.add_argument("--batch", nargs="+", type=int, default=DEFAULT_BATCHES, metavar="N",
                   help="batch sizes of the MLP rows "
                   f"(default: {' '.join(map(str, DEFAULT_BATCHES))})")
    p.add_argument("--repeats", type=int, default=3, metavar="K",
                   help="timed epochs per row, each row's median reported (default: 3)")
    p.add_argument("--examples", type=int, default=EPOCH, metavar="N",
                   help="examples timed per epoch, times scaled to 60,000; fewer = "
                   f"quicker (default: {EPOCH}, whole MNIST epochs)")
    p.add_argument("--no-float64", action="store_true",
                   help="skip bareprop's float64 rows (default: they run)")
    p.add_argument("--no-sklearn", action="store_true",
                   help="skip the scikit-learn rows (default: they run when scikit-learn "
                   "is installed)")
    p.add_argument("--no-rss", action="store_true",
                   help="leave memory out: no peak RSS columns and no 3-epoch training "
                   "run for its RSS (default: measured)")
    p.add_argument("--no-gemms", action="store_true",
                   help="skip the per-GEMM NumPy vs PyTorch table (default: printed)")
    p.add_argument("--no-optimizers", action="store_true",
                   help="skip the fused vs unfused table of each optimizer (default: printed)")
    p.add_argument("--markdown", metavar="FILE",
                   help="also write the report to this file (default: print only)")
    p.add_argument("--cnn-batch", type=int, default=128, metavar="N",
                   help="batch size of the convolutional rows (bench.cnn.NET) and of the named "
                   "nets (default: 128)")
    p.add_argument("--no-cnn", action="store_true",
                   help="skip the convolutional rows (default: they run)")
    p.add_argument("--cnn-only", action="store_true",
                   help="only the convolutional rows (default: every table)")
    p.add_argument("--nets", nargs="+", default=list(DEFAULT_NETS), choices=list(NETS),
                   metavar="NET", help="the named nets timed against their PyTorch twins, of "
                   f"{', '.join(NETS)} (bench.nets.NETS) (default: {' '.join(DEFAULT_NETS)})")
    p.add_argument("--no-nets", action="store_true",
                   help="skip the named nets' rows (default: they run)")
    p.add_argument("--nets-only", action="store_true",
                   help="only the named nets' rows (default: every table)")
    p.add_argument("--no-profile", action="store_true",
                   help="skip the per-layer profiles of the convolutional and named nets "
                   "(default: profiled)")


def run(args: argparse.Namespace) -> int:
    """Run one worker row (``--worker``) or the whole report."""
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return 0
    return report(args)


def main(argv=None) -> int:
    """``python -m bareprop.bench [flags]``."""
    p = argparse.ArgumentParser(prog="bareprop bench", description=DESCRIPTION)
    add_arguments(p)
    return run(p.parse_args(argv))
