"""The CLI under mpirun: one voice (rank 0), and no rank left waiting.

``quiet_other_ranks`` points every rank but 0 at /dev/null before anything prints:
argparse errors, progress, summaries and warnings come once, from rank 0.
``fail`` reports an error: one raised alike on every rank (``agree.mark_every_rank``)
is printed by rank 0 and every rank exits with its code; any other belongs to one
rank, which prints it on its real stderr, with its rank, and ends the job with
MPI_Abort, so the others do not wait for it in the next allreduce.
"""
from __future__ import annotations

import os
import sys

from .agree import raised_on_every_rank
from .comm import launched_rank, launched_size


def quiet_other_ranks() -> None:
    if (launched_rank() or 0) > 0:
        sys.stdout = sys.stderr = open(os.devnull, "w")


def refuse_other_commands(command: str) -> None:
    """Only ``train`` runs data-parallel; the other commands refuse mpirun with one line."""
    if command != "train" and (launched_size() or 1) > 1:
        from ..errors import ConfigError

        raise ConfigError(f"only 'bareprop train' runs on several processes; run 'bareprop "
                          f"{command}' as one process, without mpirun")


def _active_world():
    """MPI_COMM_WORLD when mpi4py was loaded by this run and the job has several ranks."""
    mpi = sys.modules.get("mpi4py.MPI")
    if mpi is None or not mpi.Is_initialized() or mpi.Is_finalized():
        return None
    world = mpi.COMM_WORLD
    return world if world.Get_size() > 1 else None


def fail(exc: BaseException, code: int) -> int:
    """Report ``exc`` as the CLI's one line and return ``code``, or abort the job when
    only this rank raised it (see the module)."""
    world = _active_world()
    if world is None or raised_on_every_rank(exc):
        print(f"bareprop: error: {exc}", file=sys.stderr)
        return code
    print(f"bareprop: error: rank {world.Get_rank()}: {exc}; stopping every rank",
          file=sys.__stderr__, flush=True)
    world.Abort(code)
    return code                      # not reached: Abort ends the process


def crash(exc: BaseException) -> None:
    """An unexpected exception (a bug, Ctrl-C) under mpirun: its traceback on this rank's
    real stderr, then MPI_Abort. Outside an MPI job: nothing (it propagates)."""
    world = _active_world()
    if world is None:
        return
    import traceback

    traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.__stderr__)
    print(f"bareprop: error: rank {world.Get_rank()} failed ({type(exc).__name__}); "
          "stopping every rank", file=sys.__stderr__, flush=True)
    world.Abort(130 if isinstance(exc, KeyboardInterrupt) else 1)
