"""TrainConfig: one frozen dataclass whose fields map one-to-one onto ``bareprop train``
flags (experiment/flags.py), with the names its fields may take.

Not here: the presets (presets.py), the checks that refuse a bad config before any work
and ``make_config`` (checks.py), the memory bound (memory.py), building things from a
config (build.py).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

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

# Settings that describe the MLP of --hidden; with --arch the arch string says it all.
MLP_FIELDS = ("hidden", "activation", "batchnorm", "dropout", "input_dropout")
