"""Assembling an experiment from a TrainConfig: the model, optimizer, schedule, data,
callbacks and run folder. A library module, so the CLI, a web app or a distributed
launcher all build a run the same way.
"""
from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import core, modelfile, optim
from ..data import Batches, Scaler, load, split
from ..data.augment import make_augment
from ..fast.augment import compiled as compiled_augment
from ..interop.onnx_export import save_onnx
from ..runs.layout import CHECKPOINT
from ..train import (Checkpointer, EarlyStopping, History, LRSchedule, MaxNorm, ProgressBar)
from ..train.inspector import Inspector
from ..train.loggers import make_loggers
from .arch import activation
from .checks import arch_model, check_data_size
from .config import TrainConfig


def build_model(cfg: TrainConfig, input_shape, n_classes: int) -> core.Sequential:
    """The model of ``cfg`` for examples of ``input_shape`` (one image, e.g. (28, 28)).

    With ``cfg.arch``, the layers it names, for images given a channel axis (input
    shape (1, 28, 28)). Otherwise the MLP: Flatten (for images), then Linear +
    activation per hidden layer, then a Linear to the classes. The model's
    ``input_shape`` is the shape its batches must have."""
    input_shape = (input_shape,) if isinstance(input_shape, int) else tuple(input_shape)
    if cfg.arch is not None:
        return arch_model(cfg, input_shape, n_classes)
    rng = np.random.default_rng(cfg.seed)
    acts = cfg.activation * len(cfg.hidden) if len(cfg.activation) == 1 else cfg.activation
    layers, width = [], int(np.prod(input_shape))
    if len(input_shape) > 1:
        layers.append(core.Flatten())
    if cfg.input_dropout:
        layers.append(core.Dropout(cfg.input_dropout))
    for h, act in zip(cfg.hidden, acts):
        # a bias before BatchNorm is cancelled by its mean subtraction: leave it out
        layers.append(core.Linear(width, h, bias=not cfg.batchnorm, init=cfg.init, rng=rng,
                                  dtype=cfg.dtype))
        if cfg.batchnorm:
            layers.append(core.BatchNorm1d(h, dtype=cfg.dtype))
        layers.append(activation(act, prev=layers[-1]))
        if cfg.dropout:
            layers.append(core.Dropout(cfg.dropout))
        width = h
    layers.append(core.Linear(width, n_classes, init=cfg.init, rng=rng, dtype=cfg.dtype))
    return core.Sequential(*layers, clip_delta=cfg.clip_delta, input_shape=input_shape)


