"""The train flags as data: one ``Flag`` per TrainConfig field that a user sets, with the
converter that turns its text into the field's value, its help text and its metavar.

Both front ends read this one table, so they accept and refuse the same values with
the same words: ``cli/args.py`` builds the argparse flags of ``bareprop train`` and
``bareprop compare`` from it, and ``web/form.py`` converts the Train form's JSON fields
with the same converters before make_config/check_flags see them.

A converter takes one value's text and returns the value, or raises ConfigError whose
message says what was wrong without naming the flag (``must be at least 1, got 0``):
each front end names the setting in its own words (argparse: ``argument --epochs: ...``,
the page: ``epochs: ...``). ``Flag.parse`` adds the field to the error.

Not here: what a valid *config* is (the cross-field checks live in checks.py, the
presets in presets.py, the memory bound in memory.py); flags that are not TrainConfig fields (``--resume``,
``--quiet``, ``--framework``) belong to their command.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

from .. import core
from ..data.augment import PRESETS as AUGMENTS
from ..data.batches import SCALES
from ..errors import ConfigError, unknown_name
from ..train.loggers import KINDS as LOG_KINDS
from . import arch
from .config import DTYPES, OPTIMIZERS, SCHEDULES
from .presets import PRESETS


# -- converters: one value's text -> the value, or ConfigError saying why not ---------
def _integer(text: str, minimum: int) -> int:
    kind, bound = (("a positive integer", "at least 1") if minimum == 1
                   else ("an integer >= 0", ">= 0"))
    try:
        value = int(text)
    except ValueError:
        raise ConfigError(f"expected {kind}, got {text!r}") from None
    if value < minimum:
        raise ConfigError(f"must be {bound}, got {value}")
    return value


def positive_int(text: str) -> int:
    return _integer(text, 1)


def nonneg_int(text: str) -> int:
    return _integer(text, 0)


def _number(text: str, strict: bool) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ConfigError(f"expected a number, got {text!r}") from None
    ok = value > 0 if strict else value >= 0      # False for nan, so nan is refused
    if not ok or value == math.inf:
        raise ConfigError(
            f"must be a {'positive number' if strict else 'number >= 0'}, got {text}")
    return value


def positive_float(text: str) -> float:
    return _number(text, strict=True)


def nonneg_float(text: str) -> float:
    return _number(text, strict=False)


def fraction(text: str) -> float:
    value = nonneg_float(text)
    if value > 1:
        raise ConfigError(f"must be between 0 and 1, got {text}")
    return value


def text(value: str) -> str:
    """A name or an arch string, kept as typed: make_config checks it against its list
    (so an unknown one gets the closest valid name)."""
    return value


def log_kinds(value: str) -> list[str]:
    """``tensorboard,csv`` -> ["tensorboard", "csv"], each a known kind."""
    kinds = [k.strip() for k in value.split(",") if k.strip()]
    for kind in kinds:
        if kind not in LOG_KINDS:
            raise unknown_name("log kind", kind, LOG_KINDS)
    if not kinds:
        raise ConfigError(f"expected one of {', '.join(LOG_KINDS)}, got {value!r}")
    return kinds


@dataclass(frozen=True)
class Flag:
    """One TrainConfig field as a flag.

    convert: one value's text -> the value (ConfigError if refused).
    many:    one or more values (a tuple field): ``--hidden 256 128``.
    repeat:  may be given again, each value's list extending the field (``--log``).
    switch:  takes no value; the field is set to ``switch`` when the flag is given
             (True for ``--nesterov``, False for ``--no-verify``); None: takes a value.
    option:  the flag's name when it is not ``--`` + the field with dashes.
    """

    field: str
    convert: Callable[[str], Any] = text
    help: str | None = None
    metavar: str | None = None
    many: bool = False
    repeat: bool = False
    switch: bool | None = None
    option: str | None = None

    @property
    def name(self) -> str:
        return self.option or "--" + self.field.replace("_", "-")

    def parse(self, value: str):
        """``value``'s text converted; ConfigError(field=self.field) if refused."""
        try:
            return self.convert(value)
        except ConfigError as exc:
            raise ConfigError(str(exc), field=self.field) from None


ARCH_HELP = ("the whole model in one string, as the Python constructors with input sizes "
             "inferred, e.g. \"conv(32,3,padding=1) relu maxpool(2) flatten linear(128) relu "
             f"dropout(0.5) linear(10)\"; layers: {arch.help_text()} (replaces --hidden, "
             "--activation, --batchnorm, --dropout, --input-dropout)")

