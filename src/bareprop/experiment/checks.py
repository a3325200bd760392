"""The one door every TrainConfig goes through: ``make_config`` (defaults <- preset <-
explicit flags) and the checks that refuse a bad config before any work, each a
ConfigError naming the value, what would be valid, and the field it is about.

Not here: the memory bound (memory.py), the --arch grammar (arch.py).
"""
from __future__ import annotations

import numbers

import numpy as np

from .. import core
from ..core.catalog import MAX_PARAMETERS
from ..data.batches import SCALES
from ..errors import ConfigError, unknown_name
from ..train.loggers import KINDS as LOG_KINDS
from ..train.step import UPDATE_ORDERS
from .config import DEFAULTS, DTYPES, MLP_FIELDS, OPTIMIZERS, SCHEDULES, TUPLE_FIELDS, TrainConfig
from . import memory
from .presets import PRESETS


def check_config(cfg: TrainConfig, param_limit: tuple[int, str] | None = None) -> TrainConfig:
    """Refuse invalid settings before any work, naming the value and the valid range.

    An --arch model is built for its shapes alone (no weight drawn, no data loaded) to
    check its shapes, class count and memory; every model's parameters stay within
    core.catalog.MAX_PARAMETERS and ``param_limit`` = (count, "what it is") caps them
    further (a checkpoint's config may not declare more than it stores)."""
    from ..data.registry import DATASETS

    if cfg.dataset not in DATASETS:
        raise unknown_name("dataset", cfg.dataset, DATASETS, field="dataset")
    if cfg.preset not in PRESETS:
        raise unknown_name("preset", cfg.preset, PRESETS, field="preset")
    if not cfg.hidden or any(h < 1 for h in cfg.hidden):
        raise ConfigError(f"--hidden sizes must be positive integers, got {list(cfg.hidden)}",
                          field="hidden")
    if len(cfg.activation) not in (1, len(cfg.hidden)):
        raise ConfigError(f"--activation takes one name for all hidden layers or one per "
                          f"layer ({len(cfg.hidden)}), got {len(cfg.activation)}",
                          field="activation")
    from .arch import activation_names

    for name in cfg.activation:
        if name not in activation_names():
            raise unknown_name("activation", name, activation_names(), field="activation")
    if cfg.init not in core.init.INITIALIZERS:
        raise unknown_name("init", cfg.init, core.init.INITIALIZERS, field="init")
    for name in cfg.log:
        if name not in LOG_KINDS:
            raise unknown_name("--log", name, LOG_KINDS, field="log")
    if cfg.optimizer not in OPTIMIZERS:
        raise unknown_name("optimizer", cfg.optimizer, OPTIMIZERS, field="optimizer")
    if cfg.scale not in SCALES:
        raise unknown_name("scale", cfg.scale, SCALES, field="scale")
    if cfg.update_order not in UPDATE_ORDERS:
        raise unknown_name("update order", cfg.update_order, UPDATE_ORDERS, field="update_order")
    if cfg.update_order == "notebook" and cfg.optimizer != "sgd":
        # field: the order comes with a preset (seed) more often than it is typed
        raise ConfigError("--update-order notebook needs --optimizer sgd (the notebook's rule)",
                          field="optimizer")
    if cfg.dtype not in DTYPES:
        raise unknown_name("dtype", cfg.dtype, DTYPES, field="dtype")
    if not cfg.lr > 0 or not np.isfinite(cfg.lr):
        raise ConfigError(f"--lr must be a positive number, got {cfg.lr}", field="lr")
    if isinstance(cfg.seed, bool) or not isinstance(cfg.seed, numbers.Integral) or cfg.seed < 0:
        raise ConfigError(f"--seed must be an integer >= 0, got {cfg.seed!r}", field="seed")
    if cfg.epochs < 1:
        raise ConfigError(f"--epochs must be at least 1, got {cfg.epochs}", field="epochs")
    if cfg.batch_size < 1:
        raise ConfigError(f"--batch-size must be at least 1, got {cfg.batch_size}",
                          field="batch_size")
    if cfg.momentum < 0:
        raise ConfigError(f"--momentum must be >= 0, got {cfg.momentum}", field="momentum")
    if cfg.nesterov and (cfg.optimizer != "sgd" or cfg.momentum <= 0):
        # field: the setting that breaks it (nesterov itself comes with best-mlp)
        raise ConfigError("--nesterov needs --optimizer sgd and --momentum > 0",
                          field="optimizer" if cfg.optimizer != "sgd" else "momentum")
    if cfg.weight_decay < 0:
        raise ConfigError(f"--weight-decay must be >= 0, got {cfg.weight_decay}",
                          field="weight_decay")
    if cfg.clip_delta is not None and not cfg.clip_delta > 0:
        raise ConfigError(f"--clip-delta must be positive, got {cfg.clip_delta}",
                          field="clip_delta")
    if not 0 <= cfg.label_smoothing <= 1:
        raise ConfigError(f"--label-smoothing must be in [0, 1], got {cfg.label_smoothing}",
                          field="label_smoothing")
    if cfg.schedule not in SCHEDULES:
        raise unknown_name("schedule", cfg.schedule, SCHEDULES, field="schedule")
    for name in ("dropout", "input_dropout"):
        if not 0 <= getattr(cfg, name) < 1:
            raise ConfigError(f"--{name.replace('_', '-')} must be in [0, 1), got "
                              f"{getattr(cfg, name)}", field=name)
    if cfg.max_norm is not None and not cfg.max_norm > 0:
        raise ConfigError(f"--max-norm must be positive, got {cfg.max_norm}", field="max_norm")
    if not 0 <= cfg.val_fraction < 1:
        raise ConfigError(f"--val-fraction must be in [0, 1), got {cfg.val_fraction}",
                          field="val_fraction")
    if cfg.early_stop is not None and cfg.val_fraction == 0:
        raise ConfigError("--early-stop watches the validation loss: add --val-fraction "
                          "(e.g. --val-fraction 0.1)", field="early_stop")
    if cfg.schedule == "plateau" and cfg.val_fraction == 0:
        raise ConfigError("--schedule plateau watches the validation loss: add --val-fraction",
                          field="schedule")
    if cfg.schedule == "multistep" and not cfg.milestones:
        raise ConfigError("--schedule multistep needs --milestones (epochs, e.g. 10 20)",
                          field="schedule")
    if cfg.batchnorm and cfg.batch_size < 2:
        raise ConfigError("--batchnorm needs --batch-size >= 2", field="batch_size")
    from ..data.augment import PRESETS as AUGMENTS

    if cfg.augment not in AUGMENTS and cfg.augment != "auto":
        raise unknown_name("augmentation", cfg.augment, [*AUGMENTS, "auto"], field="augment")
    if cfg.arch is None:
        memory.check_memory(cfg)
        check_parameter_count(memory.estimated_bytes(cfg)[0], "--hidden", "hidden")
        return cfg
    if not isinstance(cfg.arch, str):
        raise ConfigError(f"--arch must be a string of layers, got {cfg.arch!r}", field="arch")
    for name in MLP_FIELDS:
        if getattr(cfg, name) != DEFAULTS[name]:
            raise mlp_flag_error(name, cfg)
    # the model is built here for its shapes, before any data loads: shapes, class count
    # and memory are refused now, and a layer whose weights would pass a bound is refused
    # before it is built
    item = np.dtype(cfg.dtype).itemsize
    limit = param_limit or (memory.memory_bound() // (item * memory.COPIES_PER_PARAMETER),
                            "fit in memory here")
    try:      # shapes only: no weight is drawn, whoever asks (the web app checks forms)
        model = arch_model(cfg, max_params=limit, shapes_only=True)
    except ConfigError as exc:     # the grammar's and shapes' refusals: all about --arch
        if exc.field is None:
            exc.field = "arch"
        raise
    if has_batchnorm1d(model) and cfg.batch_size < 2:
        raise ConfigError("the batchnorm after a flat layer in --arch needs --batch-size >= 2",
                          field="batch_size")
    memory.check_memory(cfg, model)
    return cfg


