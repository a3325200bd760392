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
from ..train.loggers import KINDS as LOG_KINDS
from ..train.step import UPDATE_ORDERS

OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop", "adagrad")
DTYPES = ("float32", "float64")
SCHEDULES = ("none", "step", "multistep", "exponential", "cosine", "linear", "onecycle", "plateau")
TUPLE_FIELDS = ("hidden", "activation", "milestones", "inspect_epochs", "log")


@dataclass(frozen=True)
class TrainConfig:
    """Every setting of a training run (saved in metrics.json and every checkpoint)."""

    dataset: str = "mnist"
    data_dir: str | None = None
    arch: str | None = None     # a Sequential in one string (experiment/arch.py); None: the MLP
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
    log: tuple[str, ...] = ()   # --log: "tensorboard", "csv" (train/loggers.py)

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


#: every field's default (an --arch run keeps the MLP fields at these)
DEFAULTS = {f.name: f.default for f in dataclasses.fields(TrainConfig)}

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
    # LeNet-5 (LeCun et al. 1998) as it is usually taught, on 28x28 inputs: the first
    # conv pads by 2 so it sees the paper's 32x32, C3 is fully connected (the paper wires
    # each C3 map to a subset of S2's), subsampling is plain average pooling (the paper's
    # had a trainable scale and bias), and F6 feeds a Linear instead of the RBF output.
    # tanh with LeCun-normal init (variance 1/fan_in, the scale the paper's tanh was
    # designed for); standardised inputs and Adam under a one-cycle schedule, as the
    # default MLP, so the two compare architecture for architecture.
    "lenet5": dict(arch="conv(6,5,padding=2) tanh avgpool(2) conv(16,5) tanh avgpool(2) "
                        "flatten linear(120) tanh linear(84) tanh linear(10)",
                   init="lecun_normal", scale="standard", optimizer="adam", lr=2e-3,
                   schedule="onecycle", batch_size=128, epochs=10),
    # A CNN sized to the budget (<= 15 min a run on 2 cores; the one design trained in
    # full, accuracy in docs/results.md, not the result of a search): two
    # conv blocks (3x3 "same" conv, batch norm, ReLU, 2x2 max pool) of 32 and 64 channels
    # (28 -> 14 -> 7), then a batch-normed 128-unit hidden layer with dropout. The convs
    # before batch norm have no bias (its mean subtraction cancels one). Augmentation
    # "auto" (shifts and rotations for digits, mirroring for clothes), label smoothing,
    # He init for the ReLUs, Adam under a one-cycle schedule, 15 epochs. Timed and
    # measured in docs/results.md; wider or deeper nets (two convs per block) cost 2-3x
    # per epoch here and did not fit 15 epochs in the budget.
    "cnn": dict(arch="conv(32,3,padding=1,bias=False) batchnorm relu maxpool(2) "
                     "conv(64,3,padding=1,bias=False) batchnorm relu maxpool(2) flatten "
                     "linear(128,bias=False) batchnorm relu dropout(0.5) linear(10)",
                init="kaiming_uniform", augment="auto", scale="standard", optimizer="adam",
                lr=3e-3, schedule="onecycle", label_smoothing=0.1, batch_size=128, epochs=15),
}

# Settings that describe the MLP of --hidden; with --arch the arch string says it all.
MLP_FIELDS = ("hidden", "activation", "batchnorm", "dropout", "input_dropout")


def check_config(cfg: TrainConfig, param_limit: tuple[int, str] | None = None) -> TrainConfig:
    """Refuse invalid settings before any work, naming the value and the valid range.

    An --arch model is built (weights drawn, no data loaded) to check its shapes, class
    count and memory; ``param_limit`` = (count, "what it is") caps its parameters below
    the memory bound (a checkpoint's config may not declare more than it stores)."""
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
    for name in cfg.log:
        if name not in LOG_KINDS:
            raise unknown_name("--log", name, LOG_KINDS)
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
    if cfg.arch is None:
        check_memory(cfg)
        return cfg
    if not isinstance(cfg.arch, str):
        raise ConfigError(f"--arch must be a string of layers, got {cfg.arch!r}")
    for name in MLP_FIELDS:
        if getattr(cfg, name) != DEFAULTS[name]:
            raise mlp_flag_error(name, cfg)
    # the whole model is built here, before any data loads: shapes, class count and
    # memory are refused now, and a layer whose weights would pass the memory bound is
    # refused before they are allocated
    item = np.dtype(cfg.dtype).itemsize
    limit = param_limit or (memory_bound() // (item * COPIES_PER_PARAMETER),
                            "fit in memory here")
    model = arch_model(cfg, max_params=limit)
    if has_batchnorm1d(model) and cfg.batch_size < 2:
        raise ConfigError("the batchnorm after a flat layer in --arch needs --batch-size >= 2")
    check_memory(cfg, model)
    return cfg


def arch_model(cfg: TrainConfig, image_shape=None, n_classes: int | None = None,
               max_params=None) -> core.Sequential:
    """The model of ``cfg.arch`` for the dataset's grey images, which get a channel
    axis: (H, W) -> input shape (1, H, W). Image shape and class count default to what
    the dataset's registry entry says, so this runs before any data is loaded."""
    from ..data.datasets import DATASETS
    from .arch import build

    spec = DATASETS[cfg.dataset]
    image_shape = tuple(image_shape or spec.image_shape)
    if len(image_shape) == 2:
        image_shape = (1, *image_shape)
    return build(cfg.arch, image_shape, n_classes=n_classes or len(spec.classes),
                 dataset=cfg.dataset, seed=cfg.seed, dtype=cfg.dtype, init=cfg.init,
                 clip_delta=cfg.clip_delta, max_params=max_params)