#: the train flags in the order ``--help`` lists them
FLAGS: tuple[Flag, ...] = (
    Flag("preset", help=f"starting settings: {', '.join(PRESETS)} (default: default)"),
    Flag("dataset", help="mnist or fashion-mnist (default: mnist)"),
    Flag("data_dir", help="folder with the dataset's IDX files"),
    Flag("arch", metavar="LAYERS", help=ARCH_HELP),
    Flag("hidden", positive_int, many=True, help="hidden layer widths"),
    Flag("activation", many=True,
         help=f"one for all hidden layers or one per layer: "
              f"{', '.join(arch.activation_names())}"),
    Flag("init", help=f"weight init: {', '.join(core.init.INITIALIZERS)}"),
    Flag("epochs", positive_int, help="passes over the training set"),
    Flag("batch_size", positive_int, help="examples per training step"),
    Flag("lr", positive_float, help="learning rate (peak lr for onecycle)"),
    Flag("optimizer", help=", ".join(OPTIMIZERS)),
    Flag("momentum", nonneg_float, help="momentum (sgd, rmsprop)"),
    Flag("nesterov", switch=True, help="Nesterov momentum (sgd with --momentum > 0)"),
    Flag("weight_decay", nonneg_float,
         help="L2 (sgd, adam, rmsprop, adagrad) or decoupled (adamw) weight decay"),
    Flag("schedule", help=f"learning-rate schedule: {', '.join(SCHEDULES)}"),
    Flag("step_size", positive_int, help="epochs per step"),
    Flag("gamma", positive_float, help="lr factor (step, multistep, exponential, plateau)"),
    Flag("milestones", positive_int, many=True, help="multistep epochs"),
    Flag("warmup_epochs", positive_int, help="epochs the lr ramps up from lr/10 (linear)"),
    Flag("min_lr", nonneg_float, help="the lowest lr (cosine, plateau)"),
    Flag("lr_patience", positive_int,
         help="epochs without val-loss gain before the lr drops (plateau)"),
    Flag("dropout", fraction, help="dropout after each hidden layer"),
    Flag("input_dropout", fraction, help="dropout of the input features"),
    Flag("batchnorm", switch=True, help="BatchNorm1d after hidden Linears"),
    Flag("max_norm", positive_float,
         help="max L2 norm of each hidden unit's incoming weights"),
    Flag("augment", help=f"image augmentation: {', '.join(AUGMENTS)}, or auto "
                         "(affine for mnist, flip for fashion-mnist)"),
    Flag("val_fraction", fraction,
         help="hold out this fraction of the training set for validation"),
    Flag("early_stop", positive_int, metavar="PATIENCE",
         help="stop after PATIENCE epochs without val-loss gain; keep the best"),
    Flag("inspect_epochs", positive_int, many=True,
         help="epochs at which to record activation/gradient histograms "
              "(default: the first and the last)"),
    Flag("clip_delta", positive_float,
         help="clip back-propagated deltas to [-c, c] as the notebook did"),
    Flag("update_order", help="standard, or notebook: update each layer before "
                              "back-propagating through it (the seed notebook's order)"),
    Flag("label_smoothing", fraction, help="weight of the uniform target in the loss"),
    Flag("scale", help=f"input scaling: {', '.join(SCALES)}"),
    Flag("drop_last", switch=True, help="skip the last training batch when it is short"),
    Flag("seed", nonneg_int, help="seed of every random draw of the run"),
    Flag("dtype", help=", ".join(DTYPES)),
    Flag("verify", switch=False, option="--no-verify",
         help="skip the content checksum of local data files"),
    Flag("out", help="run folder (default: runs/<timestamp>)"),
    Flag("log", log_kinds, repeat=True, metavar="KIND[,KIND]",
         help="also log to: tensorboard (RUN/tensorboard/), csv (RUN/metrics.csv); "
              "repeat or give a comma list"),
)

BY_FIELD: dict[str, Flag] = {f.field: f for f in FLAGS}



def command_words(settings: dict, command: str = "train") -> list[str]:
    """``["bareprop", command, flags...]``: the command line that gives the TrainConfig
    fields in ``settings`` (field -> value, as make_config takes them); fields that are
    not flags are left out, a switch appears when it is set to its flag's value."""
    words = ["bareprop", command]
    for field, value in settings.items():
        flag = BY_FIELD.get(field)
        if flag is None or value is None:
            continue
        if flag.switch is not None:
            if bool(value) == flag.switch:
                words.append(flag.name)
            continue
        values = value if isinstance(value, (list, tuple)) else [value]
        if flag.repeat:
            values = [",".join(str(v) for v in values)]
        words += [flag.name, *(repr(v) if isinstance(v, float) else str(v) for v in values)]
    return words
