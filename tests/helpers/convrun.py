"""A run folder of a small convolutional model, trained in Python on the synthetic digits
(tests/helpers/synthetic.py) and written with the files `bareprop report`, `evaluate` and
`predict` read: model.npz, metrics.json and inspect.json, as `bareprop train` writes
them. Tests of the inference side use it until the CLI trains convolutional models."""
import json
from pathlib import Path

import bareprop as bp
from bareprop.data import Batches, Scaler
from bareprop.train.inspector import Inspector

from synthetic import digits_like


def conv_model(seed: int = 0) -> bp.Sequential:
    """(1, 28, 28) -> conv -> pool -> conv -> (4, 14, 14) = 784 -> Linear: a Linear(784, .)
    that is *not* the first layer, so the report must not draw its rows as images."""
    return bp.Sequential(bp.Conv2d(1, 4, 3, padding="same", rng=seed), bp.ReLU(),
                         bp.MaxPool2d(2), bp.Conv2d(4, 4, 3, padding=1, rng=seed + 1), bp.ReLU(),
                         bp.Flatten(), bp.Linear(784, 10, rng=seed + 2), input_shape=(1, 28, 28))


def write_conv_run(out: Path, n_train: int = 200, epochs: int = 2, seed: int = 0) -> Path:
    """Train ``conv_model`` for ``epochs`` on digits_like(n_train, 1) and write its run
    folder to ``out``; the test split is write_dataset's (digits_like(200, 2))."""
    out.mkdir(parents=True, exist_ok=True)
    (xtr, ytr), (xte, yte) = digits_like(n_train, 1), digits_like(200, 2)
    scaler = Scaler("unit")
    train = Batches(xtr[:, None], ytr, 50, scaler, shuffle=True, seed=seed)   # (B, 1, 28, 28)
    test = Batches(xte[:, None], yte, 1000, scaler)
    model, loss_fn = conv_model(seed), bp.CrossEntropyLoss()
    probe = next(test.epoch(0))
    inspector = Inspector(probe[0][:100], probe[1][:100], loss_fn, (1, epochs))
    history = bp.fit(model, loss_fn, bp.Adam(model.parameters(), lr=3e-3), train, epochs,
                     test=test, callbacks=[inspector], seed=seed)
    result = bp.evaluate(model, loss_fn, test)
    config = {"dataset": "mnist", "preset": "conv (trained in Python)", "epochs": epochs,
              "seed": seed, "scale": "unit"}
    bp.save(model, out / "model.npz", classes=[str(i) for i in range(10)],
            scaling=scaler.to_dict(), extra={"dataset": "mnist", "config": config})
    metrics = {"test_accuracy": result.accuracy, "test_loss": result.loss,
               "history": history.epochs, "batch_loss": history.batch_loss, "config": config}
    (out / "metrics.json").write_text(json.dumps(metrics))
    (out / "inspect.json").write_text(json.dumps(inspector.state_dict()))
    return out
