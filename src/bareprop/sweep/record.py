"""sweep.json: what a sweep did, rewritten whole after every trial that ends.

    {"format": "bareprop-sweep", "version": 1, "state": "running|finished|interrupted",
     "engine": "optuna", "prune": "median", "seed": 0, "trials_wanted": 24, "jobs": 2,
     "settings": {...},          the train settings every trial shares (val_fraction, seed)
     "space": ["lr=log(0.0001,0.1)", ...],
     "threads": 1,               BLAS threads each trial ran with
     "trials": [{"number": 0, "folder": "trials/0000", "params": {"lr": 0.003},
                 "state": "complete|pruned|failed|running", "reason": null,
                 "val_accuracy": [0.84, 0.86, ...], "value": 0.88, "seconds": 12.1}],
     "best": {"number": 3, "value": 0.89, "test_accuracy": 0.88, "command": "bareprop train ..."},
     "trial_epochs": 131, "seconds": 612.0}

``value`` is the objective, the final weights' validation accuracy. The test set is
evaluated once, for the best trial, when the sweep finishes (``best.test_accuracy``).

Not here: reading it back as untrusted input (runs/jsonfiles.py checks its fields).
"""
from __future__ import annotations

import json
import math
import shlex

from ..runs.layout import SWEEP
from ..runs.writer import write_whole

FORMAT, VERSION = "bareprop-sweep", 1


def trial_folder(number: int) -> str:
    return f"trials/{number:04d}"


def new_trial(number: int, params: dict) -> dict:
    return {"number": number, "folder": trial_folder(number), "params": dict(params),
            "state": "running", "reason": None, "val_accuracy": [], "value": None,
            "seconds": 0.0}


def best_trial(trials: list[dict]) -> dict | None:
    """The complete trial of the highest value (the first of equals)."""
    done = [t for t in trials if t["state"] == "complete" and t["value"] is not None]
    return max(done, key=lambda t: t["value"], default=None)


def reproduce(settings: dict, params_values: dict, threads: int | None) -> str:
    """The ``bareprop train`` command that retrains a trial: the shared settings and the
    trial's values (as TrainConfig values), its run folder left to the user, and the
    BLAS thread count it ran with (a GEMM's sums may group differently with another)."""
    from ..experiment.flags import command_words

    merged = {k: v for k, v in {**settings, **params_values}.items() if k != "out"}
    env = [f"OPENBLAS_NUM_THREADS={threads}", f"OMP_NUM_THREADS={threads}"] if threads else []
    return " ".join([*env, shlex.join(command_words(merged))])


def write(folder, record: dict) -> None:
    record["trial_epochs"] = sum(len(t["val_accuracy"]) for t in record["trials"])
    write_whole(folder, SWEEP, json.dumps(record, indent=1).encode())


def fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    if isinstance(value, (list, tuple)):
        return " ".join(fmt(v) for v in value)
    return str(value)


def table(record: dict) -> str:
    """The trials as a text table, best first among the complete ones."""
    names = [s.split("=", 1)[0] for s in record["space"]]
    rows = [["trial", *names, "epochs", "val acc", "state"]]
    order = sorted(record["trials"], key=lambda t: (t["state"] != "complete",
                                                    -(t["value"] or 0), t["number"]))
    for t in order:
        value = "" if t["value"] is None or not math.isfinite(t["value"]) else f"{t['value']:.4f}"
        state = t["state"] + (f" ({t['reason']})" if t["reason"] else "")
        rows.append([f"{t['number']:04d}", *(fmt(t["params"].get(n, "")) for n in names),
                     str(len(t["val_accuracy"])), value, state])
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    return "\n".join("  ".join(c.rjust(w) for c, w in zip(r, widths)) + "  " + r[-1]
                     for r in rows)
