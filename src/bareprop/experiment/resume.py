"""What ``--resume`` reads, checked field by field before anything in it is used.

A checkpoint is trusted no more than any file: every field must be present, of the
type the current bareprop writes, and nothing unknown may be there. The check runs
in two steps, each raising one ConfigError line that names the field:

1. ``config_from_checkpoint``: the top level and the config, before any allocation
   (the config's widths are checked against the weights the file really holds);
2. ``check_against_run``: everything else, against the state a freshly built run of
   that config would save (same keys, types, array shapes), before ``restore``.

Not here: reading the archive (train/checkpoint.py, archive.py) or restoring (build.py).
"""
from __future__ import annotations

import dataclasses
import math
from numbers import Real

import numpy as np

from ..errors import ConfigError
from .checks import make_config
from .config import TrainConfig

#: the fields of the training state the Checkpointer writes, and their JSON types
STATE_FIELDS = {"config": dict, "architecture": dict, "epoch": int, "model": dict,
                "optimizer": dict, "callbacks": dict, "history": dict, "stopped": bool,
                "world_size": int}
#: state fields added after checkpoints were first written, and what older runs had
ADDED_STATE = {"world_size": 1}
#: config fields added after checkpoints were first written, and what older runs used
ADDED_FIELDS = {"arch": None}
_NUMBER, _ANY = "number", "any"
_ANNOTATIONS = {"str": str, "int": int, "float": _NUMBER, "bool": bool,
                "tuple[int, ...]": [int], "tuple[str, ...]": [str]}


def _kind(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, np.ndarray):
        return f"array {value.dtype}{list(value.shape)}"
    return {bool: "true/false", int: "integer", float: "number", str: "string", list: "list",
            dict: "object"}.get(type(value), type(value).__name__)


class _Checker:
    def __init__(self, path):
        self.path = path

    def fail(self, where: str, problem: str) -> ConfigError:
        return ConfigError(f"{self.path}: checkpoint field {where} {problem}; the checkpoint "
                           "is damaged or not from this bareprop: start a new run with --out")

    def scalar(self, value, want, where: str) -> None:
        """``want``: a type, _NUMBER (int or float), _ANY, [type] (list of), or a tuple
        of alternatives where None allows null."""
        if want == _ANY:
            return
        if isinstance(want, tuple):
            if value is None and None in want:
                return
            want = next(w for w in want if w is not None)
        if isinstance(want, list):
            if not isinstance(value, list):
                raise self.fail(where, f"is a {_kind(value)}, not a list")
            for i, v in enumerate(value):
                self.scalar(v, want[0], f"{where}[{i}]")
            return
        ok = (isinstance(value, Real) and not isinstance(value, bool)) if want == _NUMBER \
            else (type(value) is want)
        if not ok:
            name = "number" if want == _NUMBER else _kind(want())
            raise self.fail(where, f"is a {_kind(value)}, not a {name}")

    def keys(self, value, expected, where: str) -> None:
        if not isinstance(value, dict):
            raise self.fail(where, f"is a {_kind(value)}, not an object")
        for k in expected:
            if k not in value:
                raise self.fail(f"{where}.{k}", "is missing")
        for k in value:
            if k not in expected:
                raise self.fail(f"{where}.{k}", "is unknown")

    def like(self, value, template, where: str) -> None:
        """``value`` has the structure of ``template`` (a state a fresh run would save):
        same keys, same JSON types, arrays of the same shape; an empty container or a
        None in the template accepts any value there (state that appears later)."""
        if template is None:
            return
        if isinstance(template, np.ndarray):
            if not isinstance(value, np.ndarray) or value.dtype.kind not in "fiu":
                raise self.fail(where, f"is a {_kind(value)}, not a numeric array")
            if value.shape != template.shape:
                raise self.fail(where, f"has shape {list(value.shape)}, the run needs "
                                       f"{list(template.shape)}")
        elif isinstance(template, dict):
            if not template:
                if not isinstance(value, dict):
                    raise self.fail(where, f"is a {_kind(value)}, not an object")
                return
            self.keys(value, template, where)
            for k, t in template.items():
                self.like(value[k], t, f"{where}.{k}")
        elif isinstance(template, (list, tuple)):
            if not isinstance(value, list):
                raise self.fail(where, f"is a {_kind(value)}, not a list")
            if template and len(value) != len(template):
                raise self.fail(where, f"has {len(value)} entries, the run needs {len(template)}")
            for i, (v, t) in enumerate(zip(value, template)):
                self.like(v, t, f"{where}[{i}]")
        elif isinstance(template, bool):
            self.scalar(value, bool, where)
        elif isinstance(template, Real):
            self.scalar(value, _NUMBER, where)
        else:
            self.scalar(value, type(template), where)