def build_optimizer(cfg: TrainConfig, params) -> optim.Optimizer:
    if cfg.optimizer == "sgd":
        return optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov,
                         weight_decay=cfg.weight_decay)
    if cfg.optimizer == "rmsprop":
        return optim.RMSprop(params, lr=cfg.lr, momentum=cfg.momentum,
                             weight_decay=cfg.weight_decay)
    cls = {"adam": optim.Adam, "adamw": optim.AdamW, "adagrad": optim.Adagrad}[cfg.optimizer]
    return cls(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


def build_scheduler(cfg: TrainConfig, optimizer, batches_per_epoch: int):
    """The --schedule of ``cfg`` (None for "none"); epochs count from 0."""
    from ..optim import lr_scheduler as S

    name = cfg.schedule
    if name == "none":
        return None
    if name == "step":
        return S.StepLR(optimizer, cfg.step_size, cfg.gamma)
    if name == "multistep":
        return S.MultiStepLR(optimizer, cfg.milestones, cfg.gamma)
    if name == "exponential":
        return S.ExponentialLR(optimizer, cfg.gamma)
    if name == "cosine":
        return S.CosineAnnealingLR(optimizer, cfg.epochs, cfg.min_lr)
    if name == "linear":
        return S.LinearLR(optimizer, start_factor=0.1, total_iters=cfg.warmup_epochs)
    if name == "onecycle":
        return S.OneCycleLR(optimizer, cfg.lr, cfg.epochs * batches_per_epoch,
                            cycle_momentum=cfg.optimizer in ("sgd", "adam", "adamw")
                            and (cfg.optimizer != "sgd" or cfg.momentum > 0))
    return S.ReduceLROnPlateau(optimizer, factor=cfg.gamma, patience=cfg.lr_patience,
                               min_lr=cfg.min_lr)


def machine() -> dict:
    return {"platform": platform.platform(), "python": platform.python_version(),
            "numpy": np.__version__, "cpus": os.cpu_count()}


@dataclass
class Run:
    """Everything a training run is made of, built from a TrainConfig alone."""

    cfg: TrainConfig
    classes: tuple
    input_shape: tuple          # of one example as the model takes it: (28, 28), (1, 28, 28)
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


def build_run(cfg: TrainConfig, out: Path, quiet: bool, comm=None, tuning: bool = False) -> Run:
    """The Run of ``cfg`` writing into ``out``. ``tuning`` (a sweep's trial, which must
    not look at the test set): the inspection probe is drawn from the validation part.
    ``comm`` (data-parallel, distributed.Comm):
    rank 0 alone shows progress, records the inspection probe and writes checkpoints
    (which record the process count, for --resume); the other ranks build the same
    model, optimizer and callback state, and write nothing."""
    root = comm is None or comm.rank == 0
    # the other ranks read what rank 0 found or downloaded first (they write nothing)
    ds = load(cfg.dataset, data_dir=cfg.data_dir, verify=cfg.verify, progress=not quiet,
              download_missing=root)
    x_train, y_train, held_out = ds.x_train, ds.y_train, None
    if cfg.val_fraction:
        (x_train, y_train), held_out = split(x_train, y_train, cfg.val_fraction, cfg.seed)
    model = build_model(cfg, ds.x_train.shape[1:], len(ds.classes))
    check_data_size(cfg, len(x_train), model)

    def shaped(x):       # a view: (N, 28, 28) -> (N, 1, 28, 28) for an image model
        return x.reshape(len(x), *model.input_shape)

    scaler = Scaler.fit(cfg.scale, x_train)  # statistics from the training part only
    val = Batches(shaped(held_out[0]), held_out[1], 1000, scaler, cfg.dtype) \
        if held_out else None
    # augmentation takes (B, 28, 28) or (B, 1, 28, 28) alike (it works on B planes)
    # (its sampling compiled for float32 where numba runs: the same bits, a quarter of the time)
    augment = compiled_augment(make_augment(cfg.augment, side=ds.x_train.shape[1],
                                            dataset=cfg.dataset), cfg.dtype)
    train = Batches(shaped(x_train), y_train, cfg.batch_size, scaler, cfg.dtype, shuffle=True,
                    seed=cfg.seed, drop_last=cfg.drop_last, augment=augment)
    test = Batches(shaped(ds.x_test), ds.y_test, 1000, scaler, cfg.dtype)
    optimizer = build_optimizer(cfg, model.parameters())
    loss_fn = core.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
    scheduler = build_scheduler(cfg, optimizer, len(train))
    # loggers first: a batch's logged lr is the one it trained with (before LRSchedule
    # steps it), and an epoch is logged before the checkpoint says it is done
    callbacks, stateful = (make_loggers(cfg.log, out, graph=save_onnx) if root else []), {}
    if scheduler is not None:
        callbacks.append(LRSchedule(scheduler))
        stateful["scheduler"] = callbacks[-1]
    if cfg.max_norm:
        callbacks.append(MaxNorm(cfg.max_norm))
    if cfg.early_stop:
        callbacks.append(EarlyStopping("val_loss", patience=cfg.early_stop))
        stateful["early_stopping"] = callbacks[-1]
    probe = next((val if tuning and val is not None else test).epoch(0))
    inspect_at = (cfg.inspect_epochs or (1, cfg.epochs)) if root else ()
    callbacks.append(Inspector(probe[0][:500], probe[1][:500], loss_fn, inspect_at))
    stateful["inspector"] = callbacks[-1]
    callbacks.append(ProgressBar(disable=quiet or not root))
    meta = {"config": cfg.to_dict(), "architecture": modelfile.architecture(model),
            "world_size": 1 if comm is None else comm.size}
    if root:
        callbacks.append(Checkpointer(out / CHECKPOINT, meta, stateful))
    return Run(cfg, ds.classes, model.input_shape, scaler, train, val, test, model,
               optimizer, loss_fn, scheduler, stateful, callbacks)


def restore(r: Run, ckpt: dict) -> tuple[History, int]:
    """Load a checkpoint into a freshly built run; returns its History and next epoch."""
    r.model.load_state_dict(ckpt["model"])
    r.optimizer.load_state_dict(ckpt["optimizer"])
    for name, obj in r.stateful.items():
        obj.load_state_dict(ckpt["callbacks"][name])
    done = int(ckpt["epoch"]) if not ckpt.get("stopped") else r.cfg.epochs
    return History.from_dict(ckpt["history"]), done