def check_parameter_count(n: int, what: str, field: str) -> None:
    """ConfigError when a model of ``n`` parameters passes the one bound every model
    shares (core.catalog.MAX_PARAMETERS)."""
    if n > MAX_PARAMETERS:
        raise ConfigError(f"{what} makes a model of {n:,} parameters, more than any model "
                          f"bareprop builds ({MAX_PARAMETERS:,}); use fewer or narrower "
                          "layers", field=field)


def arch_model(cfg: TrainConfig, image_shape=None, n_classes: int | None = None,
               max_params=None, shapes_only: bool = False) -> core.Sequential:
    """The model of ``cfg.arch`` for the dataset's grey images, which get a channel
    axis: (H, W) -> input shape (1, H, W). Image shape and class count default to what
    the dataset's registry entry says, so this runs before any data is loaded."""
    from ..data.registry import DATASETS
    from .arch import build

    spec = DATASETS[cfg.dataset]
    image_shape = tuple(image_shape or spec.image_shape)
    if len(image_shape) == 2:
        image_shape = (1, *image_shape)
    return build(cfg.arch, image_shape, n_classes=n_classes or len(spec.classes),
                 dataset=cfg.dataset, seed=cfg.seed, dtype=cfg.dtype, init=cfg.init,
                 clip_delta=cfg.clip_delta, max_params=max_params, shapes_only=shapes_only)