def config_from_checkpoint(state, path, explicit: dict) -> TrainConfig:
    """The TrainConfig of a checkpoint's state (its top level and config checked)."""
    c = _Checker(path)
    if not isinstance(state, dict):
        raise c.fail("state", f"is a {_kind(state)}, not an object")
    for k, v in ADDED_STATE.items():    # an older checkpoint: what its run had
        state.setdefault(k, v)
    c.keys(state, STATE_FIELDS, "state")
    for k, want in STATE_FIELDS.items():
        c.scalar(state[k], want, f"state.{k}")
    # a field added since the checkpoint was written takes the value its run had
    config = {**ADDED_FIELDS, **state["config"]}
    fields = {f.name: f for f in dataclasses.fields(TrainConfig)}
    c.keys(config, fields, "config")
    for name, f in fields.items():
        ann = f.type.replace(" | None", "")
        want = _ANNOTATIONS[ann] if ann in _ANNOTATIONS else _ANY
        c.scalar(config[name], (want, None) if "None" in f.type else want, f"config.{name}")
    # the widths decide what build_run allocates: refuse widths whose weight matrices
    # alone exceed what the checkpoint stores, before building anything
    stored = 0
    for k, a in state["model"].items():
        if not isinstance(a, np.ndarray):
            raise c.fail(f"model.{k}", f"is a {_kind(a)}, not an array")
        stored += a.size
    hidden = config["hidden"]
    implied = sum(a * b for a, b in zip(hidden, hidden[1:])) + sum(hidden)
    if implied > stored:
        raise c.fail("config.hidden", f"= {hidden} needs at least {implied} weights but the "
                                      f"checkpoint holds {stored}")
    saved = dict(config, **explicit)
    try:
        # an --arch model may not declare more parameters than the file stores: each
        # layer is refused before its weights are allocated
        cfg = make_config(saved, preset=saved.get("preset"),
                          param_limit=(stored, "the checkpoint holds"))
    except ConfigError as exc:
        raise ConfigError(f"{path}: its config is invalid: {exc}") from None
    if state["world_size"] < 1:
        raise c.fail("world_size", f"= {state['world_size']} is not a process count")
    # 0: the starting state a fresh run saves before its first epoch (train.Checkpointer)
    if not 0 <= state["epoch"] <= cfg.epochs:
        raise c.fail("epoch", f"= {state['epoch']} is outside this run's 0..{cfg.epochs} epochs")
    return cfg


def _optimizer_template(optimizer) -> dict:
    """The optimizer's state_dict as it is after a step: per-parameter state is created
    lazily, so step a throwaway copy of each parameter once (zero gradient)."""
    sd = optimizer.state_dict()
    states = []
    kws = [{k: g[k] for k in optimizer._names} for g in optimizer.param_groups]
    for p, group in zip(optimizer.params, optimizer._group_of):
        s: dict = {}
        type(optimizer).update(p.data.copy(), np.zeros_like(p.data), s, **kws[group])
        states.append({k: v for k, v in s.items() if not k.startswith("_")})
    sd["state"] = states
    return json_like(sd)


