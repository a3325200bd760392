"""``bareprop predict MODEL IMAGE...``: classify photos or scans of handwritten digits."""
from __future__ import annotations

import argparse
import json

import numpy as np

from ..core.activations import stable_softmax
from ..data import Scaler
from ..preprocess import load_grey, to_mnist
from .modelfile import load_for_inference


def add_parser(sub) -> None:
    p = sub.add_parser("predict", help="classify PNG/JPEG images with a saved model")
    p.add_argument("model", help="model file (model.npz) or run folder")
    p.add_argument("images", nargs="+", help="PNG or JPEG files, any size and colour")
    p.add_argument("--json", action="store_true", help="one JSON document for machines")
    p.add_argument("--top", type=int, default=3, help="how many classes to list (default 3)")
    p.set_defaults(run=run)


def predict(model, meta, paths, top: int = 3, scaler=None) -> list[dict]:
    extra = meta.get("extra", {})
    classes = extra.get("classes") or [str(i) for i in range(10)]
    if scaler is None:
        scaler = Scaler.from_dict(extra["scaler"]) if "scaler" in extra else Scaler("unit")
    images = np.stack([to_mnist(load_grey(p)) for p in paths])        # (B, 28, 28)
    x = scaler.apply(images.reshape(len(images), -1), model.dtype)
    model.eval()
    probs = stable_softmax(model(x))                                   # (B, C)
    results = []
    for path, p in zip(paths, probs):
        order = np.argsort(-p)[:top]
        results.append({"image": str(path), "class": classes[order[0]],
                        "top": [{"class": classes[i], "probability": float(p[i])} for i in order]})
    return results


def run(args: argparse.Namespace) -> int:
    model, extra, scaler = load_for_inference(args.model)
    results = predict(model, {"extra": extra}, args.images, max(1, args.top), scaler)
    if args.json:
        print(json.dumps(results, indent=1))
        return 0
    for r in results:
        tops = ", ".join(f"{t['class']} {t['probability']:.3f}" for t in r["top"])
        print(f"{r['image']}: {r['class']}   ({tops})")
    return 0
