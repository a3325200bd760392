"""``bareprop train``: load data, build the model of a preset/flags, fit, write the run folder.

Run folder (``--out``, default ``runs/<timestamp>``): model.npz, metrics.json, loss.png.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from .. import __version__, core, io
from ..data import Batches, Scaler, load
from ..data.batches import SCALES
from ..errors import ConfigError
from ..train import ProgressBar, evaluate, fit
from .config import DTYPES, OPTIMIZERS, PRESETS, TrainConfig, build_model, build_optimizer, \
    make_config
from .main import nonneg_float, positive_float, positive_int, fraction


def add_parser(sub) -> None:
    p = sub.add_parser("train", help="train an MLP and write model, metrics and plots",
                       description="Train an MLP. Explicit flags override the --preset.",
                       argument_default=argparse.SUPPRESS)
    p.add_argument("--preset", help=f"starting settings: {', '.join(PRESETS)} (default: default)")
    p.add_argument("--dataset", help="mnist or fashion-mnist (default: mnist)")
    p.add_argument("--data-dir", dest="data_dir", help="folder with the dataset's IDX files")
    p.add_argument("--hidden", type=positive_int, nargs="+", help="hidden layer widths")
    p.add_argument("--activation", nargs="+",
                   help=f"one for all hidden layers or one per layer: "
                        f"{', '.join(core.activations.ACTIVATIONS)}")
    p.add_argument("--init", help=f"weight init: {', '.join(core.init.INITIALIZERS)}")
    p.add_argument("--epochs", type=positive_int)
    p.add_argument("--batch-size", dest="batch_size", type=positive_int)
    p.add_argument("--lr", type=positive_float, help="learning rate")
    p.add_argument("--optimizer", help=", ".join(OPTIMIZERS))
    p.add_argument("--momentum", type=nonneg_float)
    p.add_argument("--nesterov", action="store_true")
    p.add_argument("--weight-decay", dest="weight_decay", type=nonneg_float)
    p.add_argument("--clip-delta", dest="clip_delta", type=positive_float,
                   help="clip back-propagated deltas to [-c, c] as the notebook did")
    p.add_argument("--update-order", dest="update_order",
                   help="standard, or notebook: update each layer before back-propagating "
                        "through it (the seed notebook's order)")
    p.add_argument("--label-smoothing", dest="label_smoothing", type=fraction)
    p.add_argument("--scale", help=f"input scaling: {', '.join(SCALES)}")
    p.add_argument("--drop-last", dest="drop_last", action="store_true")
    p.add_argument("--seed", type=int)
    p.add_argument("--dtype", help=", ".join(DTYPES))
    p.add_argument("--no-verify", dest="verify", action="store_false",
                   help="skip the content checksum of local data files")
    p.add_argument("--out", help="run folder (default: runs/<timestamp>)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=run)


def explicit_settings(args: argparse.Namespace) -> dict:
    """The TrainConfig fields the user typed (argparse.SUPPRESS leaves the rest out)."""
    fields = set(TrainConfig.__dataclass_fields__)
    return {k: v for k, v in vars(args).items() if k in fields}


def prepare_out_dir(out: str | None) -> Path:
    """Create the run folder and prove it is writable before any training starts."""
    path = Path(out) if out else Path("runs") / time.strftime("%Y%m%d-%H%M%S")
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise ConfigError(f"cannot write to output folder {path}: {exc.strerror}; "
                          "choose another with --out") from None
    return path


def machine() -> dict:
    return {"platform": platform.platform(), "python": platform.python_version(),
            "numpy": np.__version__, "cpus": os.cpu_count()}


def run(args: argparse.Namespace) -> int:
    cfg = make_config(explicit_settings(args))
    out = prepare_out_dir(cfg.out)
    t_start = time.perf_counter()
    ds = load(cfg.dataset, data_dir=cfg.data_dir, verify=cfg.verify,
              progress=not getattr(args, "quiet", False))
    scaler = Scaler.fit(cfg.scale, ds.x_train)
    train = Batches(ds.x_train, ds.y_train, cfg.batch_size, scaler, cfg.dtype, shuffle=True,
                    seed=cfg.seed, drop_last=cfg.drop_last)
    test = Batches(ds.x_test, ds.y_test, 1000, scaler, cfg.dtype)
    model = build_model(cfg, train.n_features, len(ds.classes))
    optimizer = build_optimizer(cfg, model.parameters())
    loss_fn = core.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
    model.summary()
    print(f"preset {cfg.preset}: {cfg.dataset}, {cfg.epochs} epochs, batch {cfg.batch_size}, "
          f"{cfg.optimizer} lr {cfg.lr:g}, scale {cfg.scale}, seed {cfg.seed}", flush=True)

    history = fit(model, loss_fn, optimizer, train, cfg.epochs, test=test,
                  callbacks=[ProgressBar(disable=getattr(args, "quiet", False))],
                  update_order=cfg.update_order)
    result = evaluate(model, loss_fn, test)
    extra = {"dataset": cfg.dataset, "classes": list(ds.classes), "scaler": scaler.to_dict(),
             "input_shape": list(ds.x_train.shape[1:]), "config": cfg.to_dict()}
    io.save(model, out / "model.npz", extra=extra)
    metrics = {
        "test_accuracy": result.accuracy,
        "test_loss": result.loss,
        "per_class_accuracy": result.per_class_accuracy(ds.y_test, len(ds.classes)).tolist(),
        "seconds_per_epoch": statistics.median(e["seconds"] for e in history.epochs),
        "total_seconds": time.perf_counter() - t_start,
        "history": history.epochs,
        "batch_loss": history.batch_loss,
        "config": cfg.to_dict(),
        "machine": machine(),
        "bareprop_version": __version__,
    }
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1))
    from .. import plots

    plots.save_training_plot(history, out / "loss.png", title=f"{cfg.dataset} ({cfg.preset})")
    print(f"wrote {out}/model.npz, metrics.json" +
          (", loss.png" if (out / "loss.png").exists() else ""), file=sys.stderr)
    print(f"test accuracy: {result.accuracy:.4f}")
    return 0
