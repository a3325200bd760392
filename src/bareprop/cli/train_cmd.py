"""``bareprop train``: load data, build the model of a preset/flags, fit, write the run folder.

Run folder (``--out``, default ``runs/<timestamp>``): model.npz, metrics.json, loss.png,
and checkpoint.npz (rewritten atomically after every epoch; ``--resume DIR`` continues it).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import __version__, core, io
from ..data import Batches, Scaler, load, split
from ..data.augment import PRESETS as AUGMENTS
from ..data.augment import make_augment
from ..data.batches import SCALES
from ..errors import ConfigError
from ..train import (Checkpointer, EarlyStopping, History, LRSchedule, MaxNorm, ProgressBar,
                     evaluate, fit)
from ..train.checkpoint import load_checkpoint
from ..train.inspect import Inspector
from .config import (DTYPES, OPTIMIZERS, PRESETS, SCHEDULES, TrainConfig, build_model,
                     build_optimizer, build_scheduler, make_config)
from .main import fraction, nonneg_float, positive_float, positive_int


def add_parser(sub) -> None:
    p = sub.add_parser("train", help="train an MLP and write model, metrics and plots",
                       description="Train an MLP. Explicit flags override the --preset.",
                       argument_default=argparse.SUPPRESS)
    p.add_argument("--resume", metavar="DIR", help="continue the run in DIR from its checkpoint")
    add_config_arguments(p)
    p.set_defaults(run=run)


def add_config_arguments(p) -> None:
    """The flags that map one-to-one onto TrainConfig fields (shared with compare)."""
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
    p.add_argument("--lr", type=positive_float, help="learning rate (peak lr for onecycle)")
    p.add_argument("--optimizer", help=", ".join(OPTIMIZERS))
    p.add_argument("--momentum", type=nonneg_float)
    p.add_argument("--nesterov", action="store_true")
    p.add_argument("--weight-decay", dest="weight_decay", type=nonneg_float,
                   help="L2 (sgd, adam, rmsprop, adagrad) or decoupled (adamw) weight decay")
    p.add_argument("--schedule", help=f"learning-rate schedule: {', '.join(SCHEDULES)}")
    p.add_argument("--step-size", dest="step_size", type=positive_int, help="epochs per step")
    p.add_argument("--gamma", type=positive_float, help="lr factor (step, multistep, "
                   "exponential, plateau)")
    p.add_argument("--milestones", type=positive_int, nargs="+", help="multistep epochs")
    p.add_argument("--warmup-epochs", dest="warmup_epochs", type=positive_int)
    p.add_argument("--min-lr", dest="min_lr", type=nonneg_float)
    p.add_argument("--lr-patience", dest="lr_patience", type=positive_int)
    p.add_argument("--dropout", type=fraction, help="dropout after each hidden layer")
    p.add_argument("--input-dropout", dest="input_dropout", type=fraction)
    p.add_argument("--batchnorm", action="store_true", help="BatchNorm1d after hidden Linears")
    p.add_argument("--max-norm", dest="max_norm", type=positive_float,
                   help="max L2 norm of each hidden unit's incoming weights")
    p.add_argument("--augment", help=f"image augmentation: {', '.join(AUGMENTS)}, or auto "
                                     "(affine for mnist, flip for fashion-mnist)")
    p.add_argument("--val-fraction", dest="val_fraction", type=fraction,
                   help="hold out this fraction of the training set for validation")
    p.add_argument("--early-stop", dest="early_stop", type=positive_int, metavar="PATIENCE",
                   help="stop after PATIENCE epochs without val-loss gain; keep the best")
    p.add_argument("--inspect-epochs", dest="inspect_epochs", type=positive_int, nargs="+",
                   help="epochs at which to record activation/gradient histograms "
                        "(default: the first and the last)")
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


@dataclass
class Run:
    """Everything a training run is made of, built from a TrainConfig alone."""

    cfg: TrainConfig
    classes: tuple
    input_shape: tuple          # of one image, e.g. (28, 28)
    scaler: Scaler
    train: Batches
    val: Batches | None
    test: Batches
    model: core.Sequential
    optimizer: object
    loss_fn: core.CrossEntropyLoss
    scheduler: object
    stateful: dict
    callbacks: list


def build_run(cfg: TrainConfig, out: Path, quiet: bool) -> Run:
    ds = load(cfg.dataset, data_dir=cfg.data_dir, verify=cfg.verify, progress=not quiet)
    x_train, y_train, held_out = ds.x_train, ds.y_train, None
    if cfg.val_fraction:
        (x_train, y_train), held_out = split(x_train, y_train, cfg.val_fraction, cfg.seed)
    scaler = Scaler.fit(cfg.scale, x_train)  # statistics from the training part only
    val = Batches(*held_out, 1000, scaler, cfg.dtype) if held_out else None
    augment = make_augment(cfg.augment, side=ds.x_train.shape[1], dataset=cfg.dataset)
    train = Batches(x_train, y_train, cfg.batch_size, scaler, cfg.dtype, shuffle=True,
                    seed=cfg.seed, drop_last=cfg.drop_last, augment=augment)
    test = Batches(ds.x_test, ds.y_test, 1000, scaler, cfg.dtype)
    model = build_model(cfg, train.n_features, len(ds.classes))
    optimizer = build_optimizer(cfg, model.parameters())
    loss_fn = core.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
    scheduler = build_scheduler(cfg, optimizer, len(train))
    callbacks, stateful = [], {}
    if scheduler is not None:
        callbacks.append(LRSchedule(scheduler))
        stateful["scheduler"] = callbacks[-1]
    if cfg.max_norm:
        callbacks.append(MaxNorm(cfg.max_norm))
    if cfg.early_stop:
        callbacks.append(EarlyStopping("val_loss", patience=cfg.early_stop))
        stateful["early_stopping"] = callbacks[-1]
    probe = next(test.epoch(0))
    inspect_at = cfg.inspect_epochs or (1, cfg.epochs)
    callbacks.append(Inspector(probe[0][:500], probe[1][:500], loss_fn, inspect_at))
    stateful["inspector"] = callbacks[-1]
    callbacks.append(ProgressBar(disable=quiet))
    meta = {"config": cfg.to_dict(), "architecture": io.architecture(model)}
    callbacks.append(Checkpointer(out / "checkpoint.npz", meta, stateful))
    return Run(cfg, ds.classes, ds.x_train.shape[1:], scaler, train, val, test, model,
               optimizer, loss_fn, scheduler, stateful, callbacks)


def _config_and_checkpoint(args, explicit: dict):
    """(config, run folder, checkpoint or None): a fresh run, or the run --resume names."""
    if not getattr(args, "resume", None):
        cfg = make_config(explicit)
        return cfg, prepare_out_dir(cfg.out), None
    extra_flags = sorted(set(explicit) - {"data_dir", "verify"})
    if extra_flags:
        raise ConfigError(f"--resume continues a run with its saved settings; drop "
                          f"{', '.join('--' + f.replace('_', '-') for f in extra_flags)}")
    out = Path(args.resume)
    if not (out / "checkpoint.npz").is_file():
        raise ConfigError(f"{out} has no checkpoint.npz to resume from; start a run there "
                          f"with: bareprop train --out {out}")
    out = prepare_out_dir(args.resume)
    ckpt = load_checkpoint(out / "checkpoint.npz")
    saved = dict(ckpt["config"], out=str(out), **explicit)
    return make_config(saved, preset=saved.get("preset")), out, ckpt


def _restore(r: Run, ckpt: dict) -> tuple[History, int]:
    """Load a checkpoint into a freshly built run; returns its History and next epoch."""
    r.model.load_state_dict(ckpt["model"])
    r.optimizer.load_state_dict(ckpt["optimizer"])
    for name, obj in r.stateful.items():
        obj.load_state_dict(ckpt["callbacks"][name])
    done = int(ckpt["epoch"]) if not ckpt.get("stopped") else r.cfg.epochs
    return History.from_dict(ckpt["history"]), done


def run(args: argparse.Namespace) -> int:
    quiet = getattr(args, "quiet", False)
    cfg, out, ckpt = _config_and_checkpoint(args, explicit_settings(args))
    t_start = time.perf_counter()
    r = build_run(cfg, out, quiet)
    history, start_epoch = History(), 0
    if ckpt is not None:
        history, start_epoch = _restore(r, ckpt)
        print(f"resuming {out} after epoch {start_epoch} of {cfg.epochs}", file=sys.stderr)
    r.model.summary()
    print(f"preset {cfg.preset}: {cfg.dataset}, {cfg.epochs} epochs, batch {cfg.batch_size}, "
          f"{cfg.optimizer} lr {cfg.lr:g}" + (f" ({cfg.schedule})" if cfg.schedule != "none"
                                              else "")
          + f", scale {cfg.scale}, seed {cfg.seed}", flush=True)

    history = fit(r.model, r.loss_fn, r.optimizer, r.train, cfg.epochs, val=r.val, test=r.test,
                  callbacks=r.callbacks, update_order=cfg.update_order, history=history,
                  start_epoch=start_epoch, seed=cfg.seed)
    # evaluated again rather than read from the last epoch: early stopping may have
    # restored earlier weights, and the per-class figures need the predictions
    result = evaluate(r.model, r.loss_fn, r.test)
    extra = {"dataset": cfg.dataset, "classes": list(r.classes), "scaler": r.scaler.to_dict(),
             "input_shape": list(r.input_shape), "config": cfg.to_dict()}
    io.save(r.model, out / "model.npz", extra=extra)
    metrics = {
        "test_accuracy": result.accuracy,
        "test_loss": result.loss,
        "per_class_accuracy": result.per_class_accuracy(r.test.y, len(r.classes)).tolist(),
        "seconds_per_epoch": statistics.median(e["seconds"] for e in history.epochs)
        if history.epochs else None,
        "total_seconds": time.perf_counter() - t_start,
        "epochs_run": len(history.epochs),
        "history": history.epochs,
        "batch_loss": history.batch_loss,
        "config": cfg.to_dict(),
        "machine": machine(),
        "bareprop_version": __version__,
    }
    io.atomic_write(out / "metrics.json", json.dumps(metrics, indent=1).encode())
    records = r.stateful["inspector"].records
    if records:
        io.atomic_write(out / "inspect.json", json.dumps(records).encode())
    from .. import plots

    plots.save_training_plot(history, out / "loss.png", title=f"{cfg.dataset} ({cfg.preset})")
    print(f"wrote {out}/model.npz, metrics.json, checkpoint.npz" +
          (", loss.png" if (out / "loss.png").exists() else ""), file=sys.stderr)
    print(f"test accuracy: {result.accuracy:.4f}")
    return 0
