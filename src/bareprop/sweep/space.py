"""The search space of ``bareprop sweep``: ``--space NAME=SPEC`` parsed, checked by the
checks ``bareprop train`` uses, and turned into Optuna distributions.

    lr=log(1e-4,1e-1)          a float drawn log-uniformly in [1e-4, 1e-1]
    dropout=uniform(0,0.5)     a float drawn uniformly in [0, 0.5]
    hidden=int(64,1024)        an integer in [64, 1024]; int(64,1024,log) log-uniformly
    optimizer=choice(sgd,adam) one of the values, each read as the flag reads it

NAME is a train flag's name without its dashes (``weight-decay`` or ``weight_decay``).
A distribution must fit its flag: a float range for a number flag, an integer range for
an integer flag, a choice for anything. Each bound and each choice is converted by the
flag's own converter (experiment/flags.py) and then the whole config, with each
extreme in turn, goes through make_config and check_flags: a space ``train`` would
refuse at any of its corners is refused before any trial starts.

Not here: drawing (Optuna's sampler does), running trials (runner.py).
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass

from ..errors import ConfigError, unknown_name
from ..experiment import flags

#: flags a sweep sets itself, or that say where things go rather than how a model trains
NOT_SEARCHED = {
    "seed": "every trial trains with the sweep's --seed, so trials differ only in what "
            "is searched (and all hold out the same validation examples)",
    "val_fraction": "the validation split is the objective: every trial holds out the same "
                    "examples (--val-fraction)",
    "out": "each trial writes DIR/trials/NNNN", "data_dir": "it is where the data is",
    "verify": "it checks the data files", "log": "it picks log files",
    "inspect_epochs": "it picks which epochs are inspected", "preset": "give --preset",
    "dataset": "a sweep tunes one dataset: give --dataset",
}
_FLOAT = (flags.positive_float, flags.nonneg_float, flags.fraction)
_INT = (flags.positive_int, flags.nonneg_int)
_SPEC = re.compile(r"\s*(log|uniform|int|choice)\s*\((.*)\)\s*", re.S)


@dataclass(frozen=True)
class Param:
    """One searched flag: ``kind`` log/uniform (floats), int, or choice.

    low, high: the range (int and float kinds); log: drawn log-uniformly.
    choices: the choices as typed (choice kind); each is converted by the flag."""

    field: str
    kind: str
    low: float | int | None = None
    high: float | int | None = None
    log: bool = False
    choices: tuple[str, ...] = ()

    @property
    def flag(self) -> flags.Flag:
        return flags.BY_FIELD[self.field]

    def spec(self) -> str:
        """The text that parses back into this Param."""
        if self.kind == "choice":
            sep = "|" if any("," in c for c in self.choices) else ","
            return f"{self.field}=choice({sep.join(self.choices)})"
        if self.kind == "int":
            return f"{self.field}=int({self.low},{self.high}{',log' if self.log else ''})"
        return f"{self.field}={self.kind}({self.low!r},{self.high!r})"

    def value(self, drawn):
        """The TrainConfig value of a drawn one (a choice's text through the flag's
        converter; a width for a many-valued flag such as --hidden becomes (width,))."""
        flag = self.flag
        if flag.switch is not None:
            return _switch(drawn, self.field)
        if self.kind == "choice":
            if not (flag.many or flag.repeat):        # one value, spaces and all: an arch
                return flag.parse(str(drawn).strip())
            return tuple(flag.parse(w) for w in str(drawn).split())
        try:
            value = int(drawn) if self.kind == "int" else float(drawn)
        except (TypeError, ValueError, OverflowError):
            raise ConfigError(f"--space {self.field}: {drawn!r} is not a number") from None
        return (value,) if flag.many else value

    def distribution(self):
        """The Optuna distribution drawing this parameter (optuna imported here only)."""
        from optuna import distributions as D

        if self.kind == "choice":
            return D.CategoricalDistribution(list(self.choices))
        if self.kind == "int":
            return D.IntDistribution(int(self.low), int(self.high), log=self.log)
        return D.FloatDistribution(float(self.low), float(self.high), log=self.log)


def _switch(text, field: str) -> bool:
    word = str(text).strip().lower()
    if word in ("true", "on", "yes", "1"):
        return True
    if word in ("false", "off", "no", "0"):
        return False
    raise ConfigError(f"--space {field}: a switch takes choice(true,false), got {text!r}")


def parse_param(text: str) -> Param:
    """``NAME=SPEC`` -> Param, or ConfigError naming what is wrong and the form it takes."""
    name, eq, spec = text.partition("=")
    field = name.strip().lstrip("-").replace("-", "_")
    if not eq or not field:
        raise ConfigError(f"--space takes NAME=SPEC, e.g. lr=log(1e-4,1e-1), got {text!r}")
    if field in NOT_SEARCHED:
        raise ConfigError(f"--space {field}: not searched ({NOT_SEARCHED[field]})")
    if field not in flags.BY_FIELD:
        searchable = [f for f in flags.BY_FIELD if f not in NOT_SEARCHED]
        raise unknown_name("--space flag", field, searchable)
    m = _SPEC.fullmatch(spec)
    if m is None:
        raise ConfigError(f"--space {field}: expected log(LOW,HIGH), uniform(LOW,HIGH), "
                          f"int(LOW,HIGH) or choice(A,B,...), got {spec!r}")
    kind, inner = m.group(1), m.group(2)
    # choice(a|b) when a value holds commas: choice(conv(8,3) relu ...|conv(16,3) ...)
    sep = "|" if kind == "choice" and "|" in inner else ","
    args = [a.strip() for a in inner.split(sep)] if inner.strip() else []
    flag = flags.BY_FIELD[field]
    if kind == "choice":
        return _choice(field, flag, args)
    return _range(field, flag, kind, args)


def _choice(field: str, flag: flags.Flag, args: list[str]) -> Param:
    if not args or any(not a for a in args):
        raise ConfigError(f"--space {field}: choice() needs one or more values, e.g. "
                          f"choice(a,b), got {len(args)}" if not args else
                          f"--space {field}: choice() has an empty value")
    if len(set(args)) != len(args):
        raise ConfigError(f"--space {field}: choice() lists a value twice")
    for a in args:
        if flag.switch is not None:
            _switch(a, field)
        elif flag.many or flag.repeat:
            for word in a.split():
                _converted(flag, field, word)
        else:
            _converted(flag, field, a)
    return Param(field, "choice", choices=tuple(args))


def _converted(flag: flags.Flag, field: str, text: str):
    try:
        return flag.parse(text)
    except ConfigError as exc:
        raise ConfigError(f"--space {field}: {exc}", field=field) from None


def _range(field: str, flag: flags.Flag, kind: str, args: list[str]) -> Param:
    log = kind == "log"
    if kind == "int" and len(args) == 3 and args[2] == "log":
        args, log = args[:2], True
    if len(args) != 2:
        raise ConfigError(f"--space {field}: {kind}() takes two bounds, e.g. {kind}(1,10), "
                          f"got {len(args)} values")
    if flag.switch is not None or flag.convert not in _FLOAT + _INT:
        raise ConfigError(f"--space {field}: --{field.replace('_', '-')} takes a name, not a "
                          f"number; search it with choice(...)")
    if kind == "int" and flag.convert not in _INT:
        raise ConfigError(f"--space {field}: --{field.replace('_', '-')} takes a number, not "
                          f"an integer; use uniform(LOW,HIGH) or log(LOW,HIGH)")
    if kind != "int" and flag.convert not in _FLOAT:
        raise ConfigError(f"--space {field}: --{field.replace('_', '-')} takes an integer; "
                          f"use int(LOW,HIGH)")
    low, high = (_converted(flag, field, a) for a in args)
    if isinstance(low, tuple):                     # --hidden: one width per trial
        low, high = low[0], high[0]
    if not low < high:
        raise ConfigError(f"--space {field}: the low bound must be below the high one, got "
                          f"{kind}({args[0]},{args[1]})")
    if log and not low > 0:
        raise ConfigError(f"--space {field}: a log range needs a low bound above 0, got "
                          f"{args[0]}")
    if not (math.isfinite(low) and math.isfinite(high)):
        raise ConfigError(f"--space {field}: bounds must be finite")
    return Param(field, "int" if kind == "int" else ("log" if log else "uniform"),
                 low, high, log)


def parse_space(texts: list[str]) -> tuple[Param, ...]:
    """Every ``--space`` given, each flag once."""
    if not texts:
        raise ConfigError("a sweep needs at least one --space NAME=SPEC, e.g. "
                          "--space lr=log(1e-4,1e-1)")
    params = [parse_param(t) for t in texts]
    seen = set()
    for p in params:
        if p.field in seen:
            raise ConfigError(f"--space {p.field} is given twice; give each flag once")
        seen.add(p.field)
    return tuple(params)


def corners(space: tuple[Param, ...]) -> list[dict]:
    """Settings that put each parameter at each of its extremes (or choices) in turn,
    the others at their low end: what ``check_space`` builds configs from."""
    def ends(p: Param):
        return list(p.choices) if p.kind == "choice" else [p.low, p.high]

    base = {p.field: ends(p)[0] for p in space}
    out = [dict(base)]
    for p in space:
        for v in ends(p)[1:]:
            out.append({**base, p.field: v})
    return out


def check_space(space: tuple[Param, ...], explicit: dict) -> None:
    """Refuse a space ``bareprop train`` would refuse somewhere: every corner's config
    goes through make_config and check_flags with the typed flags (ConfigError, naming
    the parameter, if one is refused)."""
    from ..experiment import check_flags, make_config

    searched = {p.field for p in space}
    typed = sorted(searched & {k for k, v in explicit.items() if v is not None})
    if typed:
        raise ConfigError(f"--{typed[0].replace('_', '-')} is both given and searched "
                          f"(--space {typed[0]}); drop one")
    by_field = {p.field: p for p in space}
    base = make_config(explicit)
    for p in space:
        flag = p.flag
        if flag.switch is True and getattr(base, p.field) and any(
                not _switch(c, p.field) for c in p.choices):
            # a train command can say --nesterov, not "no --nesterov" over a preset's
            raise ConfigError(f"--space {p.field}: --preset {base.preset} turns "
                              f"--{p.field.replace('_', '-')} on and train has no flag to "
                              "turn it off, so a trial without it could not be retrained "
                              "from its command; search it over a preset that leaves it off")
    for corner in corners(space):
        values = {f: by_field[f].value(v) for f, v in corner.items()}
        settings = {**explicit, **values}
        try:
            check_flags(settings, make_config(settings))
        except ConfigError as exc:
            shown = ", ".join(f"{f}={corner[f]}" for f in sorted(corner))
            raise ConfigError(f"--space: train refuses the point {shown}: {exc}",
                              field=exc.field) from None
