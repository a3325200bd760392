"""TrainConfig: one frozen dataclass whose fields map one-to-one onto
``bareprop train`` flags, the presets, and the checks that refuse a bad config
before any work. Building things from a config is experiment.build's job.
"""
from __future__ import annotations

import dataclasses
import numbers
import os
from dataclasses import dataclass

import numpy as np

from .. import core
from ..data.batches import SCALES
from ..errors import ConfigError, unknown_name
from ..train.step import UPDATE_ORDERS

OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop", "adagrad")
DTYPES = ("float32", "float64")
SCHEDULES = ("none", "step", "multistep", "exponential", "cosine", "linear", "onecycle", "plateau")
TUPLE_FIELDS = ("hidden", "activation", "milestones", "inspect_epochs")


@dataclass(frozen=True)
class TrainConfig:
    """Every setting of a training run (saved in metrics.json and every checkpoint)."""

    dataset: str = "mnist"
    data_dir: str | None = None
    hidden: tuple[int, ...] = (128,)
    activation: tuple[str, ...] = ("relu",)
    init: str = "kaiming_uniform"
    epochs: int = 10
    batch_size: int = 128
    lr: float = 1e-3
    optimizer: str = "adam"
    momentum: float = 0.0
    nesterov: bool = False
    weight_decay: float = 0.0
    clip_delta: float | None = None
    update_order: str = "standard"
    label_smoothing: float = 0.0
    schedule: str = "none"
    step_size: int = 10
    gamma: float = 0.1
    milestones: tuple[int, ...] = ()
    warmup_epochs: int = 5
    min_lr: float = 0.0
    lr_patience: int = 3
    dropout: float = 0.0
    input_dropout: float = 0.0
    batchnorm: bool = False
    max_norm: float | None = None
    augment: str = "none"
    val_fraction: float = 0.0
    early_stop: int | None = None
    inspect_epochs: tuple[int, ...] = ()
    scale: str = "unit"
    drop_last: bool = False
    seed: int = 0
    dtype: str = "float32"
    verify: bool = True
    out: str | None = None
    preset: str = "default"

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        for key in TUPLE_FIELDS:
            d[key] = list(d[key])
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        d = {k: v for k, v in d.items() if k in known}
        for key in TUPLE_FIELDS:
            if key in d:
                d[key] = tuple(d[key])
        return cls(**d)


PRESETS: dict[str, dict] = {
    # The seed notebook exactly: raw pixels, N(0, 1/fan_in) weights, SGD 1e-5, deltas clipped to 1.
    "seed": dict(hidden=(128,), activation=("relu",), init="notebook", scale="raw",
                 optimizer="sgd", lr=1e-5, momentum=0.0, clip_delta=1.0, batch_size=128,
                 epochs=3, update_order="notebook"),
    # The notebook's tf.keras reference: Glorot-uniform, zero bias, no clipping, SGD 1e-4, raw.
    "keras-seed": dict(hidden=(128,), activation=("relu",), init="xavier_uniform", scale="raw",
                       optimizer="sgd", lr=1e-4, momentum=0.0, clip_delta=None, batch_size=128,
                       epochs=3),
    # What plain `bareprop train` should give: the same 784-128-10 net, trained properly:
    # standardised inputs, He init, Adam under a one-cycle schedule, label smoothing.
    "default": dict(scale="standard", optimizer="adam", lr=3e-3, schedule="onecycle",
                    label_smoothing=0.1, epochs=10),
    # The most accurate MLP here within 15 minutes of training on 2 cores: 784-1024-1024-10
    # with dropout, label smoothing, augmentation (affine for digits, mirroring for clothes)
    # and Nesterov SGD under a one-cycle schedule.
    "best-mlp": dict(hidden=(1024, 1024), dropout=0.3, augment="auto", scale="standard",
                     optimizer="sgd", lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-5,
                     schedule="onecycle", label_smoothing=0.1, batch_size=256, epochs=48),
}


