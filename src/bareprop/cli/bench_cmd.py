"""``bareprop bench``: the speed benchmark (see bareprop.bench) on this machine."""
from __future__ import annotations


def add_parser(sub) -> None:
    from .. import bench

    # bench's own flags on this subparser (not an argparse.REMAINDER pass-through, which
    # left --help and every flag to the top-level parser, which refused them)
    p = sub.add_parser("bench", help="time bareprop against PyTorch (and scikit-learn) here "
                       "(defaults: roughly 10-25 minutes; see bench --help)",
                       description=bench.DESCRIPTION)
    bench.add_arguments(p)
    p.set_defaults(run=run)


def run(args) -> int:
    from .. import bench

    return bench.run(args)
