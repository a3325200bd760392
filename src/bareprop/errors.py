"""The library's exception types and the helper that suggests a close name.

Every error a user can cause derives from ``BarepropError`` so the CLI can print
it as one line and exit non-zero without a traceback.
"""
from __future__ import annotations

import difflib
import numbers
from collections.abc import Iterable


class BarepropError(Exception):
    """Base class of every error caused by input (files, settings, models)."""


class ConfigError(BarepropError, ValueError):
    """An invalid setting: the message names the value and what would be valid.

    ``field``: the TrainConfig field (``"epochs"``, ``"hidden"``) the setting belongs to,
    when there is one, so a front end (the web form) can point at it without reading
    the message."""

    def __init__(self, message: str = "", field: str | None = None):
        super().__init__(message)
        self.field = field


class DataError(BarepropError):
    """A data file that is missing, malformed or fails its checksum."""


class ModelFileError(BarepropError):
    """A model or checkpoint file that cannot be loaded."""


class OutputError(BarepropError):
    """A file bareprop writes cannot be written (disk full, a directory in its place...)."""


class TrainingDiverged(BarepropError):
    """The loss or the weights became NaN or infinite."""


def first_line(exc: BaseException) -> str:
    """The first line of a third-party exception's message (its class name when it has
    none): parsers (protobuf, safetensors) put whole dumps in theirs, a CLI error is one
    line."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def closest(name: object, choices: Iterable[str]) -> str | None:
    """The valid name closest to ``name`` (difflib's ratio >= 0.6), or None."""
    close = difflib.get_close_matches(str(name), sorted(choices), n=1)
    return close[0] if close else None


def unknown_name(kind: str, name: object, choices: Iterable[str],
                 field: str | None = None) -> ConfigError:
    """ConfigError (about ``field``) for an unknown name, suggesting the closest valid one."""
    choices = sorted(choices)
    close = closest(name, choices)
    hint = f" Did you mean {close!r}?" if close else ""
    return ConfigError(f"unknown {kind} {name!r}.{hint} Valid: {', '.join(choices)}.",
                       field=field)


def positive_int(name: str, value) -> int:
    """``value`` as an int if it is a positive integer (Python or NumPy, not bool), else
    a ConfigError naming it."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ConfigError(f"{name} must be a positive integer, got {value!r}")
    return int(value)