def check_config(cfg: TrainConfig) -> TrainConfig:
    """Refuse invalid settings before any work, naming the value and the valid range."""
    from ..data.datasets import DATASETS

    if cfg.dataset not in DATASETS:
        raise unknown_name("dataset", cfg.dataset, DATASETS)
    if cfg.preset not in PRESETS:
        raise unknown_name("preset", cfg.preset, PRESETS)
    if not cfg.hidden or any(h < 1 for h in cfg.hidden):
        raise ConfigError(f"--hidden sizes must be positive integers, got {list(cfg.hidden)}")
    if len(cfg.activation) not in (1, len(cfg.hidden)):
        raise ConfigError(f"--activation takes one name for all hidden layers or one per "
                          f"layer ({len(cfg.hidden)}), got {len(cfg.activation)}")
    for name in cfg.activation:
        if name not in core.activations.ACTIVATIONS:
            raise unknown_name("activation", name, core.activations.ACTIVATIONS)
    if cfg.init not in core.init.INITIALIZERS:
        raise unknown_name("init", cfg.init, core.init.INITIALIZERS)
    if cfg.optimizer not in OPTIMIZERS:
        raise unknown_name("optimizer", cfg.optimizer, OPTIMIZERS)
    if cfg.scale not in SCALES:
        raise unknown_name("scale", cfg.scale, SCALES)
    if cfg.update_order not in UPDATE_ORDERS:
        raise unknown_name("update order", cfg.update_order, UPDATE_ORDERS)
    if cfg.update_order == "notebook" and cfg.optimizer != "sgd":
        raise ConfigError("--update-order notebook needs --optimizer sgd (the notebook's rule)")
    if cfg.dtype not in DTYPES:
        raise unknown_name("dtype", cfg.dtype, DTYPES)
    if not cfg.lr > 0 or not np.isfinite(cfg.lr):
        raise ConfigError(f"--lr must be a positive number, got {cfg.lr}")
    if isinstance(cfg.seed, bool) or not isinstance(cfg.seed, numbers.Integral) or cfg.seed < 0:
        raise ConfigError(f"--seed must be an integer >= 0, got {cfg.seed!r}")
    if cfg.epochs < 1:
        raise ConfigError(f"--epochs must be at least 1, got {cfg.epochs}")
    if cfg.batch_size < 1:
        raise ConfigError(f"--batch-size must be at least 1, got {cfg.batch_size}")
    if cfg.momentum < 0:
        raise ConfigError(f"--momentum must be >= 0, got {cfg.momentum}")
    if cfg.nesterov and (cfg.optimizer != "sgd" or cfg.momentum <= 0):
        raise ConfigError("--nesterov needs --optimizer sgd and --momentum > 0")
    if cfg.weight_decay < 0:
        raise ConfigError(f"--weight-decay must be >= 0, got {cfg.weight_decay}")
    if cfg.clip_delta is not None and not cfg.clip_delta > 0:
        raise ConfigError(f"--clip-delta must be positive, got {cfg.clip_delta}")
    if not 0 <= cfg.label_smoothing <= 1:
        raise ConfigError(f"--label-smoothing must be in [0, 1], got {cfg.label_smoothing}")
    if cfg.schedule not in SCHEDULES:
        raise unknown_name("schedule", cfg.schedule, SCHEDULES)
    for name in ("dropout", "input_dropout"):
        if not 0 <= getattr(cfg, name) < 1:
            raise ConfigError(f"--{name.replace('_', '-')} must be in [0, 1), got "
                              f"{getattr(cfg, name)}")
    if cfg.max_norm is not None and not cfg.max_norm > 0:
        raise ConfigError(f"--max-norm must be positive, got {cfg.max_norm}")
    if not 0 <= cfg.val_fraction < 1:
        raise ConfigError(f"--val-fraction must be in [0, 1), got {cfg.val_fraction}")
    if cfg.early_stop is not None and cfg.val_fraction == 0:
        raise ConfigError("--early-stop watches the validation loss: add --val-fraction "
                          "(e.g. --val-fraction 0.1)")
    if cfg.schedule == "plateau" and cfg.val_fraction == 0:
        raise ConfigError("--schedule plateau watches the validation loss: add --val-fraction")
    if cfg.schedule == "multistep" and not cfg.milestones:
        raise ConfigError("--schedule multistep needs --milestones (epochs, e.g. 10 20)")
    if cfg.batchnorm and cfg.batch_size < 2:
        raise ConfigError("--batchnorm needs --batch-size >= 2")
    from ..data.augment import PRESETS as AUGMENTS

    if cfg.augment not in AUGMENTS and cfg.augment != "auto":
        raise unknown_name("augmentation", cfg.augment, [*AUGMENTS, "auto"])
    check_memory(cfg)
    return cfg


