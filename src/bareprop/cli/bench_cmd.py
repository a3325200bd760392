"""``bareprop bench``: the speed benchmark (see bareprop.bench) on this machine."""
from __future__ import annotations

import argparse


def add_parser(sub) -> None:
    p = sub.add_parser("bench", help="time bareprop against PyTorch (and scikit-learn) here",
                       add_help=False)
    p.add_argument("rest", nargs=argparse.REMAINDER)
    p.set_defaults(run=run)


def run(args) -> int:
    from .. import bench

    return bench.main(args.rest)
