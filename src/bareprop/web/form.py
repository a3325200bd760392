"""The Train form: a JSON object of settings -> ``bareprop train`` flags.

Each field is converted by the same converter the CLI's flag uses (experiment/flags.py),
then make_config/check_flags check the whole config, so the page and the command line
accept and refuse exactly the same values. A refusal names the field it is about
(``ConfigError.field``), and a value refused on its own is worded for the page
(``epochs: must be at least 1, got 0``, where the CLI says ``argument --epochs: ...``).
"""
from __future__ import annotations

from numbers import Real

from ..errors import BarepropError, ConfigError
from ..experiment import check_flags, make_config
from ..experiment.flags import BY_FIELD

#: the JSON keys the form may send, each a TrainConfig field (and ``bareprop train``
#: flag). Nothing else is accepted: no out, data_dir, resume.
FIELDS = ("preset", "dataset", "epochs", "batch_size", "lr", "optimizer", "seed", "augment",
          "schedule", "hidden", "arch", "momentum", "weight_decay", "label_smoothing",
          "dropout", "val_fraction")
IGNORED_IF_NULL = ("limit",)     # in the page's form model; bareprop train has no limit
MAX_TEXT = 2000


class FormError(ConfigError):
    """A refused form: the message for the page and the field it is about."""


def _texts(key: str, value) -> list[str]:
    """The value's text (one per item for ``hidden``), refused unless it is what the
    command line could have been given."""
    if key == "hidden":
        widths = value.split() if isinstance(value, str) else value
        if not isinstance(widths, list) or not widths or len(widths) > 16 or not all(
                (isinstance(w, int) and not isinstance(w, bool))
                or (isinstance(w, str) and w.isdigit()) for w in widths):
            raise FormError("hidden: give 1 to 16 layer widths (whole numbers), e.g. "
                            "[256, 128]", key)
        return [str(w) for w in widths]
    if isinstance(value, bool) or not isinstance(value, (str, Real)):
        raise FormError(f"{key}: expected a number or a name, got {type(value).__name__}", key)
    text = str(value)
    if len(text) > MAX_TEXT or "\x00" in text:
        raise FormError(f"{key}: value too long or not text", key)
    return [text]


def _convert(key: str, texts: list[str]):
    """The field's value from its texts, by the flag's own converter."""
    flag = BY_FIELD[key]
    try:
        values = [flag.parse(t) for t in texts]
    except ConfigError as exc:
        raise FormError(f"{key}: {exc}", key) from None
    return values if flag.many else values[0]


def _argv(key: str, texts: list[str]) -> list[str]:
    """The train flags for one field. A value goes in the flag's own argument
    (``--lr=0.1``), so it can never become a flag; hidden's widths are digits only."""
    flag = BY_FIELD[key].name
    return [flag, *texts] if BY_FIELD[key].many else [f"{flag}={texts[0]}"]


def to_argv(form) -> list[str]:
    """The train flags for ``form``, after its values passed the flags' converters and
    make_config/check_flags; FormError (message, field) otherwise."""
    if not isinstance(form, dict):
        raise FormError("the body must be a JSON object of settings")
    unknown = sorted(k for k in form if k not in FIELDS and not
                     (k in IGNORED_IF_NULL and form[k] is None))
    if unknown:
        raise FormError(f"unknown setting {unknown[0]!r}; valid: {', '.join(FIELDS)}",
                        unknown[0])
    texts = {k: _texts(k, form[k]) for k in FIELDS if form.get(k) is not None}
    explicit = {k: _convert(k, t) for k, t in texts.items()}
    try:
        check_flags(explicit, make_config(explicit))
    except BarepropError as exc:
        raise FormError(str(exc), getattr(exc, "field", None)) from None
    return [a for k, t in texts.items() for a in _argv(k, t)]
