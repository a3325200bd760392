"""``bareprop report RUN_DIR``: one self-contained HTML page (figures as data URIs, a
small stylesheet in the web app's colours and fonts, no script, nothing loaded from
elsewhere) for the --out folder of a train run, a compare run, or both. It leads with
the headline numbers (an MPI run's processes and allreduce time among them), the curves
and the confusion matrix; then the settings that differ from the run's preset (the rest
folded), the per-epoch metrics, the model and the figures that look inside it. Every
value from the folder, the model file or the data is escaped: untrusted strings never
become markup.

Its parts: page.py (the stylesheet, the page, cards and tables), headline.py (the first
card), settings.py (the settings card), inside.py (the look inside the model) and
explained.py (what the network looked at: Grad-CAM or integrated gradients).
"""
from __future__ import annotations

import html
import tempfile
from pathlib import Path

from .. import modelfile, plots
from ..data import load
from ..errors import ConfigError, DataError
from ..inference import Predictor
from ..runs.jsonfiles import read_run_json
from ..runs.layout import COMPARE, INSPECT, JSON_FILES, METRICS, MODEL, REPORT, SWEEP
from ..runs.writer import write_whole
# the report's parts, under the names report.py gave them when it was one module
from . import explained
from .headline import _compare_headline, _duration, _stats, _train_headline
from .inside import _channel_section, _feature_maps, _inside_sections
from .page import PAGE, STYLE, _card, _img, _num, _table
from .settings import (_flag, _norm, _settings_section, _show, changed_settings,
                       preset_settings, settings_rows, unused_settings)

__all__ = ["PAGE", "STYLE", "build_report", "changed_settings", "preset_settings",
           "settings_rows", "unused_settings"]


# ------------------------------------------------------------------------------ the page

