"""``bareprop predict MODEL IMAGE...``: classify photos or scans of handwritten digits."""
from __future__ import annotations

import argparse
import json

import numpy as np

from ..inference import Predictor
from ..preprocess import read_digits


def add_parser(sub) -> None:
    p = sub.add_parser("predict", help="classify PNG/JPEG images with a saved model")
    p.add_argument("model", help="model file (model.npz) or run folder")
    p.add_argument("images", nargs="+", help="PNG or JPEG files, any size and colour")
    p.add_argument("--json", action="store_true", help="one JSON document for machines")
    p.add_argument("--top", type=int, default=3, help="how many classes to list (default 3)")
    p.set_defaults(run=run)


def predict(predictor: Predictor, paths, top: int = 3) -> list[dict]:
    images = read_digits(paths)                                        # (B, 28, 28) uint8
    probs = predictor.predict_proba(images)                            # (B, C)
    classes = predictor.classes
    results = []
    for path, p in zip(paths, probs):
        order = np.argsort(-p)[:top]
        results.append({"image": str(path), "class": classes[order[0]],
                        "top": [{"class": classes[i], "probability": float(p[i])} for i in order]})
    return results


def run(args: argparse.Namespace) -> int:
    predictor = Predictor.from_file(args.model)
    results = predict(predictor, args.images, max(1, args.top))
    if args.json:
        print(json.dumps(results, indent=1))
        return 0
    for r in results:
        tops = ", ".join(f"{t['class']} {t['probability']:.3f}" for t in r["top"])
        print(f"{r['image']}: {r['class']}   ({tops})")
    return 0
