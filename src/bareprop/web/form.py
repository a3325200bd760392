"""The Train form: a JSON object of settings -> ``bareprop train`` flags, validated by
the CLI's own parser and config checks (so the page and the command line accept and
refuse exactly the same values), with the offending field named for the page.
"""
from __future__ import annotations

import argparse
import re
from numbers import Real

from ..errors import BarepropError, ConfigError

#: JSON key -> train flag. Nothing else is accepted: no --out, --data-dir, --resume.
FIELDS = {"preset": "--preset", "dataset": "--dataset", "epochs": "--epochs",
          "batch_size": "--batch-size", "lr": "--lr", "optimizer": "--optimizer",
          "seed": "--seed", "augment": "--augment", "schedule": "--schedule",
          "hidden": "--hidden", "arch": "--arch", "momentum": "--momentum",
          "weight_decay": "--weight-decay", "label_smoothing": "--label-smoothing",
          "dropout": "--dropout", "val_fraction": "--val-fraction"}
IGNORED_IF_NULL = ("limit",)     # in the page's form model; bareprop train has no limit
MAX_TEXT = 2000


class FormError(ConfigError):
    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


class _Refusing(argparse.ArgumentParser):
    """The CLI's parser, raising instead of printing and exiting."""

    def error(self, message):
        raise FormError(message)


def _train_parser() -> argparse.ArgumentParser:
    from ..cli import train_cmd

    top = _Refusing(prog="bareprop")
    train_cmd.add_parser(top.add_subparsers(dest="command", parser_class=_Refusing))
    return top


def _argv_of(key: str, value) -> list[str]:
    flag = FIELDS[key]
    if key == "hidden":
        widths = value.split() if isinstance(value, str) else value
        if not isinstance(widths, list) or not widths or len(widths) > 16 or not all(
                (isinstance(w, int) and not isinstance(w, bool))
                or (isinstance(w, str) and w.isdigit()) for w in widths):
            # whole numbers only: a word here would be parsed as a flag of its own
            raise FormError("hidden: give 1 to 16 layer widths (whole numbers), e.g. "
                            "[256, 128]", key)
        return [flag, *(str(w) for w in widths)]
    if isinstance(value, bool) or not isinstance(value, (str, Real)):
        raise FormError(f"{key}: expected a number or a name, got {type(value).__name__}", key)
    text = str(value)
    if len(text) > MAX_TEXT or "\x00" in text:
        raise FormError(f"{key}: value too long or not text", key)
    return [f"{flag}={text}"]        # one argument: a value can never become a flag


def _field_of(message: str, keys) -> str | None:
    """The field whose flag the message names first (messages name the culprit first);
    ``--lr`` is not found inside ``--lr-patience``."""
    hits = [(m.start(), k) for k in keys
            for m in [re.search(re.escape(FIELDS[k]) + r"(?![\w-])", message)] if m]
    return min(hits)[1] if hits else None


def to_argv(form) -> list[str]:
    """The train flags for ``form``, after the CLI's parser and make_config/check_flags
    accepted them; FormError (message, field) otherwise."""
    from ..cli.args import explicit_settings
    from ..experiment import check_flags, make_config

    if not isinstance(form, dict):
        raise FormError("the body must be a JSON object of settings")
    unknown = sorted(k for k in form if k not in FIELDS and not
                     (k in IGNORED_IF_NULL and form[k] is None))
    if unknown:
        raise FormError(f"unknown setting {unknown[0]!r}; valid: {', '.join(FIELDS)}",
                        unknown[0])
    keys = [k for k in FIELDS if form.get(k) is not None]
    argv = [a for k in keys for a in _argv_of(k, form[k])]
    parser = _train_parser()
    try:
        args = parser.parse_args(["train", *argv])
    except FormError as exc:
        raise FormError(str(exc), _field_of(str(exc), keys)) from None
    explicit = explicit_settings(args)
    # defence in depth: whatever the values held, none of them became one of these
    smuggled = [f for f in ("resume", "overwrite", "out", "data_dir", "events")
                if f in vars(args)]
    if smuggled:
        raise FormError(f"the settings may not set --{smuggled[0].replace('_', '-')}")
    try:
        check_flags(explicit, make_config(explicit))
    except BarepropError as exc:
        raise FormError(str(exc), _field_of(str(exc), keys) or _culprit(explicit, keys)) \
            from None
    return argv


def _culprit(explicit: dict, keys) -> str | None:
    """The first field that fails on its own (with the preset), for messages that name
    a value rather than a flag."""
    from ..experiment import make_config

    try:
        make_config({"preset": explicit.get("preset")})
    except BarepropError:
        return "preset"
    for key in keys:
        if key == "preset":
            continue
        try:
            make_config({"preset": explicit.get("preset"), key: explicit.get(key)})
        except BarepropError:
            return key
    return None
