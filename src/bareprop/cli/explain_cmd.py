"""``bareprop explain MODEL IMAGE...``: why the model said what it said about each image
(saliency, input x gradient, integrated gradients, Grad-CAM, occlusion), or with
``--fgsm EPS`` an adversarial version of it. Images are read as ``predict`` reads them."""
from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np

from ..errors import ConfigError
from ..inference import Predictor, predict_proba
from ..preprocess import read_digits


def add_parser(sub) -> None:
    from ..explain.methods import METHODS

    p = sub.add_parser("explain", help="show what a saved model looked at in PNG/JPEG images")
    p.add_argument("model", help="model file (model.npz) or run folder")
    p.add_argument("images", nargs="+", help="PNG or JPEG files, any size and colour")
    p.add_argument("--method", choices=METHODS, default="saliency",
                   help="the attribution (default: saliency)")
    p.add_argument("--target", type=int, default=None,
                   help="the class index to explain (default: each image's predicted class)")
    p.add_argument("--steps", type=int, default=50,
                   help="integrated gradients' steps (default: 50)")
    p.add_argument("--layer", type=int, default=None,
                   help="Grad-CAM's layer index (default: the last with (C, h, w) maps)")
    p.add_argument("--window", type=int, default=4,
                   help="occlusion's square window in pixels (default: 4)")
    p.add_argument("--stride", type=int, default=2, help="occlusion's stride (default: 2)")
    p.add_argument("--fgsm", type=float, default=None, metavar="EPS",
                   help="instead of a map: the fast-gradient-sign adversarial image moved "
                        "by EPS in the model's input scale (default: off)")
    p.add_argument("--out", default=".",
                   help="folder for the PNGs, IMAGE.METHOD.png (default: the current folder)")
    p.add_argument("--json", action="store_true",
                   help="print one JSON document with the raw maps, write no PNG")
    p.set_defaults(run=run)


def _bounds(predictor: Predictor) -> tuple[float, float]:
    """The model's input values of pixels 0 and 255: FGSM stays inside them."""
    ends = predictor.prepare(np.array([[0], [255]], np.uint8).repeat(
        int(np.prod(predictor.input_shape)), axis=1))
    return float(ends[0].flat[0]), float(ends[1].flat[0])


def run(args: argparse.Namespace) -> int:
    from ..explain import fgsm
    from ..explain.methods import SIGNED, check, picture, run as attribute
    from ..explain.probe import checked

    predictor = Predictor.from_file(args.model)
    model = predictor.model
    classes = len(predictor.classes)
    # every argument checked before any image is read or any work done
    if args.target is not None:
        checked(args.target, 1, classes)
    if args.fgsm is not None:
        if not math.isfinite(args.fgsm) or args.fgsm < 0:
            raise ConfigError(f"--fgsm must be a finite number >= 0, got {args.fgsm}")
        options = {}
    else:
        options = check(args.method, model, steps=args.steps, layer=args.layer,
                        window=args.window, stride=args.stride)
    out = None if args.json else _out_folder(args.out, args.images)
    images = read_digits(args.images)                                  # (B, 28, 28)
    x = predictor.prepare(images)
    probs = predict_proba(model, x)                     # as predict says it
    pred = probs.argmax(axis=1)
    if args.fgsm is not None:
        return _adversarial(args, predictor, images, x, pred, probs, fgsm, out)
    want = pred if args.target is None else np.full(len(x), args.target)
    attr = attribute(args.method, model, x, want, **options)
    names = predictor.classes
    results = [{"image": str(p), "class": names[pred[i]], "probability": float(probs[i, pred[i]]),
                "method": args.method, "target": names[want[i]]}
               for i, p in enumerate(args.images)]
    if args.json:
        print(json.dumps([{**r, "shape": list(attr.shape[1:]), "attribution": a.tolist()}
                          for r, a in zip(results, attr)]))
        return 0
    from ..explain import figures

    maps = picture(attr, images.shape[1:])
    for r, image, heat in zip(results, images, maps):
        path = out / f"{Path(r['image']).stem}.{args.method}.png"
        title = (f"predicted {r['class']} ({r['probability']:.2f}); {args.method} of "
                 f"class {r['target']}")
        figures.save_explanation(image, heat, SIGNED[args.method], title, path, args.method)
        print(f"{r['image']}: {r['class']} ({r['probability']:.3f}); wrote {path}")
    return 0


def _adversarial(args, predictor, images, x, pred, probs, fgsm, out) -> int:
    model, names = predictor.model, predictor.classes
    adv = fgsm(model, x, pred, args.fgsm, bounds=_bounds(predictor))
    probs_adv = predict_proba(model, adv)
    pred_adv = probs_adv.argmax(axis=1)
    results = [{"image": str(p), "eps": args.fgsm,
                "class": names[pred[i]], "probability": float(probs[i, pred[i]]),
                "adversarial_class": names[pred_adv[i]],
                "adversarial_probability": float(probs_adv[i, pred_adv[i]]),
                "max_change": float(np.max(np.abs(adv[i] - x[i])))}
               for i, p in enumerate(args.images)]
    if args.json:
        print(json.dumps([{**r, "adversarial": a.tolist()} for r, a in zip(results, adv)]))
        return 0
    from ..explain import figures
    from ..explain.methods import picture

    side = images.shape[1:]
    before, after = picture(x, side), picture(adv, side)
    for i, r in enumerate(results):
        path = out / f"{Path(r['image']).stem}.fgsm.png"
        title = (f"{r['class']} ({r['probability']:.2f}) -> {r['adversarial_class']} "
                 f"({r['adversarial_probability']:.2f}), eps {args.fgsm:g}")
        figures.save_adversarial(before[i], after[i] - before[i], after[i], title, path)
        print(f"{r['image']}: {r['class']} ({r['probability']:.3f}) -> "
              f"{r['adversarial_class']} ({r['adversarial_probability']:.3f}) at eps "
              f"{args.fgsm:g}; wrote {path}")
    return 0


def _out_folder(out, images) -> Path:
    """The PNGs' folder, made if missing, after checking that they can be written (the
    figures' functions then always draw): a plotting library, no two images of one name (their PNGs would overwrite each other),
    a folder (not a file) at ``out``. One-line errors, before any image is read."""
    from .. import plots
    from ..errors import OutputError

    if plots._pyplot() is None:
        raise ConfigError(plots.INSTALL_HINT + " (or use --json)")
    stems = [Path(p).stem for p in images]
    twice = sorted({s for s in stems if stems.count(s) > 1})
    if twice:
        raise ConfigError(f"two images are named {twice[0]!r}: their PNGs would overwrite "
                          "each other in --out; rename one, or explain them separately")
    path = Path(out)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"--out {out}: cannot make that folder ({exc.strerror or exc}); "
                          "pick another") from None
    if not path.is_dir():
        raise OutputError(f"--out {out}: a file, not a folder; pick a folder")
    return path