# Every registered dataset has 28x28 images; the memory estimate needs the input width
# before any data is loaded.
INPUT_FEATURES = 28 * 28
# Bytes per parameter, in units of the dtype: weights, grads, up to two optimizer
# moments (Adam, centred RMSprop), a state_dict copy for the checkpoint, the best
# weights kept by early stopping.
COPIES_PER_PARAMETER = 6
# The largest run we let start: 80% of this machine's memory, and never more than
# 64 GiB (an MLP that needs more is a typo, e.g. --hidden 100000 100000).
MEMORY_CAP = 64 * 2**30


def memory_bound() -> int:
    try:
        physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):   # not POSIX: the fixed cap alone
        return MEMORY_CAP
    return min(int(0.8 * physical), MEMORY_CAP)


def estimated_bytes(cfg: TrainConfig, n_classes: int = 10) -> tuple[int, int]:
    """(parameters, bytes) a run of ``cfg`` needs at least: parameter copies plus the
    activations of a training batch or a 1000-example evaluation batch (x4: forward
    caches, masks and their gradients)."""
    widths = [INPUT_FEATURES, *cfg.hidden, n_classes]
    params = sum(a * b + b for a, b in zip(widths, widths[1:]))
    item = np.dtype(cfg.dtype).itemsize
    acts = max(cfg.batch_size, 1000) * sum(widths) * item * 4
    return params, params * item * COPIES_PER_PARAMETER + acts


def check_memory(cfg: TrainConfig) -> None:
    params, need = estimated_bytes(cfg)
    bound = memory_bound()
    if need > bound:
        raise ConfigError(
            f"--hidden {' '.join(map(str, cfg.hidden))} with --batch-size {cfg.batch_size} "
            f"needs about {need / 2**30:,.1f} GiB ({params:,} parameters), more than the "
            f"{bound / 2**30:,.1f} GiB bareprop allows here (80% of memory, at most 64 GiB); "
            "use smaller --hidden layers or --batch-size")


# Which flags each optimizer / schedule reads: a typed flag that nothing reads is refused
# rather than silently ignored.
FLAG_USERS = {
    "momentum": ("optimizer", ("sgd", "rmsprop")),
    "nesterov": ("optimizer", ("sgd",)),
    "step_size": ("schedule", ("step",)),
    "milestones": ("schedule", ("multistep",)),
    "gamma": ("schedule", ("step", "multistep", "exponential", "plateau")),
    "warmup_epochs": ("schedule", ("linear",)),
    "min_lr": ("schedule", ("cosine", "plateau")),
    "lr_patience": ("schedule", ("plateau",)),
}


def check_flags(explicit: dict, cfg: TrainConfig) -> None:
    """Refuse flags the user typed (``explicit``) that the chosen optimizer or schedule
    never reads. Only typed flags: presets set some of these fields for their own choice,
    and a flag that changes the optimizer may leave them behind."""
    for name, (field_name, users) in FLAG_USERS.items():
        if explicit.get(name) is None or getattr(cfg, field_name) in users:
            continue
        flag = "--" + name.replace("_", "-")
        raise ConfigError(f"{flag} applies only to --{field_name} {' or '.join(users)}, "
                          f"not {getattr(cfg, field_name)}; drop {flag} or pick "
                          f"--{field_name} {users[0]}")


def check_data_size(cfg: TrainConfig, n_train: int) -> None:
    """What only the loaded data can tell: some training examples are left after the
    validation split, and batch norm never gets a batch of one."""
    if n_train < 1:
        raise ConfigError(f"--val-fraction {cfg.val_fraction:g} leaves no training examples; "
                          "use a smaller --val-fraction")
    if cfg.batchnorm and not cfg.drop_last and n_train % cfg.batch_size == 1:
        raise ConfigError(f"with --batch-size {cfg.batch_size} the last batch of each epoch "
                          f"holds 1 of the {n_train} training examples, and --batchnorm needs "
                          "at least 2; add --drop-last or change --batch-size")


def make_config(explicit: dict, preset: str | None = None) -> TrainConfig:
    """Defaults <- preset <- explicit flags (explicit flags always win)."""
    preset = preset or explicit.get("preset") or "default"
    if preset not in PRESETS:
        raise unknown_name("preset", preset, PRESETS)
    merged = {**PRESETS[preset], **{k: v for k, v in explicit.items() if v is not None}}
    merged["preset"] = preset
    for key in TUPLE_FIELDS:
        if key in merged:
            merged[key] = tuple(merged[key])
    return check_config(TrainConfig(**merged))
