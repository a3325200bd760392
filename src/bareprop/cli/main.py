"""``bareprop`` entry point: argument parsing and the one-line error contract.

Every error caused by input prints ``bareprop: error: <problem and fix>`` on one
line and exits 2 (1 for a diverged run); no traceback reaches the user.
"""
from __future__ import annotations

import argparse
import os
import sys

from ..errors import BarepropError, TrainingDiverged


def build_parser() -> argparse.ArgumentParser:
    from . import evaluate_cmd, train_cmd
    from .args import OneLineParser

    parser = OneLineParser(prog="bareprop",
                           description="Hand-written NumPy backprop: train, evaluate, compare.")
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command", parser_class=OneLineParser)
    for module in (train_cmd, evaluate_cmd):
        module.add_parser(sub)
    for module in _extra_commands():
        module.add_parser(sub)
    return parser


def _extra_commands():
    """Commands added by later modules (compare, predict, report, bench, export, import)
    when present."""
    import importlib

    mods = []
    for name in ("compare_cmd", "predict_cmd", "report_cmd", "bench_cmd", "export_cmd",
                 "import_cmd", "serve_cmd", "explain_cmd", "lrfind_cmd", "sweep_cmd"):
        try:
            mods.append(importlib.import_module(f"{__package__}.{name}"))
        except ModuleNotFoundError as exc:
            if exc.name != f"{__package__}.{name}":
                raise
    return mods


def main(argv=None) -> int:
    # Everything, the imports of NumPy and the commands included, runs inside the
    # handler: Ctrl-C at start-up is one line, like Ctrl-C in training.
    try:
        from ..distributed import launch   # no MPI import: environment variables only

        launch.quiet_other_ranks()         # under mpirun, rank 0 alone prints
        code = _main(argv)
        sys.stdout.flush()                 # a closed pipe shows here, not at exit
        return code
    except BrokenPipeError:
        return _pipe_closed()
    except SystemExit:                     # --help and usage errors: flushed here too
        try:
            sys.stdout.flush()
        except BrokenPipeError:
            _pipe_closed()
        raise
    except KeyboardInterrupt as exc:
        _crash(exc)                        # under mpirun: abort every rank, none waits
        print("bareprop: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:               # a bug: its traceback, and under mpirun the
        _crash(exc)                        # whole job stops instead of waiting for us
        raise


def _pipe_closed() -> int:
    """Our output's reader went away (``bareprop ... | head``): stop quietly, as a Unix
    tool that SIGPIPE ends (exit 141), with stdout pointed at /dev/null so that the
    interpreter's flush at exit cannot fail again. What a run saved stays saved."""
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (AttributeError, ValueError, OSError):     # no real stdout: nothing to quiet
        pass
    return 141


def _crash(exc: BaseException) -> None:
    launch = sys.modules.get("bareprop.distributed.launch")
    if launch is not None:
        launch.crash(exc)


def _main(argv) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.version:
        from .. import __version__

        print(f"bareprop {__version__}")
        return 0
    if args.command is None:
        parser.print_help()
        return 2
    from ..distributed import launch

    try:
        launch.refuse_other_commands(args.command)
        from ..fast import kernels

        kernels.check()                  # a bad BAREPROP_ACCEL: one line now, not mid-run
        return int(args.run(args) or 0)
    except TrainingDiverged as exc:
        return launch.fail(exc, 1)       # printed here, or one rank's: abort the job
    except BarepropError as exc:
        return launch.fail(exc, 2)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
