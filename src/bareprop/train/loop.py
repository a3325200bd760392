"""fit and evaluate: the training loop, read as the idiom
zero_grad -> forward -> loss -> backward -> step.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from ..errors import ConfigError, TrainingDiverged
from ..fast.plan import inference_plan
from .callbacks import ProgressBar, close_all
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
    batch: tuple | None = None       # (x, y) of the batch being stepped, during an epoch


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
    fast = inference_plan(model)                  # the fast forward, where there is one
    total_loss, preds = 0.0, []
    with fast.held():                   # conv blocks: each batch split over BLAS's threads
        for xb, yb in part.epoch(0):
            logits = fast.net(xb)
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


def reseed(model, seed: int, epoch: int, rank: int = 0, world: int = 1) -> None:
    """Dropout masks of epoch e come from default_rng([seed, e, 2, layer]) (rank r of a
    data-parallel run: [seed, e, 2, layer, r]): resumable, and each rank draws its own."""
    droppers = [m for m in model.modules() if hasattr(m, "reseed")]
    rank_key = [rank] if world > 1 else []
    for k, m in enumerate(droppers):
        m.reseed(np.random.default_rng([seed, epoch, 2, k, *rank_key]))


class Alone:
    """How fit runs in one process: the plug its loop calls at each point where a
    data-parallel run differs (distributed.DataParallel is the one for MPI ranks)."""

    rank, size, comm = 0, 1, None

    def step_hooks(self, grad_hook, on_loss):
        """(grad_hook, on_loss) for the TrainStep, given the user's and fit's."""
        return grad_hook, on_loss

    def begin_batch(self, n: int) -> None:
        """Before the step on a batch of ``n`` examples (this process's share)."""

    def batch_result(self, loss: float, n: int) -> tuple[float, int]:
        """The loss and size to record for the batch just stepped (the global batch's)."""
        return loss, n

    def epoch_hits(self, correct: int) -> int:
        """The epoch's training hits over every process."""
        return correct

    def agreed(self, exc: BaseException) -> BaseException:
        """``exc``, raised alike by every process (judged on values they share)."""
        return exc

    def epoch_logs(self, model, epoch: int, seconds: float) -> dict:
        """The epoch's time (the slowest process's), and what else only the plug knows,
        before evaluation."""
        return {"seconds": seconds}


@dataclass
class FitRun:
    """Everything one call of fit trains with, as ``fit`` normalised it."""

    model: object
    loss_fn: object
    optimizer: object
    train: object                    # Batches
    epochs: int
    val: object = None               # Batches or None
    test: object = None
    callbacks: tuple = ()
    history: History | None = None
    start_epoch: int = 0
    update_order: str = "standard"
    grad_hook: object = None
    seed: int = 0
    plug: object = field(default_factory=Alone)


def fit(model, loss_fn, optimizer, train=None, epochs: int = 1, *, batch_size: int = 32,
        shuffle: bool = True, validation_data=None, test=None, callbacks=(),
        verbose: bool = True, update_order: str = "standard", grad_hook=None, seed: int = 0,
        history: History | None = None, start_epoch: int = 0, comm=None) -> History:
    """Train ``model`` for epochs ``start_epoch .. epochs-1``; returns the History.

        history = bp.fit(model, bp.CrossEntropyLoss(), bp.Adam(model.parameters()),
                         (x, y), epochs=5)

    The loss and the optimizer come before the data (PyTorch's loop written out, not
    Keras' ``fit(x, y)``); ``history.history`` is Keras' dict of per-epoch lists.

    train: a Batches, or an (x, y) pair of arrays used as given (x (N, ...) float or
        uint8, never rescaled here; y (N,) int), batched by ``batch_size`` and, with
        ``shuffle``, reshuffled each epoch from (seed, epoch).
    validation_data, test: evaluated after every epoch (val_* and test_* in the logs);
        a Batches or an (x, y) pair.
    callbacks: Callback objects (ProgressBar, EarlyStopping, ModelCheckpoint, ...); each
        one's ``close()`` runs when fit ends, however it ends (finished, diverged,
        interrupted).
    verbose: a line per epoch on stderr (loss, accuracy, seconds; a live bar on a
        terminal with ``bareprop[progress]``), as Keras prints; False: silent. A
        ProgressBar among the callbacks is used as given instead.
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
    _check_call(loss_fn, optimizer, train, epochs)
    dtype = getattr(model, "dtype", np.float32)
    plug = Alone() if comm is None else comm.fit_plug(model, update_order)
    callbacks = tuple(callbacks)
    if verbose and not any(isinstance(cb, ProgressBar) for cb in callbacks):
        callbacks = (ProgressBar(disable=plug.rank != 0), *callbacks)
    run = FitRun(
        model, loss_fn, optimizer, as_batches(train, batch_size, dtype, shuffle=shuffle,
                                              seed=seed), epochs,
        None if validation_data is None else as_batches(validation_data, 1000, dtype),
        None if test is None else as_batches(test, 1000, dtype), callbacks, history,
        start_epoch, update_order, grad_hook, seed, plug)
    # Overflow in a diverging run is reported once, as TrainingDiverged with advice,
    # instead of a screenful of RuntimeWarnings.
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        try:
            result = _fit(run)
        except BaseException:
            close_all(run.callbacks, quiet=True)   # what fit is raising stays the error
            raise
    close_all(run.callbacks)
    return result


def _check_call(loss_fn, optimizer, train, epochs) -> None:
    """A TypeError saying what fit takes, for the Keras and scikit-learn habit
    ``fit(model, x, y)`` and for x and y given as two arguments."""
    usage = ("bp.fit(model, loss_fn, optimizer, (x, y), epochs), e.g. bp.fit(model, "
             "bp.CrossEntropyLoss(), bp.Adam(model.parameters()), (x, y), epochs=5)")
    arrays = (np.ndarray, list)
    if isinstance(loss_fn, arrays) or isinstance(optimizer, arrays):
        raise TypeError(f"fit got arrays where the loss and the optimizer go; call {usage}")
    if train is None:
        raise TypeError(f"fit needs the training data after the optimizer; call {usage}")
    if isinstance(train, np.ndarray) and isinstance(epochs, arrays):
        raise TypeError(f"fit takes x and y as one pair (x, y), then the epochs; call {usage}")


def _fit(run: FitRun) -> History:
    model, optimizer, train, plug, callbacks = (run.model, run.optimizer, run.train,
                                                run.plug, run.callbacks)
    state = None
    guard = DivergenceGuard()

    def on_loss(loss):
        if not loss <= guard.limit:              # NaN, inf, an explosion, or batch 1
            guard.check(loss, f"in epoch {state.epoch + 1}")

    grad_hook, on_loss = plug.step_hooks(run.grad_hook, on_loss)
    step = TrainStep(model, run.loss_fn, optimizer, update_order=run.update_order,
                     grad_hook=grad_hook, on_loss=on_loss,
                     fuse=not any(getattr(cb, "needs_grads", True) for cb in callbacks))
    history = run.history if run.history is not None else History()
    state = TrainState(model, optimizer, history, run.epochs, len(train), run.start_epoch)
    for cb in callbacks:
        cb.on_train_begin(state)
    for epoch in range(run.start_epoch, run.epochs):
        state.epoch = epoch
        model.train()
        reseed(model, run.seed, epoch, plug.rank, plug.size)
        for cb in callbacks:
            cb.on_epoch_begin(state)
        t0 = time.perf_counter()
        loss_sum, correct, seen = 0.0, 0, 0
        for xb, yb in train.epoch(epoch, plug.rank, plug.size):
            state.batch = (xb, yb)
            plug.begin_batch(len(yb))
            loss, logits = step(xb, yb)
            if len(yb):
                correct += int(np.count_nonzero(logits.argmax(axis=1) == yb))
            loss, n = plug.batch_result(loss, len(yb))
            history.batch_loss.append(loss)
            loss_sum += loss * n
            seen += n
            for cb in callbacks:
                cb.on_batch_end(state, loss, n)
        state.batch = None
        seconds = time.perf_counter() - t0
        correct = plug.epoch_hits(correct)
        try:
            _check_finite(loss_sum, model, f"after epoch {epoch + 1}")
        except TrainingDiverged as exc:
            raise plug.agreed(exc)
        logs = {"epoch": epoch + 1, "train_loss": loss_sum / max(seen, 1),
                "train_accuracy": correct / max(seen, 1), "seconds": seconds,
                "lr": optimizer.lr, **plug.epoch_logs(model, epoch, seconds)}
        for name, data in (("val", run.val), ("test", run.test)):
            if data is not None:
                r = evaluate(model, run.loss_fn, data, comm=plug.comm)
                logs[f"{name}_loss"], logs[f"{name}_accuracy"] = r.loss, r.accuracy
        history.epochs.append(logs)
        for cb in callbacks:
            cb.on_epoch_end(state, logs)
        if state.stop_training:
            break
    for cb in callbacks:
        cb.on_train_end(state)
    return history
