"""argparse helpers shared by every command: the one-line-error parser, number types,
and the flags that map one-to-one onto TrainConfig fields.

Its own module so the commands and ``main`` import it, never each other.
"""
from __future__ import annotations

import argparse

from .. import core
from ..data.augment import PRESETS as AUGMENTS
from ..data.batches import SCALES
from ..errors import unknown_name
from ..experiment.config import DTYPES, OPTIMIZERS, PRESETS, SCHEDULES, TrainConfig


class OneLineParser(argparse.ArgumentParser):
    """argparse, but its errors are one line that points at --help."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def count(n: int, word: str) -> str:
    """'1 epoch', '3 epochs': the number with its noun in the right number."""
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def _integer(text: str, minimum: int) -> int:
    kind, bound = (("a positive integer", "at least 1") if minimum == 1
                   else ("an integer >= 0", ">= 0"))
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {kind}, got {text!r}") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"must be {bound}, got {value}")
    return value


def positive_int(text: str) -> int:
    return _integer(text, 1)


def nonneg_int(text: str) -> int:
    return _integer(text, 0)


def _number(text: str, strict: bool) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    ok = value > 0 if strict else value >= 0
    if not ok or value == float("inf"):
        raise argparse.ArgumentTypeError(
            f"must be a {'positive number' if strict else 'number >= 0'}, got {text}")
    return value


def positive_float(text: str) -> float:
    return _number(text, strict=True)


def nonneg_float(text: str) -> float:
    return _number(text, strict=False)


def fraction(text: str) -> float:
    value = nonneg_float(text)
    if value > 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text}")
    return value


def check_new_file(path, overwrite: bool) -> None:
    """Refuse an output file that exists (unless ``overwrite``) or is a folder, or whose
    folder does not exist: one line, before any work."""
    from pathlib import Path

    from ..errors import ConfigError

    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{path} is a folder; give the name of the file to write in it")
    if (path.exists() or path.is_symlink()) and not overwrite:
        raise ConfigError(f"{path} exists; choose another name or add --overwrite")
    if not path.parent.is_dir():
        raise ConfigError(f"cannot write {path}: the folder {path.parent} does not exist")


def log_kinds(text: str) -> list[str]:
    """``--log tensorboard,csv`` -> ["tensorboard", "csv"], each a known kind."""
    from ..train.loggers import KINDS

    kinds = [k.strip() for k in text.split(",") if k.strip()]
    for kind in kinds:
        if kind not in KINDS:
            raise argparse.ArgumentTypeError(str(unknown_name("log kind", kind, KINDS)))
    if not kinds:
        raise argparse.ArgumentTypeError(f"expected one of {', '.join(KINDS)}, got {text!r}")
    return kinds


def add_config_arguments(p) -> None:
    """The flags that map one-to-one onto TrainConfig fields (shared with compare)."""
    p.add_argument("--preset", help=f"starting settings: {', '.join(PRESETS)} (default: default)")
    p.add_argument("--dataset", help="mnist or fashion-mnist (default: mnist)")
    p.add_argument("--data-dir", dest="data_dir", help="folder with the dataset's IDX files")
    p.add_argument("--arch", metavar="LAYERS",
                   help="the whole model in one string, as the Python constructors with "
                        "input sizes inferred, e.g. \"conv(32,3,padding=1) relu maxpool(2) "
                        "flatten linear(128) relu dropout(0.5) linear(10)\"; layers: "
                        "conv linear maxpool avgpool gap batchnorm dropout dropout2d flatten "
                        "relu leakyrelu sigmoid tanh gelu (replaces --hidden, --activation, "
                        "--batchnorm, --dropout, --input-dropout)")
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
    p.add_argument("--seed", type=nonneg_int)
    p.add_argument("--dtype", help=", ".join(DTYPES))
    p.add_argument("--no-verify", dest="verify", action="store_false",
                   help="skip the content checksum of local data files")
    p.add_argument("--out", help="run folder (default: runs/<timestamp>)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def explicit_settings(args: argparse.Namespace) -> dict:
    """The TrainConfig fields the user typed (argparse.SUPPRESS leaves the rest out)."""
    fields = set(TrainConfig.__dataclass_fields__)
    return {k: v for k, v in vars(args).items() if k in fields}
