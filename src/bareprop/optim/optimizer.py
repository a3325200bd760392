"""Optimizer base: parameter groups, per-parameter state and the hyperparameters.

Subclasses supply a pure update rule ``update(p, g, state, **hyper)`` that changes
``p`` and ``state`` in place, and ``check_hyperparameters`` that validates one group's
values; ``step()`` applies the rule to every parameter that has a gradient, with the
hyperparameters of the parameter's group.

Parameter groups are torch.optim's: ``Optimizer(params, lr, **defaults)`` takes either
an iterable of Parameters (one group) or a list of dicts, each with ``"params"`` and any
hyperparameters that differ from the defaults::

    opt = SGD([{"params": weights, "weight_decay": 1e-4}, {"params": biases}],
              lr=0.1, momentum=0.9)
    opt.param_groups[1]   # {"params": [...], "lr": 0.1, "momentum": 0.9, ...}

Schedulers write ``param_groups[i]["lr"]``; ``opt.lr`` (and every hyperparameter,
e.g. ``opt.momentum``) reads the first group's value and sets every group's.
Not here: the update rules themselves (sgd.py, adam.py, rmsprop.py).
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import numpy as np

from ..core.parameter import Parameter
from ..errors import ConfigError


def check_range(name: str, value: float, low: float, high: float | None = None,
                low_open: bool = False) -> float:
    """Validate a hyperparameter at the door, naming it and its valid range."""
    value = float(value)
    bad = not np.isfinite(value) or value < low or (low_open and value == low)
    if high is not None:
        bad = bad or value >= high
    if bad:
        lo = "(" if low_open else "["
        hi = f"{high})" if high is not None else "inf)"
        raise ConfigError(f"Invalid {name}: {value} (must be in {lo}{low}, {hi})")
    return value


def scratch(state: dict, key: str, like: np.ndarray) -> np.ndarray:
    """A work array kept in ``state[key]`` (keys starting with "_" are not saved).

    Update rules work in place through these: a fresh temporary per element-wise
    pass page-faults in a new buffer every step, 2.4x slower than an in-place pass
    for a 1M-weight layer on the project's machines.
    """
    buf = state.get(key)
    if buf is None or buf.shape != like.shape or buf.dtype != like.dtype:
        buf = state[key] = np.empty_like(like)
    return buf


class Hyperparameter:
    """A hyperparameter as an attribute: get = the first group's value, set = every
    group's (validated like the constructor's). Per-group values: ``param_groups[i][name]``.
    """

    def __init__(self, doc: str = ""):
        self.__doc__ = doc

    def __set_name__(self, owner, name):
        self.name = name

    def __get__(self, opt, owner=None):
        if opt is None:
            return self
        return opt.param_groups[0][self.name]

    def __set__(self, opt, value):
        # validate each group with its new value first, so a refused value changes nothing
        checked = [opt.check_hyperparameters({**_hyper(g), self.name: value})
                   for g in opt.param_groups]
        for g, h in zip(opt.param_groups, checked):
            g[self.name] = h[self.name]


class ParamUpdate(NamedTuple):
    """One parameter's update: ``rule(p, g, state, **hyper)`` with ``group``'s values for
    the rule's hyperparameters, and ``state`` the parameter's own (momentum buffers ...).
    (A tuple: a fast path asks for it at every step.)"""

    rule: Callable
    group: dict
    state: dict


def _hyper(group: dict) -> dict:
    return {k: v for k, v in group.items() if k != "params"}


class Optimizer:
    """The base of every optimizer: parameter groups, per-parameter state, ``step()`` and
    ``zero_grad()``; a subclass brings its pure update rule."""

    #: the pure update rule, set by each subclass
    update = None
    lr = Hyperparameter("learning rate: the first group's on get, every group's on set")

    def __init__(self, params, lr: float, **defaults):
        #: every hyperparameter's default, validated ("lr" included), as torch's ``defaults``
        self.defaults = self.check_hyperparameters({"lr": lr, **defaults})
        self._names = tuple(self.defaults)     # the update rule's keyword arguments
        self.param_groups: list[dict] = []
        self.params: list = []                  # every group's parameters, in group order
        self.state: list[dict] = []             # per parameter, aligned with self.params
        self._group_of: list[int] = []          # group index, aligned with self.params
        self._index: dict[int, int] = {}        # id(p) -> position, for step(params)
        if isinstance(params, (Parameter, dict)):
            raise ConfigError("optimizer params must be an iterable of Parameters or of "
                              f"dicts (parameter groups), not one {type(params).__name__}")
        groups = list(params)
        if not groups:
            raise ConfigError("optimizer got an empty parameter list")
        n_dicts = sum(isinstance(g, dict) for g in groups)
        if n_dicts == 0:
            self.add_param_group({"params": groups}, where="")
        elif n_dicts == len(groups):
            for i, g in enumerate(groups):
                self.add_param_group(g, where=f"parameter group {i}: ")
        else:
            raise ConfigError("optimizer params mix Parameters and dicts: give either "
                              "Parameters (one group) or only dicts (parameter groups)")
        if not self.params:
            raise ConfigError("optimizer got an empty parameter list")

    #: hyperparameters that must be finite and >= 0, checked in this order after lr
    nonnegative: tuple[str, ...] = ()
    #: on/off hyperparameters, normalised to bool
    flags: tuple[str, ...] = ()

    @classmethod
    def check_hyperparameters(cls, h: dict) -> dict:
        """Validate one group's hyperparameters (raising ConfigError naming the bad one)
        and return them normalised (floats, bools, tuples): lr > 0, then each of
        ``nonnegative``, then ``flags``. Subclasses add the checks no list can say."""
        h["lr"] = check_range("learning rate", h["lr"], 0.0, low_open=True)
        for name in cls.nonnegative:
            h[name] = check_range(name, h[name], 0.0)
        for name in cls.flags:
            h[name] = bool(h[name])
        return h

    def add_param_group(self, group: dict, where: str | None = None) -> None:
        """Add a group ``{"params": [...], hyperparameter: value, ...}``; missing
        hyperparameters take the defaults. Refused: a parameter already in a group,
        an unknown hyperparameter name, a value out of range."""
        if where is None:
            where = f"parameter group {len(self.param_groups)}: "
        if not isinstance(group, dict):
            raise ConfigError(f"{where}a parameter group must be a dict, "
                              f"not {type(group).__name__}")
        if "params" not in group:
            raise ConfigError(f"{where}a parameter group needs a 'params' entry")
        unknown = [k for k in group if k != "params" and k not in self.defaults]
        if unknown:
            raise ConfigError(f"{where}{type(self).__name__} has no hyperparameter "
                              f"{unknown[0]!r} (valid: {', '.join(self.defaults)})")
        params = group["params"]
        params = [params] if isinstance(params, Parameter) else list(params)
        seen = set(self._index)
        for p in params:
            if not isinstance(p, Parameter):
                raise ConfigError(f"{where}optimizer params must be Parameters, "
                                  f"got {type(p).__name__}")
            if id(p) in seen:
                raise ConfigError(f"{where}a parameter ({p!r}) appears more than once; "
                                  "each may belong to one group only")
            seen.add(id(p))
        try:
            hyper = self.check_hyperparameters({**self.defaults, **_hyper(group)})
        except ConfigError as exc:
            raise ConfigError(f"{where}{exc}") from None
        gi = len(self.param_groups)
        self.param_groups.append({"params": params, **hyper})
        for p in params:
            self._index[id(p)] = len(self.params)
            self.params.append(p)
            self.state.append({})
            self._group_of.append(gi)

    def update_for(self, param) -> "ParamUpdate":
        """How this optimizer updates ``param``: its pure update rule, with the live
        hyperparameters of the parameter's group and its own state (both dicts the next
        ``step`` reads). What a fast path that applies the step itself (fast/sgd.py) asks,
        instead of reading this class's bookkeeping."""
        i = self._index.get(id(param))
        if i is None:
            raise ConfigError(f"{param!r} is not one of this optimizer's parameters")
        return ParamUpdate(type(self).update, self.param_groups[self._group_of[i]],
                           self.state[i])

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    def step(self, params=None) -> None:
        """Update every parameter with a gradient (or only those in ``params``), each
        with its group's hyperparameters."""
        update, names = type(self).update, self._names
        # read once per group per step: schedulers and users may change them between steps
        kws = [{k: g[k] for k in names} for g in self.param_groups]
        if params is None:
            for p, state, gi in zip(self.params, self.state, self._group_of):
                if p.grad is not None:
                    update(p.data, p.grad, state, **kws[gi])
            return
        index, group_of = self._index, self._group_of
        for p in params:  # the notebook's order steps one layer at a time, every batch
            if p.grad is not None:
                i = index[id(p)]
                update(p.data, p.grad, self.state[i], **kws[group_of[i]])

    def state_dict(self) -> dict:
        """Per-group hyperparameters (``params`` as positions in the flat parameter
        list, as torch does) and per-parameter state (arrays copied)."""
        groups, start = [], 0
        for g in self.param_groups:
            n = len(g["params"])
            groups.append({**_hyper(g), "params": list(range(start, start + n))})
            start += n
        return {
            "param_groups": groups,
            "state": [{k: (v.copy() if isinstance(v, np.ndarray) else v)
                       for k, v in s.items() if not k.startswith("_")}  # skip scratch
                      for s in self.state],
        }

    @staticmethod
    def upgrade_state_dict(sd):
        """The one-group format written before parameter groups existed
        (``{"lr", "hyper", "state"}``) as today's ``{"param_groups", "state"}``; anything
        else is returned unchanged."""
        if not isinstance(sd, dict) or "param_groups" in sd or "lr" not in sd:
            return sd
        hyper = sd.get("hyper") if isinstance(sd.get("hyper"), dict) else {}
        n = len(sd["state"]) if isinstance(sd.get("state"), list) else 0
        return {"param_groups": [{**hyper, "lr": sd["lr"], "params": list(range(n))}],
                "state": sd.get("state")}

    def load_state_dict(self, sd: dict) -> None:
        """Load ``state_dict()`` output, or the one-group format written before
        parameter groups existed (``{"lr", "hyper", "state"}``: old checkpoints resume)."""
        if len(sd["state"]) != len(self.params):
            raise ValueError(f"optimizer state has {len(sd['state'])} entries, "
                             f"but the optimizer has {len(self.params)} parameters")
        if "param_groups" in sd:
            saved = sd["param_groups"]
            sizes = [len(g["params"]) for g in saved]
            if sizes != [len(g["params"]) for g in self.param_groups]:
                raise ValueError(f"optimizer state has groups of sizes {sizes}, but the "
                                 "optimizer's groups differ")
            hypers = [_hyper(g) for g in saved]
        else:
            hypers = [{**sd.get("hyper", {}), "lr": sd["lr"]}] * len(self.param_groups)
        # through the door check: JSON turned tuples (betas) into lists
        checked = [self.check_hyperparameters({**_hyper(g), **h})
                   for g, h in zip(self.param_groups, hypers)]
        for g, h in zip(self.param_groups, checked):
            g.update(h)
        self.state = [{k: (np.array(v, dtype=p.dtype) if isinstance(v, np.ndarray) else v)
                       for k, v in s.items()} for s, p in zip(sd["state"], self.params)]

    def __repr__(self):
        groups = ["(" + ", ".join(f"{k}={v}" for k, v in _hyper(g).items()) + ")"
                  for g in self.param_groups]
        if len(groups) == 1:
            return f"{type(self).__name__}{groups[0]}"
        return f"{type(self).__name__}({', '.join(groups)})"