def has_batchnorm1d(model) -> bool:
    """Whether a layer of ``model`` needs batches of at least 2 examples in training."""
    return any(isinstance(m, core.BatchNorm1d) for m in model.modules())


def mlp_flag_error(name: str, cfg: TrainConfig) -> ConfigError:
    flag = "--" + name.replace("_", "-")
    from_preset = PRESETS.get(cfg.preset, {}).get("arch") == cfg.arch
    source = f"--arch (here from --preset {cfg.preset})" if from_preset else "--arch"
    return ConfigError(f"{flag} shapes the MLP, but {source} describes the whole model; drop "
                       f"{flag} and say it in the arch string (e.g. linear(256), relu, "
                       "batchnorm, dropout(0.3))")


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


def estimated_bytes(cfg: TrainConfig, n_classes: int = 10, model=None) -> tuple[int, int]:
    """(parameters, bytes) a run of ``cfg`` needs at least: parameter copies plus the
    activations of a training batch (x4: outputs, forward caches or masks, and their
    gradients) or of a 1000-example evaluation batch (x2: outputs and the caches eval
    mode still keeps). ``model``: the built --arch model, whose layer shapes give the
    activation sizes (else the MLP's widths do)."""
    if model is None:
        widths = [INPUT_FEATURES, *cfg.hidden, n_classes]
        params = sum(a * b + b for a, b in zip(widths, widths[1:]))
    else:
        from .arch import activation_sizes

        widths, params = activation_sizes(model), model.num_parameters()
    item = np.dtype(cfg.dtype).itemsize
    acts = max(4 * cfg.batch_size, 2 * 1000) * sum(widths) * item
    if model is not None:       # each Conv2d keeps its im2col scratch between steps
        acts += cfg.batch_size * item * conv_scratch_per_example(model)
    return params, params * item * COPIES_PER_PARAMETER + acts


def conv_scratch_per_example(model, shape=None) -> int:
    """Values of Conv2d scratch one training example of ``shape`` (default: the model's
    input shape) costs ``model`` (every conv keeps its own, so they add up), nested
    Sequentials included."""
    from ..core import Conv2d, Sequential

    total, shape = 0, model.input_shape if shape is None else shape
    for layer in model.layers:
        if isinstance(layer, Sequential):
            total += conv_scratch_per_example(layer, shape)
        elif isinstance(layer, Conv2d):
            total += layer.scratch_per_example(shape)
        shape = layer.output_shape(shape)
    return total


def check_memory(cfg: TrainConfig, model=None) -> None:
    params, need = estimated_bytes(cfg, model=model)
    bound = memory_bound()
    if need > bound:
        what, fix = ((f"--hidden {' '.join(map(str, cfg.hidden))}", "smaller --hidden layers")
                     if model is None else ("--arch", "fewer or narrower --arch layers"))
        raise ConfigError(
            f"{what} with --batch-size {cfg.batch_size} "
            f"needs about {need / 2**30:,.1f} GiB ({params:,} parameters), more than the "
            f"{bound / 2**30:,.1f} GiB bareprop allows here (80% of memory, at most 64 GiB); "
            f"use {fix} or a smaller --batch-size")


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
    if cfg.arch is not None:
        for name in MLP_FIELDS:
            if explicit.get(name) is not None:
                raise mlp_flag_error(name, cfg)
    for name, (field_name, users) in FLAG_USERS.items():
        if explicit.get(name) is None or getattr(cfg, field_name) in users:
            continue
        flag = "--" + name.replace("_", "-")
        raise ConfigError(f"{flag} applies only to --{field_name} {' or '.join(users)}, "
                          f"not {getattr(cfg, field_name)}; drop {flag} or pick "
                          f"--{field_name} {users[0]}")


def check_data_size(cfg: TrainConfig, n_train: int, model=None) -> None:
    """What only the loaded data can tell: some training examples are left after the
    validation split, and batch norm over features (``--batchnorm``, or a batchnorm
    after a flat layer of ``model``) never gets a batch of one."""
    if n_train < 1:
        raise ConfigError(f"--val-fraction {cfg.val_fraction:g} leaves no training examples; "
                          "use a smaller --val-fraction")
    bn = "--batchnorm" if cfg.batchnorm else \
        "the batchnorm after a flat layer in --arch" if model is not None and \
        has_batchnorm1d(model) else None
    if bn and not cfg.drop_last and n_train % cfg.batch_size == 1:
        raise ConfigError(f"with --batch-size {cfg.batch_size} the last batch of each epoch "
                          f"holds 1 of the {n_train} training examples, and {bn} needs "
                          "at least 2; add --drop-last or change --batch-size")


def make_config(explicit: dict, preset: str | None = None,
                param_limit: tuple[int, str] | None = None) -> TrainConfig:
    """Defaults <- preset <- explicit flags (explicit flags always win). With an arch
    (typed or the preset's), the preset's MLP settings are dropped; typed ones are
    refused (check_config, check_flags). ``param_limit``: see check_config."""
    preset = preset or explicit.get("preset") or "default"
    if preset not in PRESETS:
        raise unknown_name("preset", preset, PRESETS)
    typed = {k: v for k, v in explicit.items() if v is not None}
    merged = {**PRESETS[preset], **typed}
    if merged.get("arch") is not None:
        merged = {k: v for k, v in merged.items() if k not in MLP_FIELDS or k in typed}
    merged["preset"] = preset
    for key in TUPLE_FIELDS:
        if key in merged:
            merged[key] = tuple(merged[key])
    return check_config(TrainConfig(**merged), param_limit=param_limit)
