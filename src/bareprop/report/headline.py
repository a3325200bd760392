"""The report's first card: the headline numbers of a train run (accuracy, time, the
processes and their allreduce share) or of a compare run."""
from __future__ import annotations

import html

from .page import _num
from .settings import changed_settings


def _duration(seconds) -> str:
    minutes, s = divmod(round(seconds or 0), 60)
    return ("-" if seconds is None else f"{seconds:.2g} s" if seconds < 1 else
            f"{seconds:.1f} s" if seconds < 120 else
            f"{minutes} min {s} s" if minutes < 60 else f"{minutes // 60} h {minutes % 60} min")


def _stats(pairs) -> str:
    return '<div class="stats">' + "".join(
        f'<div class="stat"><span class="k">{html.escape(k)}</span>'
        f'<span class="v">{html.escape(v)}</span></div>' for k, v in pairs) + "</div>"


def _result_line(metrics: dict) -> str:
    """"test accuracy 0.9812", or for a sweep's trial never tested its validation
    accuracy (the sweep keeps the test set for its best trial)."""
    if metrics.get("test_accuracy") is not None:
        return f"test accuracy {metrics['test_accuracy']:.4f}"
    return (f"validation accuracy {metrics['val_accuracy']:.4f} (a sweep's trial: the test "
            "set is evaluated for the sweep's best trial alone)")


def _train_headline(metrics: dict, model, cfg: dict) -> str:
    hist = metrics["history"]
    last = hist[-1] if hist else {}
    pairs = [(k, f"{v:.4f}") for k, v in (("test loss", _num(metrics, "test_loss")),
                                           ("val accuracy", _num(last, "val_accuracy")))
             if v is not None]
    planned = _num(cfg, "epochs")
    pairs.append(("epochs", f"{len(hist)}" + (f" of {planned}" if planned and planned != len(hist)
                                               else "")))
    total = _num(metrics, "total_seconds")
    per_epoch = _num(metrics, "seconds_per_epoch")
    pairs.append(("time", _duration(total)))
    if per_epoch is not None:
        pairs.append(("an epoch", _duration(per_epoch)))
    pairs.append(("parameters", f"{sum(p.data.size for p in model.parameters()):,}"))
    pairs.append(("processes", f"{_num(metrics, 'processes') or 1:g}"))
    allreduce = [e["allreduce_seconds"] for e in hist if _num(e, "allreduce_seconds") is not None]
    if allreduce:
        spent = sum(allreduce)
        epochs = sum(e["seconds"] for e in hist if _num(e, "seconds") is not None)
        share = f", {spent / epochs:.0%} of training" if epochs else ""
        pairs.append(("allreduce", f"{_duration(spent)}{share}"))
    machine = metrics.get("machine") if isinstance(metrics.get("machine"), dict) else {}
    where = ", ".join(f"{k} {v}" for k, v in machine.items() if k != "platform")
    label, changed = changed_settings(cfg)
    return ('<section class="card">'
            f"<h1>{html.escape(str(cfg['dataset']))}, preset {html.escape(str(cfg['preset']))}</h1>"
            f'<p class="big">{html.escape(_result_line(metrics))}</p>' + _stats(pairs)
            + (f"<p class='small'>Changed from {html.escape(label)}: " + html.escape(
                ", ".join(f"{f} {v}" for f, v, _ in changed)) + "</p>" if changed else "")
            + (f"<p class='muted small'>Ran on {html.escape(where)}.</p>" if where else "")
            + "</section>")


def _compare_headline(comp: dict, cfg: dict) -> str:
    last = comp["epochs"][-1]
    pairs = [("epochs", str(len(comp["epochs"]))), ("twin", comp.get("framework", "torch")),
             ("max |dW|", f"{last['max_abs_weight_diff']:.3e}")]
    return ('<section class="card">'
            f"<h1>{html.escape(str(cfg['dataset']))}, preset {html.escape(str(cfg['preset']))}</h1>"
            f'<p class="big">test accuracy {last["bareprop"]["test_accuracy"]:.4f} '
            "(compare run)</p>" + _stats(pairs) + "</section>")
