"""``bareprop evaluate MODEL``: loss, accuracy and per-class accuracy on a test set."""
from __future__ import annotations

import argparse

from .. import core
from ..data import load
from ..inference import Predictor
from ..train import evaluate


def add_parser(sub) -> None:
    p = sub.add_parser("evaluate", help="evaluate a saved model on a dataset's test split")
    p.add_argument("model", help="model file (model.npz) or run folder")
    p.add_argument("--dataset", help="dataset (default: the one the model was trained on)")
    p.add_argument("--data-dir", dest="data_dir")
    p.add_argument("--no-verify", dest="verify", action="store_false")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from .. import io

    model, meta = io.load(args.model, with_meta=True)
    predictor = Predictor.from_meta(model, meta, source=args.model)
    name = args.dataset or meta.get("extra", {}).get("dataset", "mnist")
    ds = load(name, data_dir=args.data_dir, verify=args.verify)
    test = predictor.batches(ds.x_test, ds.y_test)
    result = evaluate(model, core.CrossEntropyLoss(), test)
    per_class = result.per_class_accuracy(ds.y_test, len(ds.classes))
    print(f"dataset: {name} (test, {len(ds.y_test)} examples)")
    print(f"loss: {result.loss:.4f}")
    print(f"accuracy: {result.accuracy:.4f}")
    print("per-class accuracy:")
    for cls, acc in zip(ds.classes, per_class):
        print(f"  {cls:>12}  {acc:.4f}")
    return 0
