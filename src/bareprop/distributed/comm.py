"""Which MPI process we are, and the few collectives bareprop uses.

Detection reads the environment the launcher sets (Open MPI: OMPI_COMM_WORLD_SIZE /
_RANK; MPICH, Intel MPI and Slurm's PMI: PMI_SIZE / PMI_RANK; any PMIx launcher:
PMIX_RANK) and imports mpi4py only then: a single-process run never loads MPI.

Every collective here is called by every rank in the same order; a rank that cannot
reach the next one (it raised, or died) must take the job down with ``abort``,
otherwise the others wait in the collective forever.
"""
from __future__ import annotations

import os

from ..errors import BarepropError, ConfigError
from .agree import mark_every_rank

INSTALL_HINT = ("running under mpirun needs mpi4py: pip install 'bareprop[mpi]' (it brings "
                "mpi4py and Open MPI's mpirun)")

_SIZE_VARS = ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "MV2_COMM_WORLD_SIZE")
_RANK_VARS = ("OMPI_COMM_WORLD_RANK", "PMI_RANK", "MV2_COMM_WORLD_RANK", "PMIX_RANK")


def _first_int(names) -> int | None:
    for name in names:
        text = os.environ.get(name, "")
        if text.isdigit():
            return int(text)
    return None


def launched_rank() -> int | None:
    """This process's rank as the MPI launcher announced it, or None outside mpirun."""
    return _first_int(_RANK_VARS)


def launched_size() -> int | None:
    """The job's process count from the launcher's environment (None outside mpirun, or
    under a PMIx launcher that names only the rank: then MPI itself is asked)."""
    return _first_int(_SIZE_VARS)


class Comm:
    """MPI_COMM_WORLD as bareprop uses it: rank, size, a few collectives, abort.

    ``allreduce_sum_(buf)``: MPI.Allreduce(IN_PLACE, buf, SUM) on a contiguous ndarray.
    ``allgather(obj)``: every rank's ``obj``, in rank order, on every rank (pickled;
    small objects only: metrics, predictions, errors).
    """

    def __init__(self, mpi_comm, mpi_module):
        self._c, self._mpi = mpi_comm, mpi_module
        self.rank, self.size = mpi_comm.Get_rank(), mpi_comm.Get_size()

    @property
    def root(self) -> bool:
        return self.rank == 0

    def allreduce_sum_(self, buf) -> None:
        self._c.Allreduce(self._mpi.IN_PLACE, buf, op=self._mpi.SUM)

    def allgather(self, obj) -> list:
        return self._c.allgather(obj)

    def bcast(self, obj, root: int = 0):
        return self._c.bcast(obj, root=root)

    def sum(self, values) -> list[float]:
        """Every rank's ``values`` (a few numbers) summed, in rank order, in Python floats:
        the same bytes on every rank, so decisions taken on them agree."""
        rows = self.allgather([float(v) for v in values])
        return [sum(col) for col in zip(*rows)]

    def fit_plug(self, model, update_order: str = "standard"):
        """fit's plug for this rank (gradsync.DataParallel): gradients summed over the
        ranks by one allreduce per step, epochs judged on the global batch."""
        from .gradsync import DataParallel

        return DataParallel(self, model, update_order)

    def check_replicas(self, model, where: str) -> None:
        """ReplicaMismatch on every rank unless every rank's model is bit-identical."""
        from .gradsync import check_replicas

        check_replicas(self, model, where)

    def abort(self, code: int = 1) -> None:
        """End every rank of the job now (MPI_Abort): the way out for a rank that can no
        longer take part in the collectives the others are waiting in."""
        self._c.Abort(code)

    def agree(self, fn, *args, **kwargs):
        """Run ``fn`` on every rank, then agree on the outcome: if it raised a
        BarepropError on any rank, every rank raises the lowest such rank's error
        (marked ``every_rank``, so rank 0 alone reports it and no rank aborts).
        One allgather of a small object; other exceptions are bugs and propagate."""
        error = None
        result = None
        try:
            result = fn(*args, **kwargs)
        except BarepropError as exc:
            error = exc
        errors = self.allgather(None if error is None else _portable(error))
        first = next((e for e in errors if e is not None), None)
        if first is not None:
            raise mark_every_rank(first)
        return result


def _portable(exc: BarepropError) -> BarepropError:
    """``exc`` as an object the other ranks can unpickle (its type and one-line text)."""
    try:
        import pickle

        return pickle.loads(pickle.dumps(exc))
    except Exception:      # an exception type whose constructor takes other arguments
        return BarepropError(str(exc))


def from_environment() -> Comm | None:
    """The world Comm when this process was started by mpirun with 2 or more ranks,
    else None (mpi4py is not imported outside mpirun). A ConfigError naming the extra
    when mpi4py is missing."""
    if launched_rank() is None and launched_size() is None:
        return None
    if launched_size() == 1:
        return None
    try:
        from mpi4py import MPI
    except ImportError:
        raise ConfigError(INSTALL_HINT) from None
    comm = Comm(MPI.COMM_WORLD, MPI)
    return comm if comm.size > 1 else None