def json_like(obj):
    """``obj`` as it comes back from the checkpoint's JSON: tuples become lists."""
    if isinstance(obj, dict):
        return {str(k): json_like(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_like(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


def check_world_size(state: dict, world: int, folder) -> None:
    """One line when the run in ``folder`` was trained on another number of processes:
    its global batches were sharded, and its dropout and augmentation drawn, per rank
    of that count, so it resumes only with the same count (docs/distributed.md)."""
    saved = state["world_size"]
    if saved == world:
        return
    how = (f"mpirun -n {saved} bareprop train --resume {folder}" if saved > 1
           else f"bareprop train --resume {folder} (one process, without mpirun)")
    ran = f"{saved} processes" if saved > 1 else "one process"
    raise ConfigError(f"{folder} was trained on {ran}, this is {world}; a run resumes only "
                      f"with the count it was started with: {how}")


def check_against_run(state: dict, run, path) -> None:
    """``state`` has every field, type and shape the freshly built ``run`` would save."""
    from .. import modelfile

    c = _Checker(path)
    if json_like(modelfile.architecture(run.model)) != state["architecture"]:
        raise c.fail("architecture", "does not match the model its config builds")
    c.like(state["model"], run.model.state_dict(), "model")
    # a checkpoint from before parameter groups is read as one group (it still resumes)
    saved = run.optimizer.upgrade_state_dict(state["optimizer"])
    template = _optimizer_template(run.optimizer)
    if not state["epoch"] and isinstance(saved, dict) and isinstance(saved.get("state"), list):
        # a starting-state checkpoint (epoch 0): a parameter not yet stepped has an empty
        # state; any other state must be exactly what a step would have made
        states = template["state"]
        template = {**template, "state": [{} if s == {} else t for s, t in
                                          zip(saved["state"], states)] + states[len(saved["state"]):]}
    c.like(saved, template, "optimizer")
    saved_cbs = state["callbacks"]
    sched = getattr(run.stateful.get("scheduler"), "scheduler", None)
    if isinstance(saved_cbs, dict) and "scheduler" in saved_cbs and \
            hasattr(sched, "upgrade_state_dict"):          # schedules from before groups
        saved_cbs = {**saved_cbs, "scheduler": sched.upgrade_state_dict(saved_cbs["scheduler"])}
    c.like(saved_cbs, json_like({k: v.state_dict() for k, v in run.stateful.items()}),
           "callbacks")
    history = state["history"]
    c.keys(history, ("batch_loss", "epochs"), "history")
    c.scalar(history["batch_loss"], [_NUMBER], "history.batch_loss")
    c.scalar(history["epochs"], [dict], "history.epochs")
    for i, e in enumerate(history["epochs"]):
        for k, v in e.items():
            c.scalar(v, (_NUMBER, None), f"history.epochs[{i}].{k}")
        if not isinstance(e.get("epoch"), int) or isinstance(e.get("epoch"), bool):
            raise c.fail(f"history.epochs[{i}].epoch", "is missing or not an integer")
    cb = state["callbacks"]
    if "early_stopping" in cb:   # None in a fresh run, so the template cannot type it
        c.scalar(cb["early_stopping"]["best"], (_NUMBER, None), "callbacks.early_stopping.best")
    if "early_stopping" in cb and cb["early_stopping"]["best_weights"] is not None:
        c.like(cb["early_stopping"]["best_weights"], run.model.state_dict(),
               "callbacks.early_stopping.best_weights")
    for k in cb.get("inspector", {}):
        if not k.isdigit():
            raise c.fail(f"callbacks.inspector.{k}", "is not an epoch number")
    for where, v in _numbers(state["optimizer"], "optimizer"):
        if not math.isfinite(v):
            raise c.fail(where, f"= {v} is not finite")


def _numbers(obj, where):
    """(where, value) of every JSON number in ``obj``."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _numbers(v, f"{where}.{k}")
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _numbers(v, f"{where}[{i}]")
    elif isinstance(obj, Real) and not isinstance(obj, bool):
        yield where, float(obj)