def has_batchnorm1d(model) -> bool:
    """Whether a layer of ``model`` needs batches of at least 2 examples in training."""
    return any(isinstance(m, core.BatchNorm1d) for m in model.modules())


def mlp_flag_error(name: str, cfg: TrainConfig) -> ConfigError:
    flag = "--" + name.replace("_", "-")
    from_preset = PRESETS.get(cfg.preset, {}).get("arch") == cfg.arch
    source = f"--arch (here from --preset {cfg.preset})" if from_preset else "--arch"
    return ConfigError(f"{flag} shapes the MLP, but {source} describes the whole model; drop "
                       f"{flag} and say it in the arch string (e.g. linear(256), relu, "
                       "batchnorm, dropout(0.3))", field=name)


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
                          f"--{field_name} {users[0]}", field=name)


def check_data_size(cfg: TrainConfig, n_train: int, model=None) -> None:
    """What only the loaded data can tell: some training examples are left after the
    validation split, and batch norm over features (``--batchnorm``, or a batchnorm
    after a flat layer of ``model``) never gets a batch of one."""
    if n_train < 1:
        raise ConfigError(f"--val-fraction {cfg.val_fraction:g} leaves no training examples; "
                          "use a smaller --val-fraction", field="val_fraction")
    bn = "--batchnorm" if cfg.batchnorm else \
        "the batchnorm after a flat layer in --arch" if model is not None and \
        has_batchnorm1d(model) else None
    if bn and not cfg.drop_last and n_train % cfg.batch_size == 1:
        raise ConfigError(f"with --batch-size {cfg.batch_size} the last batch of each epoch "
                          f"holds 1 of the {n_train} training examples, and {bn} needs "
                          "at least 2; add --drop-last or change --batch-size", field="batch_size")


def make_config(explicit: dict, preset: str | None = None,
                param_limit: tuple[int, str] | None = None) -> TrainConfig:
    """Defaults <- preset <- explicit flags (explicit flags always win). With an arch
    (typed or the preset's), the preset's MLP settings are dropped; typed ones are
    refused (check_config, check_flags). ``param_limit``: see check_config."""
    preset = preset or explicit.get("preset") or "default"
    if preset not in PRESETS:
        raise unknown_name("preset", preset, PRESETS, field="preset")
    typed = {k: v for k, v in explicit.items() if v is not None}
    merged = {**PRESETS[preset], **typed}
    if merged.get("arch") is not None:
        merged = {k: v for k, v in merged.items() if k not in MLP_FIELDS or k in typed}
    merged["preset"] = preset
    for key in TUPLE_FIELDS:
        if key in merged:
            merged[key] = tuple(merged[key])
    return check_config(TrainConfig(**merged), param_limit=param_limit)
