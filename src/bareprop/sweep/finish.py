"""The end of a sweep: the best trial's test accuracy (the test set's one use), its
reproduction command, sweep.png.

sweep.png: left, each trial's validation accuracy after each epoch (pruned trials end
early, failed ones are not drawn), the best in colour; then one panel per searched
parameter, its value against the trial's objective (log axis for a log range).
"""
from __future__ import annotations

import json

from ..runs.jsonfiles import read_run_json
from ..runs.layout import METRICS, MODEL, SWEEP_PLOT
from ..runs.lock import claim_run_folder
from ..runs.writer import write_whole
from .child import pin_data
from .record import best_trial, reproduce, trial_folder


def test_best(sw, record: dict, data_dir=None) -> dict | None:
    """Evaluate the best complete trial on the test set, once; write the figures into
    its metrics.json and record["best"]. None when no trial completed."""
    from .. import core
    from ..data import load
    from ..inference import Predictor
    from ..train import evaluate

    best = best_trial(record["trials"])
    if best is None:
        record["best"] = None
        return None
    prev = record.get("best") or {}
    if prev.get("number") == best["number"] and isinstance(prev.get("test_accuracy"), float):
        return prev                  # tested when the sweep first finished: not again
    folder = sw.folder / trial_folder(int(best["number"]))   # never a path from the file
    settings = sw.trial_settings(best["params"])
    pin_data(settings)
    out, lock = claim_run_folder(str(folder), resume=True)
    with lock:
        predictor = Predictor.from_file(out / MODEL)
        ds = load(settings.get("dataset", "mnist"),
                  data_dir=data_dir or settings.get("data_dir"),
                  verify=settings.get("verify", True), progress=False, splits=("test",))
        test = predictor.batches(ds.x_test, ds.y_test)
        smoothing = float(settings.get("label_smoothing") or 0.0)
        result = evaluate(predictor.model, core.CrossEntropyLoss(label_smoothing=smoothing),
                          test)
        metrics = read_run_json(out / METRICS)
        metrics.update(test_accuracy=result.accuracy, test_loss=result.loss,
                       per_class_accuracy=result.per_class_accuracy(
                           ds.y_test, len(ds.classes)).tolist())
        write_whole(out, METRICS, json.dumps(metrics, indent=1).encode())
    record["best"] = {"number": best["number"], "value": best["value"],
                      "params": best["params"], "test_accuracy": result.accuracy,
                      "folder": trial_folder(int(best["number"])),
                      "command": reproduce(sw.settings, sw.values(best["params"]),
                                           sw.threads)}
    return record["best"]


def save_figure(sw, record: dict) -> bool:
    """sweep.png (False when matplotlib is missing)."""
    return draw(sw.space, record, sw.folder / SWEEP_PLOT)


def draw(space, record: dict, path) -> bool:
    """The sweep's figure for ``record`` (sweep.json's content) at ``path``; False when
    matplotlib is missing."""
    from .. import plots

    plt = plots._pyplot()
    if plt is None:
        return False
    params = list(space)
    fig, axes = plt.subplots(1, 1 + len(params), figsize=(4.2 * (1 + len(params)), 3.6),
                             squeeze=False)
    axes = axes[0]
    best = record.get("best") or {}
    for t in record["trials"]:
        acc = [a for a in t["val_accuracy"] if a is not None]
        if not acc or t["state"] == "failed":
            continue
        is_best = t["number"] == best.get("number")
        at = t.get("at") if isinstance(t.get("at"), list) and len(t["at"]) == len(acc) \
            else None
        xs = [a / 60 for a in at] if at else range(1, len(acc) + 1)
        axes[0].plot(xs, acc, lw=2 if is_best else 1, marker=".", ms=3,
                     color="C3" if is_best else ("C0" if t["state"] == "complete" else "0.6"),
                     alpha=1 if is_best else 0.7, zorder=3 if is_best else 2,
                     label=f"best, trial {t['number']}" if is_best else None)
    timed = all(isinstance(t.get("at"), list) for t in record["trials"])
    axes[0].set_xlabel("minutes into the sweep" if timed else "epoch")
    axes[0].set_ylabel("validation accuracy")
    axes[0].set_title("each trial after each epoch (grey: pruned)")
    if best:
        axes[0].legend(loc="lower right", fontsize=8)
    for ax, p in zip(axes[1:], params):
        points = [(t["params"].get(p.field), t["value"], t["state"])
                  for t in record["trials"]]
        for state, colour in (("complete", "C0"), ("pruned", "0.6")):
            kept = [(x, y) for x, y, s in points if s == state and y is not None and
                    (isinstance(x, (int, float)) or p.kind == "choice")]
            xs, ys = [x for x, _ in kept], [y for _, y in kept]
            if p.kind == "choice":      # text from the file: never matplotlib's $math$
                xs = [plots._plain(x) for x in xs]
            ax.scatter(xs, ys, s=18, color=colour, label=state)
        if p.log and any(isinstance(x, (int, float)) and x > 0 and y is not None
                         for x, y, _ in points):
            ax.set_xscale("log")
        ax.set_xlabel(plots._plain(p.field))
        ax.set_title(plots._plain(p.field))
    for ax in axes[1:2]:
        ax.legend(fontsize=8)
    fig.tight_layout()
    plots._save(fig, path, dpi=90)
    return True