def build_report(run_dir, data_dir=None) -> Path:
    """Write ``run_dir``/report.html for the --out folder of a train run, a compare run,
    or both; every string from the folder is escaped before it reaches the page."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ConfigError(f"{run_dir}: not a run folder (give the --out folder of a train "
                          "or compare run)")
    if (run_dir / SWEEP).exists() and not (run_dir / METRICS).exists():
        return _sweep_report(run_dir)
    found = {n: run_dir / n for n in JSON_FILES if (run_dir / n).exists()}
    if METRICS not in found and COMPARE not in found:
        raise ConfigError(f"{run_dir}: no metrics.json or compare.json; is this the --out "
                          "folder of a bareprop train or compare run?")
    data = {n: read_run_json(p) for n, p in found.items()}
    metrics, comp = data.get(METRICS), data.get(COMPARE)
    if plots._pyplot() is None:
        raise ConfigError(plots.INSTALL_HINT)
    cfg = (metrics or comp)["config"]
    with tempfile.TemporaryDirectory() as tmp:
        if metrics is not None:
            model, meta = modelfile.load(run_dir / MODEL, with_meta=True)
            predictor = Predictor.from_meta(model, meta, source=run_dir / MODEL)
            extra = meta.get("extra", {}) if isinstance(meta.get("extra"), dict) else {}
            sections = _train_sections(metrics, predictor, extra, cfg, data_dir, Path(tmp),
                                       data.get(INSPECT))
            if comp is not None:
                sections += _compare_section(comp, Path(tmp))
        else:
            sections = [_compare_headline(comp, cfg), *_compare_section(comp, Path(tmp)),
                        _settings_section(cfg)]
    page = PAGE.format(title=html.escape(f"{cfg['dataset']}, preset {cfg['preset']}"),
                       style=STYLE, folder=html.escape(run_dir.resolve().name),
                       body="\n".join(sections))
    return write_whole(run_dir, REPORT, page.encode())


def _sweep_report(run_dir: Path) -> Path:
    """report.html of a sweep folder (report/sweep.py)."""
    from . import sweep

    if plots._pyplot() is None:
        raise ConfigError(plots.INSTALL_HINT)
    title, sections = sweep.sections(read_run_json(run_dir / SWEEP))
    page = PAGE.format(title=html.escape(title), style=STYLE,
                       folder=html.escape(run_dir.resolve().name), body="\n".join(sections))
    return write_whole(run_dir, REPORT, page.encode())


def _train_sections(metrics, predictor, extra, cfg, data_dir, tmp: Path, records) -> list[str]:
    """The train run's cards, in reading order."""
    from ..train.history import History

    model = predictor.model
    out = [_train_headline(metrics, model, cfg)]
    hist = metrics["history"]
    if plots.save_training_plot(History(metrics["batch_loss"], hist), tmp / "curves.png",
                                title=cfg["dataset"]):
        out.append(_card("Loss and accuracy", _img(tmp / "curves.png", "Loss and accuracy")))
    dataset = extra.get("dataset", "mnist")
    cfg_dir = cfg.get("data_dir") if isinstance(cfg.get("data_dir"), str) else None
    ds = None
    if metrics.get("test_accuracy") is None:         # a sweep's trial: never tested
        out.append(_card("Test set", "<p>test-set figures skipped: this is one trial of a "
                         "sweep, judged on its validation split; the sweep evaluates the test "
                         "set for its best trial alone.</p>"))
    else:
        try:
            ds = load(dataset if isinstance(dataset, str) else "mnist",
                      data_dir=data_dir or cfg_dir, verify=False, progress=False,
                      splits=("test",))
        except (DataError, ConfigError) as exc:
            out.append(_card("Test set",
                             f"<p>test-set figures skipped: {html.escape(str(exc))}</p>"))
    later = []
    if ds is not None:
        probs = predictor.predict_proba(ds.x_test)       # the one inference path
        pred = probs.argmax(1)
        per_class = plots.confusion_matrix(ds.y_test, pred, len(ds.classes))
        accuracy = _card("Per-class accuracy", _table(
            [(c, f"{per_class[i, i] / max(per_class[i].sum(), 1):.4f}", int(per_class[i].sum()))
             for i, c in enumerate(ds.classes)], ["class", "accuracy", "examples"]))
        confusion = (_card("Confusion matrix", _img(tmp / "confusion.png", "Confusion matrix"))
                     if plots.save_confusion(ds.y_test, pred, ds.classes, tmp / "confusion.png")
                     else "")
        out.append(f'<div class="grid">{confusion}{accuracy}</div>')
        if plots.save_worst(ds.x_test, ds.y_test, probs, ds.classes, tmp / "worst.png"):
            later.append(_card("Most confident mistakes",
                               _img(tmp / "worst.png", "Most confident mistakes")))
        later += explained.section(predictor, ds, probs, tmp)
    out.append(_settings_section(cfg))
    keys = [k for k in ("train_loss", "train_accuracy", "val_loss", "val_accuracy", "test_loss",
                        "test_accuracy", "lr", "seconds", "allreduce_seconds")
            if hist and k in hist[0]]
    out.append(_card("Metrics per epoch", _table(
        [[e["epoch"]] + [f"{e[k]:.4g}" for k in keys] for e in hist],
        ["epoch"] + [k.replace("_", " ") for k in keys])))
    out.append(_card("Model", "<pre>" + html.escape(model.summary(print_fn=None)) + "</pre>"))
    out += later
    out += _inside_sections(predictor, ds, tmp, records)
    return out


def _compare_section(comp, tmp: Path) -> list[str]:
    """The compare table and curves (framework name escaped like every other string)."""
    fw = comp.get("framework", "torch")
    rows = [(r["epoch"], f"{r['bareprop']['train_loss']:.6f}",
             f"{r[fw]['train_loss']:.6f}", f"{r['bareprop']['test_accuracy']:.4f}",
             f"{r[fw]['test_accuracy']:.4f}", f"{r['max_abs_weight_diff']:.3e}")
            for r in comp["epochs"]]
    label = {"torch": "PyTorch", "keras": "Keras"}.get(fw, fw)
    out = [_card(f"bareprop vs {label}", _table(
        rows, ["epoch", "loss bareprop", f"loss {fw}", "acc bareprop", f"acc {fw}",
               "max |dW|"]) + f"<p>{html.escape(comp.get('verdict', ''))}</p>")]
    if plots.save_compare_plot(comp, tmp / "compare.png"):
        title = f"Loss curves, bareprop and {label}"
        out.append(_card(title, _img(tmp / "compare.png", title)))
    return out
