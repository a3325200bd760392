"""What a finished training run leaves in its folder besides the model: metrics.json
(the results, the per-epoch history, the per-batch loss, the config and the machine),
inspect.json (the inspector's histograms), and the "wrote ..." line naming them.

metrics.json's fields (what jsonfiles.read_run_json checks, what report/ and the web
app read):

    test_accuracy, test_loss   on the test set, evaluated after the last epoch
    per_class_accuracy         one number per class, in class order
    seconds_per_epoch          the median epoch's wall time (None with no epoch run)
    total_seconds              the whole run, building and evaluating included
    epochs_run, history        the History's epochs: {"epoch", "train_loss", ...}
    batch_loss                 every batch's loss, in order
    config, machine            the TrainConfig's dict and what it ran on
    processes                  1, or the mpirun process count
    bareprop_version

Not here: evaluating or timing the run (cli/train_cmd.py), reading the files back
(jsonfiles.py).
"""
from __future__ import annotations

import json
import statistics
from pathlib import Path

from .layout import INSPECT, METRICS
from .writer import write_whole


def train_metrics(*, test_accuracy: float, test_loss: float, per_class_accuracy: list,
                  history, total_seconds: float, config: dict, machine: dict,
                  processes: int, version: str) -> dict:
    """metrics.json's content for a run whose History is ``history`` (``.epochs``,
    ``.batch_loss``)."""
    epochs = history.epochs
    return {
        "test_accuracy": test_accuracy,
        "test_loss": test_loss,
        "per_class_accuracy": list(per_class_accuracy),
        "seconds_per_epoch": statistics.median(e["seconds"] for e in epochs)
        if epochs else None,
        "total_seconds": total_seconds,
        "epochs_run": len(epochs),
        "history": epochs,
        "batch_loss": history.batch_loss,
        "config": config,
        "machine": machine,
        "processes": processes,
        "bareprop_version": version,
    }


def write_train_results(folder, metrics: dict, inspect_records: dict | None) -> list[str]:
    """Write metrics.json, and inspect.json when the run inspected any epoch; the names
    written, in that order."""
    write_whole(folder, METRICS, json.dumps(metrics, indent=1).encode())
    if not inspect_records:
        return [METRICS]
    write_whole(folder, INSPECT, json.dumps(inspect_records).encode())
    return [METRICS, INSPECT]


def wrote_line(folder, names: list[str]) -> str:
    """``wrote FOLDER/first, second, ...``: what a command tells after writing a run."""
    first, *rest = names
    return f"wrote {Path(folder) / first}" + "".join(f", {n}" for n in rest)
