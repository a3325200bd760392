"""Contiguous shards of a batch, as ``np.array_split`` makes them, and what a K-rank
run must refuse before it starts.

A global batch of B examples on K ranks: rank r takes examples [lo, hi) with the first
B mod K ranks one example larger (B = 10, K = 3: 4, 3, 3). A batch smaller than K
leaves some ranks empty; they still join every allreduce, with zeros.
"""
from __future__ import annotations

from ..data.batches import shard_bounds
from ..errors import ConfigError

__all__ = ["shard_bounds", "batch_sizes", "check_world"]


def batch_sizes(n_train: int, batch_size: int, drop_last: bool) -> set[int]:
    """The global batch sizes an epoch of ``n_train`` examples holds."""
    full, rest = divmod(n_train, batch_size)
    sizes = {batch_size} if full else set()
    if rest and not drop_last:
        sizes.add(rest)
    return sizes


def check_world(cfg, world: int, n_train: int, model) -> None:
    """Refuse, with one line each, what a ``world``-rank run of ``cfg`` cannot do the
    same way as one process."""
    from ..experiment.checks import has_batchnorm1d

    if cfg.update_order == "notebook":
        where = " (the seed preset's)" if cfg.preset == "seed" else ""
        raise ConfigError(f"--update-order notebook{where} updates each layer during backward, "
                          "so no point exists to sum gradients across processes: run it as "
                          "one process (without mpirun), or use --update-order standard")
    if cfg.clip_delta is not None:
        raise ConfigError("--clip-delta clips each rank's deltas, which are scaled by that "
                          "rank's shard size, not the global batch's: run it as one process "
                          "(without mpirun), or drop --clip-delta")
    bn = "--batchnorm" if cfg.batchnorm else \
        "the batchnorm after a flat layer in --arch" if has_batchnorm1d(model) else None
    if bn is None:
        return
    for b in sorted(batch_sizes(n_train, cfg.batch_size, cfg.drop_last)):
        parts = {hi - lo for lo, hi in (shard_bounds(b, world, r) for r in range(world))}
        if 1 in parts:
            raise ConfigError(f"a batch of {b} on {world} processes gives some a shard of 1 "
                              f"example, and {bn} needs at least 2 per process; use a "
                              "--batch-size of at least twice the process count (and --drop-last"
                              " if the last batch is small), or fewer processes")
