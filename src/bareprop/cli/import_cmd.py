"""``bareprop import WEIGHTS (--like MODEL | --preset NAME | --arch LAYERS) --out FILE``:
a PyTorch, Keras or ONNX model's weights (safetensors, .npz, .onnx; never pickle) into a
bareprop model file that evaluate, predict and report read like a trained one."""
from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import ConfigError
from .args import check_new_file


def add_parser(sub) -> None:
    from ..interop.weights import LAYOUTS

    p = sub.add_parser("import", help="read PyTorch/Keras weights into a bareprop model file",
                       description="Read weights (safetensors, .npz or ONNX; never a pickle) "
                                   "into the bareprop model of the same architecture and "
                                   "write it as a model file. See docs/interop.md.")
    p.add_argument("weights", help="a .safetensors, .npz or .onnx weights file")
    p.add_argument("--like", metavar="MODEL",
                   help="a model file (or run folder) with the architecture, input scaling "
                        "and classes to use")
    p.add_argument("--preset", help="the architecture of this preset (instead of --like)")
    p.add_argument("--arch", metavar="LAYERS", help="the architecture as train's --arch")
    p.add_argument("--dataset", default=None, help="mnist or fashion-mnist (with --preset/"
                                                   "--arch: input shape, classes; default "
                                                   "mnist)")
    p.add_argument("--scale", default=None,
                   help="how the source model scaled raw pixels: raw, unit (x/255, "
                        "torchvision's ToTensor; the default) or standard (the dataset's "
                        "training mean and std, read from its files)")
    p.add_argument("--data-dir", dest="data_dir", help="dataset folder (for --scale standard)")
    p.add_argument("--layout", default="auto", choices=LAYOUTS,
                   help="torch: names of the PyTorch state_dict; keras: arr_0.. from "
                        "np.savez(path, *model.get_weights()); auto (default) tells them apart")
    p.add_argument("--out", required=True, help="the model file to write")
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    p.set_defaults(run=run)


def _template(args):
    """(model, input shape, classes, scaler, extra) of --like, or of --preset/--arch."""
    from ..data import Scaler
    from ..data.registry import DATASETS
    from ..inference import Predictor

    if args.like:
        if args.preset or args.arch or args.dataset or args.scale:
            raise ConfigError("--like takes the architecture, scaling and classes from the "
                              "model file; drop --preset/--arch/--dataset/--scale")
        p = Predictor.from_file(args.like, check_finite=False)
        return p.model, p.input_shape, p.classes, p.scaler, dict(p.meta.get("extra") or {})
    if not (args.preset or args.arch):
        raise ConfigError("say which architecture the weights are for: --like MODEL, "
                          "--preset NAME or --arch LAYERS")
    from ..experiment import make_config
    from ..experiment.build import build_model

    explicit = {k: v for k, v in (("arch", args.arch), ("dataset", args.dataset),
                                  ("scale", args.scale)) if v}
    cfg = make_config(explicit, preset=args.preset)
    spec = DATASETS[cfg.dataset]
    model = build_model(cfg, spec.image_shape, len(spec.classes))
    kind = args.scale or "unit"
    if kind == "standard":
        from ..data import load

        x = load(cfg.dataset, data_dir=args.data_dir, splits=("train",)).x_train
        scaler = Scaler.fit(kind, x)
    else:
        scaler = Scaler.fit(kind, None)
    return model, model.input_shape, list(spec.classes), scaler, {"dataset": cfg.dataset}


def run(args: argparse.Namespace) -> int:
    from .. import modelfile
    from ..interop.weights import load_state_dict_from

    out = Path(args.out)
    check_new_file(out, args.overwrite)
    model, shape, classes, scaler, extra = _template(args)
    load_state_dict_from(model, args.weights, args.layout)
    extra["imported_from"] = str(args.weights)
    modelfile.save(model, out, input_shape=shape, classes=classes,
            scaling=scaler.to_dict() if scaler is not None else None, extra=extra)
    print(f"wrote {out}: {model.num_parameters():,} parameters from {args.weights}")
    return 0
