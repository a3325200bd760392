"""argparse helpers shared by every command: the one-line-error parser, number types,
and the flags that map one-to-one onto TrainConfig fields (built from the schema in
experiment/flags.py, which the web form reads too).

Its own module so the commands and ``main`` import it, never each other.
"""
from __future__ import annotations

import argparse

from ..errors import ConfigError
from ..experiment import flags
from ..experiment.config import TrainConfig


class OneLineParser(argparse.ArgumentParser):
    """argparse, but its errors are one line that points at --help."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def count(n: int, word: str) -> str:
    """'1 epoch', '3 epochs': the number with its noun in the right number."""
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def argparse_type(convert):
    """A converter of experiment/flags.py as an argparse type: its ConfigError becomes
    argparse's own error, so the message reads ``argument --epochs: must be at least 1,
    got 0`` and the command exits with one line."""
    def typed(text: str):
        try:
            return convert(text)
        except ConfigError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    typed.__name__ = convert.__name__        # argparse names the type in some messages
    return typed


positive_int = argparse_type(flags.positive_int)
nonneg_int = argparse_type(flags.nonneg_int)
positive_float = argparse_type(flags.positive_float)
nonneg_float = argparse_type(flags.nonneg_float)
fraction = argparse_type(flags.fraction)


def check_new_file(path, overwrite: bool) -> None:
    """Refuse an output file that exists (unless ``overwrite``) or is a folder, or whose
    folder does not exist: one line, before any work."""
    from pathlib import Path

    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{path} is a folder; give the name of the file to write in it")
    if (path.exists() or path.is_symlink()) and not overwrite:
        raise ConfigError(f"{path} exists; choose another name or add --overwrite")
    if not path.parent.is_dir():
        raise ConfigError(f"cannot write {path}: the folder {path.parent} does not exist")


def add_config_arguments(p, without: tuple[str, ...] = ()) -> None:
    """The flags that map one-to-one onto TrainConfig fields (experiment/flags.py), less
    the fields in ``without``, then ``--quiet``."""
    for flag in flags.FLAGS:
        if flag.field in without:
            continue
        kw = {"dest": flag.field, "help": flag.help}
        if flag.switch is not None:
            kw["action"] = "store_true" if flag.switch else "store_false"
        else:
            if flag.convert is not flags.text:
                kw["type"] = argparse_type(flag.convert)
            if flag.metavar:
                kw["metavar"] = flag.metavar
            if flag.many:
                kw["nargs"] = "+"
            if flag.repeat:
                kw["action"] = "extend"
        p.add_argument(flag.name, **kw)
    p.add_argument("--quiet", action="store_true",
                   help="no summary table or progress (train: only the final result line "
                        "and errors)")


def explicit_settings(args: argparse.Namespace) -> dict:
    """The TrainConfig fields the user typed (argparse.SUPPRESS leaves the rest out)."""
    fields = set(TrainConfig.__dataclass_fields__)
    return {k: v for k, v in vars(args).items() if k in fields}
