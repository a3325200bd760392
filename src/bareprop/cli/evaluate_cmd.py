"""``bareprop evaluate MODEL``: loss, accuracy and per-class accuracy on a test set."""
from __future__ import annotations

import argparse

from .. import core
from ..data import load
from ..inference import Predictor
from ..train import evaluate
from .args import count


def add_parser(sub) -> None:
    p = sub.add_parser("evaluate", help="evaluate a saved model on a dataset's test split")
    p.add_argument("model", help="model file (model.npz) or run folder")
    p.add_argument("--dataset", help="dataset (default: the one the model was trained on)")
    p.add_argument("--data-dir", dest="data_dir")
    p.add_argument("--no-verify", dest="verify", action="store_false")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    predictor = Predictor.from_file(args.model)
    extra = predictor.meta.get("extra") or {}
    name = args.dataset or extra.get("dataset", "mnist")
    ds = load(name, data_dir=args.data_dir, verify=args.verify, splits=("test",))
    test = predictor.batches(ds.x_test, ds.y_test)
    model = predictor.model
    result = evaluate(model, core.CrossEntropyLoss(), test)
    per_class = result.per_class_accuracy(ds.y_test, len(ds.classes))
    print(f"dataset: {name} (test, {count(len(ds.y_test), 'example')})")
    print(f"loss: {result.loss:.4f} (cross-entropy, no label smoothing)")
    # train's test_loss (metrics.json, the epoch lines) includes the run's label
    # smoothing, so the two would disagree unexplained: name and print that one too
    smoothing = float((extra.get("config") or {}).get("label_smoothing") or 0.0)
    if smoothing:
        smoothed = evaluate(model, core.CrossEntropyLoss(label_smoothing=smoothing), test)
        print(f"loss with label smoothing {smoothing:g}: {smoothed.loss:.4f} "
              "(the test_loss train reports)")
    print(f"accuracy: {result.accuracy:.4f}")
    print("per-class accuracy:")
    for cls, acc in zip(ds.classes, per_class):
        print(f"  {cls:>12}  {acc:.4f}")
    return 0
