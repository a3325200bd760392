"""What a sweep is to do, checked whole before any trial starts: ``plan``.

A Sweep is the folder, the train settings every trial shares (the typed flags, the
sweep's seed and validation fraction), the space, and how trials are run. It is saved
in sweep.json, so ``--resume`` continues with exactly these.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError
from .space import Param, check_space, parse_space

ENGINES = ("optuna", "ray")
PRUNERS = ("none", "median", "asha")
EXTRAS = {"optuna": ("optuna", "sweep"), "ray": ("ray", "ray")}


@dataclass
class Sweep:
    folder: Path
    settings: dict                   # train settings shared by every trial (JSON values)
    space: tuple[Param, ...]
    trials: int
    jobs: int = 1
    prune: str = "median"
    engine: str = "optuna"
    seed: int = 0
    ray_address: str | None = None
    threads: int = 1                 # BLAS threads per trial

    @property
    def epochs(self) -> int:
        from ..experiment import make_config

        return make_config(self.settings).epochs

    def trial_settings(self, drawn: dict) -> dict:
        """The train settings of a trial whose drawn values (Optuna's) are ``drawn``."""
        return {**self.settings, **self.values(drawn)}

    def values(self, drawn: dict) -> dict:
        return {p.field: p.value(drawn[p.field]) for p in self.space}

    def distributions(self) -> dict:
        return {p.field: p.distribution() for p in self.space}


def require(engine: str) -> None:
    """ConfigError naming the extra to install when the engine's library is missing."""
    module, extra = EXTRAS[engine]
    try:
        __import__(module)
    except ImportError:
        raise ConfigError(f"--engine {engine} needs {module}: pip install "
                          f"'bareprop[{extra}]'") from None


def plan(folder, explicit: dict, space_texts: list[str], trials: int, jobs: int = 1,
         prune: str = "median", engine: str = "optuna", seed: int = 0,
         ray_address: str | None = None, cores: int | None = None) -> Sweep:
    """The Sweep of these arguments, or ConfigError (one line) for the first problem:
    every check here runs before a folder is claimed or a trial started."""
    from ..experiment import check_flags, make_config
    from .trials import cores as count_cores

    if engine not in ENGINES:
        raise ConfigError(f"--engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    if prune not in PRUNERS:
        raise ConfigError(f"--prune must be one of {', '.join(PRUNERS)}, got {prune!r}")
    if trials < 1:
        raise ConfigError(f"--trials must be at least 1, got {trials}")
    if jobs < 1:
        raise ConfigError(f"--jobs must be at least 1, got {jobs}")
    if ray_address is not None and engine != "ray":
        raise ConfigError("--ray-address joins a Ray cluster: add --engine ray")
    space = parse_space(space_texts)
    settings = {k: v for k, v in explicit.items() if k != "out" and v is not None}
    if settings.get("data_dir"):     # trials may run elsewhere (a Ray worker's own folder)
        settings["data_dir"] = str(Path(settings["data_dir"]).resolve())
    settings.setdefault("val_fraction", 0.1)
    if not settings["val_fraction"] > 0:
        raise ConfigError("a sweep is judged on a validation split: --val-fraction must be "
                          "above 0 (default 0.1)")
    settings["seed"] = seed
    check_flags(settings, make_config(settings))     # the shared settings on their own
    check_space(space, settings)
    require(engine)
    if engine == "ray":
        from .ray_engine import check_address

        check_address(ray_address)
    n = cores or count_cores()
    if jobs > n and engine == "optuna":
        warnings.warn(f"--jobs {jobs} is more than this machine's {n} cores; running "
                      f"{n} trials at once", stacklevel=2)
        jobs = n
    settings = {k: list(v) if isinstance(v, tuple) else v for k, v in settings.items()}
    return Sweep(Path(folder), settings, space, trials, jobs, prune, engine, seed,
                 ray_address, threads=max(1, n // jobs))


def from_record(folder, record: dict) -> Sweep:
    """The Sweep a sweep.json describes (``--resume``); its space parsed and checked
    again, as typed flags are."""
    from ..experiment import make_config

    space = parse_space(record["space"])
    settings = record["settings"]
    try:
        make_config(settings)
    except (TypeError, ValueError) as exc:        # a field of the wrong type or name
        raise ConfigError(f"its settings are not train's ({exc})") from None
    check_space(space, settings)
    for row in record["trials"]:
        for p in space:
            p.value(row["params"][p.field])          # each drawn value still converts
    return Sweep(Path(folder), settings, space, int(record["trials_wanted"]),
                 int(record.get("jobs") or 1), record["prune"], record["engine"],
                 int(record["seed"]), record.get("ray_address"),
                 int(record.get("threads") or 1))


def new_record(sw: Sweep) -> dict:
    from .record import FORMAT, VERSION

    return {"format": FORMAT, "version": VERSION, "state": "running", "engine": sw.engine,
            "prune": sw.prune, "seed": sw.seed, "trials_wanted": sw.trials, "jobs": sw.jobs,
            "threads": sw.threads, "ray_address": sw.ray_address, "settings": sw.settings,
            "space": [p.spec() for p in sw.space], "trials": [], "best": None,
            "trial_epochs": 0, "seconds": 0.0}
