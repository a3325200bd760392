"""The data-parallel step's one collective: a grad_hook that sums the ranks' gradients.

Rank r holds n_r of the global batch's N examples and, after backward, g_r = the
gradient of its shard's mean loss. The global batch's mean-loss gradient is

    g = (1 / N) sum_r n_r g_r            (a mean of means, weighted by shard size)

so each rank packs n_r g_r, and with it everything else the step must agree on, into
one contiguous buffer (the parameters' dtype), which one MPI_Allreduce(SUM) sums in
place:

    [ n_r g_r for every parameter (flattened, model.parameters() order) | P values
      n_r s_r for every batch-norm running statistic                    | S values
      n_r loss_r,  n_r ]                                                | 2 values

and unpacks, dividing by N = sum_r n_r (the last value):
    p.grad = g;   running stats = (1 / N) sum_r n_r s_r;   loss = (1 / N) sum_r n_r loss_r

Running statistics: each rank's batch norm normalises by its own shard's statistics
(as PyTorch DDP without SyncBatchNorm) and updates its running mean and variance from
them; the allreduce then replaces them by the shard-weighted average of the ranks',
which every rank ends with (a running mean so updated is the momentum update with the
global batch's mean, since the ranks started the step with the same value).
A rank whose shard is empty packs zeros (n_r = 0) and still joins the allreduce.
"""
from __future__ import annotations

import hashlib

import numpy as np

from .agree import ReplicaMismatch, mark_every_rank
from ..errors import BarepropError, ConfigError


class GradAllreduce:
    """``grad_hook(model, optimizer)`` for a step on this rank's shard (see the module).

    Per step: ``begin(n_r)`` before the step, ``local_loss(loss)`` as TrainStep's
    on_loss, the hook itself between backward and the optimizer step; then ``loss``
    and ``n`` hold the global batch's mean loss and size. ``on_loss(loss)`` (the
    divergence guard) sees the global loss before the step, so it decides the same on
    every rank. ``seconds`` adds up the time spent in the allreduce.
    """

    def __init__(self, comm, model, on_loss=None):
        import time

        self._clock = time.perf_counter
        self.comm, self.on_loss = comm, on_loss
        self.params = model.parameters()
        self.stats = [b for _, b in model.named_buffers() if b.dtype.kind == "f"]
        dtype = self.params[0].dtype if self.params else np.dtype(np.float64)
        sizes = [p.size for p in self.params] + [b.size for b in self.stats]
        self.offsets = np.concatenate([[0], np.cumsum(sizes, dtype=np.int64)]).tolist()
        self.buf = np.empty(self.offsets[-1] + 2, dtype)          # (P + S + 2,)
        self.n_local, self._loss = 0, 0.0
        self.loss, self.n, self.seconds, self.steps = 0.0, 0, 0.0, 0

    @property
    def nbytes(self) -> int:
        return self.buf.nbytes

    def begin(self, n_local: int) -> None:
        self.n_local, self._loss = n_local, 0.0

    def local_loss(self, loss: float) -> None:
        self._loss = loss

    def __call__(self, model, optimizer) -> None:
        buf, off, w = self.buf, self.offsets, self.buf.dtype.type(self.n_local)
        arrays = [p.grad for p in self.params] + self.stats
        for i, a in enumerate(arrays):                            # pack: n_r g_r, n_r s_r
            seg = buf[off[i]:off[i + 1]]
            if a is None or not self.n_local:
                seg.fill(0)
            else:
                np.multiply(a.reshape(-1), w, out=seg)
        buf[-2], buf[-1] = self._loss * self.n_local, self.n_local
        t0 = self._clock()
        self.comm.allreduce_sum_(buf)                              # the one collective
        self.seconds += self._clock() - t0
        self.steps += 1
        n = buf[-1]
        self.n, self.loss = int(round(float(n))), float(buf[-2]) / float(n)
        if self.on_loss is not None:
            try:
                self.on_loss(self.loss)       # the same global loss on every rank
            except BarepropError as exc:
                raise mark_every_rank(exc) from None
        for i, p in enumerate(self.params):                        # unpack: / N
            seg = buf[off[i]:off[i + 1]].reshape(p.shape)
            if p.grad is None or p.grad.shape != p.shape or p.grad.dtype != buf.dtype:
                p.grad = np.empty(p.shape, buf.dtype)
            np.divide(seg, n, out=p.grad)
        k = len(self.params)
        for j, s in enumerate(self.stats):
            np.divide(buf[off[k + j]:off[k + j + 1]].reshape(s.shape), n, out=s)


class DataParallel:
    """fit's plug for one MPI rank (train/loop.py's Alone is the one-process plug): the
    step's grad_hook sums the ranks' gradients first (GradAllreduce), the recorded loss
    and batch size are the global batch's, the epoch's hits are summed, its time is the
    slowest rank's, and the replicas are checked bit for bit at every epoch's end."""

    def __init__(self, comm, model, update_order: str = "standard"):
        if update_order != "standard":
            raise ConfigError("update_order 'notebook' steps each layer during backward; "
                              "data-parallel training needs update_order 'standard'")
        self.comm, self.model = comm, model
        self.rank, self.size = comm.rank, comm.size
        self.sync = None

    def step_hooks(self, grad_hook, on_loss):
        # the guard judges the global batch's loss, after the allreduce, on every rank
        self.sync = sync = GradAllreduce(self.comm, self.model, on_loss)

        def hook(model, optimizer):          # gradients summed first: a user's hook
            sync(model, optimizer)           # (clipping) sees the global batch's
            if grad_hook is not None:
                grad_hook(model, optimizer)
        return hook, sync.local_loss

    def begin_batch(self, n: int) -> None:
        self.sync.begin(n)

    def batch_result(self, loss: float, n: int) -> tuple[float, int]:
        return self.sync.loss, self.sync.n

    def epoch_hits(self, correct: int) -> int:
        return int(self.comm.sum([correct])[0])   # hits were counted on each rank's shard

    def agreed(self, exc: BaseException) -> BaseException:
        return mark_every_rank(exc)

    def epoch_logs(self, model, epoch: int, seconds: float) -> dict:
        # the slowest rank's epoch is the epoch's time; the replicas must still agree
        logs = {"seconds": max(self.comm.allgather(seconds)),
                "allreduce_seconds": max(self.comm.allgather(self.sync.seconds))}
        self.sync.seconds = 0.0
        self.comm.check_replicas(model, f"after epoch {epoch + 1}")
        return logs


def fingerprint(model) -> str:
    """A hash of every parameter and buffer's bytes: equal on two ranks exactly when
    their replicas are bit-identical (to BLAKE2b's collision odds)."""
    h = hashlib.blake2b(digest_size=16)
    for _, a in sorted(model.state_dict().items()):
        h.update(np.ascontiguousarray(a).view(np.uint8).tobytes())
    return h.hexdigest()


def check_replicas(comm, model, where: str) -> None:
    """ReplicaMismatch (on every rank alike) unless every rank's parameters and
    buffers are bit-identical: one allgather of a 16-byte hash."""
    prints = comm.allgather(fingerprint(model))
    if len(set(prints)) > 1:
        differ = [r for r, f in enumerate(prints) if f != prints[0]]
        raise mark_every_rank(ReplicaMismatch(
            f"the model on rank(s) {', '.join(map(str, differ))} differs from rank 0's "
            f"{where}: this MPI's allreduce returned different bytes on different ranks; "
            "the last checkpoint holds rank 0's model; report this with the MPI library's name "
            "and version"))
