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


def evaluate(model, loss_fn, data, batch_size: int = 1000) -> EvalResult:
    """Loss and accuracy over every example of ``data`` (a Batches, or an (x, y) pair).

    Exact: the loss is the example-weighted mean of batch means, the accuracy is
    correct / N. (The notebook averaged per-batch accuracies, which weighs the
    last partial batch like a full one.) The model is left in the mode it was in.
    """
    data = as_batches(data, batch_size, getattr(model, "dtype", np.float32))
    was_training = model.training
    model.eval()
    total_loss, preds = 0.0, []
    for xb, yb in data.epoch(0):
        logits = model(xb)
        total_loss += loss_fn(logits, yb) * len(yb)
        preds.append(np.argmax(logits, axis=1))
    model.train(was_training)
    predictions = np.concatenate(preds) if preds else np.zeros(0, np.int64)
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


def _reseed(model, seed: int, epoch: int) -> None:
    """Dropout masks of epoch e come from default_rng([seed, e, 2, layer]): resumable."""
    droppers = [m for m in model.modules() if hasattr(m, "reseed")]
    for k, m in enumerate(droppers):
        m.reseed(np.random.default_rng([seed, epoch, 2, k]))


def fit(model, loss_fn, optimizer, train, epochs: int = 1, *, batch_size: int = 32,
        shuffle: bool = True, validation_data=None, test=None, callbacks=(),
        update_order: str = "standard", grad_hook=None, seed: int = 0,
        history: History | None = None, start_epoch: int = 0) -> History:
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
                    history, start_epoch, update_order, grad_hook, seed)


def _fit(model, loss_fn, optimizer, train, epochs, val, test, callbacks, history,
         start_epoch, update_order, grad_hook, seed) -> History:
    state = None
    guard = DivergenceGuard()

    def on_loss(loss):
        if not loss <= guard.limit:              # NaN, inf, an explosion, or batch 1
            guard.check(loss, f"in epoch {state.epoch + 1}")

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
        _reseed(model, seed, epoch)
        for cb in callbacks:
            cb.on_epoch_begin(state)
        t0 = time.perf_counter()
        loss_sum, correct, seen = 0.0, 0, 0
        for xb, yb in train.epoch(epoch):
            loss, logits = step(xb, yb)
            n = len(yb)
            history.batch_loss.append(loss)
            loss_sum += loss * n
            correct += int(np.count_nonzero(logits.argmax(axis=1) == yb))
            seen += n
            for cb in callbacks:
                cb.on_batch_end(state, loss, n)
        seconds = time.perf_counter() - t0
        _check_finite(loss_sum, model, f"after epoch {epoch + 1}")
        logs = {"epoch": epoch + 1, "train_loss": loss_sum / max(seen, 1),
                "train_accuracy": correct / max(seen, 1), "seconds": seconds,
                "lr": optimizer.lr}
        for name, data in (("val", val), ("test", test)):
            if data is not None:
                r = evaluate(model, loss_fn, data)
                logs[f"{name}_loss"], logs[f"{name}_accuracy"] = r.loss, r.accuracy
        history.epochs.append(logs)
        for cb in callbacks:
            cb.on_epoch_end(state, logs)
        if state.stop_training:
            break
    for cb in callbacks:
        cb.on_train_end(state)
    return history
