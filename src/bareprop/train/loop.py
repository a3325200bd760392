"""fit and evaluate: the training loop, read as the idiom
zero_grad -> forward -> loss -> backward -> step.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from ..errors import ConfigError, TrainingDiverged
from .divergence import DIVERGED_ADVICE, DivergenceGuard, check_finite_loss
from .history import History
from .step import TrainStep


@dataclass
class TrainState:
    """What callbacks may read (and ``stop_training`` they may set)."""

    model: object
    optimizer: object
    history: History
    epochs: int
    batches_per_epoch: int
    epoch: int = 0
    stop_training: bool = False
    extra: dict = field(default_factory=dict)


@dataclass
class EvalResult:
    loss: float
    accuracy: float
    predictions: np.ndarray

    def per_class_accuracy(self, y: np.ndarray, n_classes: int) -> np.ndarray:
        correct = np.bincount(y[self.predictions == y], minlength=n_classes)
        total = np.bincount(y, minlength=n_classes)
        return correct / np.maximum(total, 1)


def as_batches(data, batch_size: int, dtype, *, shuffle: bool = False, seed: int = 0):
    """``data`` as Batches: a Batches is used as it is; an (x, y) pair of arrays becomes
    Batches over x *as given* (cast to ``dtype``, never rescaled: scale uint8 images
    yourself, or pass a Batches with a Scaler)."""
    from ..data.batches import Batches

    if isinstance(data, Batches):
        return data
    if not (isinstance(data, (tuple, list)) and len(data) == 2):
        raise ConfigError("data must be a Batches or an (x, y) pair of arrays, got "
                          f"{type(data).__name__}")
    x, y = np.asarray(data[0]), np.asarray(data[1])
    return Batches(x, y, batch_size, None, dtype, shuffle=shuffle, seed=seed)


def evaluate(model, loss_fn, data, batch_size: int = 1000, comm=None) -> EvalResult:
    """Loss and accuracy over every example of ``data`` (a Batches, or an (x, y) pair).

    Exact: the loss is the example-weighted mean of batch means, the accuracy is
    correct / N. (The notebook averaged per-batch accuracies, which weighs the
    last partial batch like a full one.) The model is left in the mode it was in.
    comm (data-parallel, see distributed.Comm): each rank evaluates its contiguous part
    of the examples; the sums and predictions are gathered, so every rank returns the
    same result.
    """
    data = as_batches(data, batch_size, getattr(model, "dtype", np.float32))
    part = data if comm is None else data.part(comm.rank, comm.size)
    was_training = model.training
    model.eval()
    total_loss, preds = 0.0, []
    for xb, yb in part.epoch(0):
        logits = model(xb)
        total_loss += loss_fn(logits, yb) * len(yb)
        preds.append(np.argmax(logits, axis=1))
    model.train(was_training)
    predictions = np.concatenate(preds) if preds else np.zeros(0, np.int64)
    if comm is not None:              # rank order is the examples' order
        parts = comm.allgather((total_loss, predictions))
        total_loss = sum(t for t, _ in parts)
        predictions = np.concatenate([p for _, p in parts])
    n = max(len(predictions), 1)
    y = data.y[data.order(0)]
    return EvalResult(total_loss / n, float(np.mean(predictions == y)) if len(y) else 0.0,
                      predictions)


def _check_finite(loss: float, model, where: str) -> None:
    check_finite_loss(loss, where)
    for name, p in model.named_parameters():
        if not np.all(np.isfinite(p.data)):
            raise TrainingDiverged(f"training diverged: parameter {name} holds NaN or inf "
                                   f"{where}; " + DIVERGED_ADVICE)


def _reseed(model, seed: int, epoch: int, rank: int = 0, world: int = 1) -> None:
    """Dropout masks of epoch e come from default_rng([seed, e, 2, layer]) (rank r of a
    data-parallel run: [seed, e, 2, layer, r]): resumable, and each rank draws its own."""
    droppers = [m for m in model.modules() if hasattr(m, "reseed")]
    rank_key = [rank] if world > 1 else []
    for k, m in enumerate(droppers):
        m.reseed(np.random.default_rng([seed, epoch, 2, k, *rank_key]))


def fit(model, loss_fn, optimizer, train, epochs: int = 1, *, batch_size: int = 32,
        shuffle: bool = True, validation_data=None, test=None, callbacks=(),
        update_order: str = "standard", grad_hook=None, seed: int = 0,
        history: History | None = None, start_epoch: int = 0, comm=None) -> History:
    """Train ``model`` for epochs ``start_epoch .. epochs-1``; returns the History.

    train: a Batches, or an (x, y) pair of arrays used as given (x (N, ...) float or
        uint8, never rescaled here; y (N,) int), batched by ``batch_size`` and, with
        ``shuffle``, reshuffled each epoch from (seed, epoch).
    validation_data, test: evaluated after every epoch (val_* and test_* in the logs);
        a Batches or an (x, y) pair.
    callbacks: Callback objects (ProgressBar, EarlyStopping, ModelCheckpoint, ...).
    update_order: "standard" (backward, then one optimizer step) or "notebook": each
        layer with parameters is updated as soon as its gradient is known, and the
        delta below it uses the updated weights, as the seed notebook did.
    grad_hook(model, optimizer): runs between backward and the step (see TrainStep).
        Without one, and when no callback ``needs_grads``, SGD's step may be fused into
        backward (TrainStep's ``fuse``).
    seed: dropout masks of epoch e are drawn from default_rng([seed, e, ...]) (with the
        Batches' own (seed, epoch) shuffling this makes a resumed run bit-identical).
    history, start_epoch: continue a run (``--resume``).
    comm: data-parallel training over MPI (``bareprop.distributed.from_environment()``):
        each rank steps on its contiguous shard of every global batch, gradients are
        summed by one allreduce per step, evaluation is sharded and reduced; every
        rank returns the same History and ends with the same weights
        (docs/distributed.md).

    Raises TrainingDiverged the moment the loss stops being finite or explodes
    (train.divergence), or a weight stops being finite, before any callback can save
    the broken state.
    """
    dtype = getattr(model, "dtype", np.float32)
    train = as_batches(train, batch_size, dtype, shuffle=shuffle, seed=seed)
    val = None if validation_data is None else as_batches(validation_data, 1000, dtype)
    test = None if test is None else as_batches(test, 1000, dtype)
    # Overflow in a diverging run is reported once, as TrainingDiverged with advice,
    # instead of a screenful of RuntimeWarnings.
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        return _fit(model, loss_fn, optimizer, train, epochs, val, test, callbacks,
                    history, start_epoch, update_order, grad_hook, seed, comm)


def _fit(model, loss_fn, optimizer, train, epochs, val, test, callbacks, history,
         start_epoch, update_order, grad_hook, seed, comm) -> History:
    state = None
    guard = DivergenceGuard()

    def on_loss(loss):
        if not loss <= guard.limit:              # NaN, inf, an explosion, or batch 1
            guard.check(loss, f"in epoch {state.epoch + 1}")

    sync = None
    if comm is not None:
        if update_order != "standard":
            raise ConfigError("update_order 'notebook' steps each layer during backward; "
                              "data-parallel training needs update_order 'standard'")
        # the guard judges the global batch's loss, after the allreduce, on every rank
        sync = comm.grad_sync(model, on_loss)
        user_hook, on_loss = grad_hook, sync.local_loss

        def grad_hook(model, optimizer):     # gradients summed first: a user's hook
            sync(model, optimizer)           # (clipping) sees the global batch's
            if user_hook is not None:
                user_hook(model, optimizer)

    rank, world = (comm.rank, comm.size) if comm is not None else (0, 1)
    step = TrainStep(model, loss_fn, optimizer, update_order=update_order,
                     grad_hook=grad_hook, on_loss=on_loss,
                     fuse=not any(getattr(cb, "needs_grads", True) for cb in callbacks))
    history = history if history is not None else History()
    state = TrainState(model, optimizer, history, epochs, len(train), start_epoch)
    for cb in callbacks:
        cb.on_train_begin(state)
    guard = DivergenceGuard()
    for epoch in range(start_epoch, epochs):
        state.epoch = epoch
        model.train()
        _reseed(model, seed, epoch, rank, world)
        for cb in callbacks:
            cb.on_epoch_begin(state)
        t0 = time.perf_counter()
        loss_sum, correct, seen = 0.0, 0, 0
        for xb, yb in train.epoch(epoch, rank, world):
            if sync is not None:
                sync.begin(len(yb))
            loss, logits = step(xb, yb)
            n = len(yb)
            if n:
                correct += int(np.count_nonzero(logits.argmax(axis=1) == yb))
            if sync is not None:             # the global batch's loss and size
                loss, n = sync.loss, sync.n
            history.batch_loss.append(loss)
            loss_sum += loss * n
            seen += n
            for cb in callbacks:
                cb.on_batch_end(state, loss, n)
        seconds = time.perf_counter() - t0
        if comm is not None:                 # hits were counted on each rank's shard
            correct = int(comm.sum([correct])[0])
        try:
            _check_finite(loss_sum, model, f"after epoch {epoch + 1}")
        except TrainingDiverged as exc:      # judged on global values: alike on every rank
            exc.every_rank = comm is not None
            raise
        logs = {"epoch": epoch + 1, "train_loss": loss_sum / max(seen, 1),
                "train_accuracy": correct / max(seen, 1), "seconds": seconds,
                "lr": optimizer.lr}
        if comm is not None:
            # the slowest rank's epoch is the epoch's time; the replicas must still agree
            logs["seconds"] = max(comm.allgather(seconds))
            logs["allreduce_seconds"] = max(comm.allgather(sync.seconds))
            sync.seconds = 0.0
            comm.check_replicas(model, f"after epoch {epoch + 1}")
        for name, data in (("val", val), ("test", test)):
            if data is not None:
                r = evaluate(model, loss_fn, data, comm=comm)
                logs[f"{name}_loss"], logs[f"{name}_accuracy"] = r.loss, r.accuracy
        history.epochs.append(logs)
        for cb in callbacks:
            cb.on_epoch_end(state, logs)
        if state.stop_training:
            break
    for cb in callbacks:
        cb.on_train_end(state)
    return history
