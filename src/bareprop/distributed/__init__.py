"""Data-parallel training over MPI: the same run on K processes or machines.

``mpirun -n K bareprop train [flags]`` runs the single-process run's global batches,
each rank computing on its contiguous shard of every batch; one allreduce of a flat
buffer per step sums the shard-weighted gradients, so every rank takes the identical
optimizer step (semantics in docs/distributed.md).

    comm.py     detection (environment only: mpi4py is imported only under mpirun),
                the Comm wrapper, agreement on errors, abort
    shard.py    what a K-rank run refuses (the shards themselves: data.batches.shard_bounds)
    gradsync.py the grad_hook: pack grads (+ batch-norm running stats, the batch loss),
                Allreduce in place, unpack as the global batch's mean
    agree.py    errors raised alike on every rank, told apart from one rank's own
    launch.py   the CLI under mpirun: rank 0 alone prints; a rank's own failure aborts

Not here: the training loop (train/loop.py takes a ``comm``) and the CLI's rank-0 I/O
(cli/train_cmd.py).
"""
from .agree import ReplicaMismatch, raised_on_every_rank
from .comm import Comm, from_environment, launched_rank, launched_size

__all__ = ["Comm", "ReplicaMismatch", "raised_on_every_rank", "from_environment",
           "launched_rank", "launched_size"]
