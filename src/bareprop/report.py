"""``bareprop report RUN_DIR``: one self-contained HTML page (figures as data URIs, a
small stylesheet in the web app's colours and fonts, no script, nothing loaded from
elsewhere) for the --out folder of a train run, a compare run, or both. It leads with
the headline numbers (an MPI run's processes and allreduce time among them), the curves
and the confusion matrix; then the settings that differ from the run's preset (the rest
folded), the per-epoch metrics, the model and the figures that look inside it. Every
value from the folder, the model file or the data is escaped: untrusted strings never
become markup.
"""
from __future__ import annotations

import base64
import html
import tempfile
from numbers import Real
from pathlib import Path


from . import modelfile, plots
from .data import load
from .errors import ConfigError, DataError
from .inference import Predictor
from .runs.jsonfiles import read_run_json
from .runs.layout import COMPARE, INSPECT, JSON_FILES, METRICS, MODEL, REPORT
from .runs.writer import write_whole

#: the web app's look (web/static/style.css), cut to what the report uses
STYLE = """
:root { --bg: #f5f6fa; --ink: #0f172a; --muted: #64748b; --line: #e2e8f0; --accent: #4f46e5;
  font-family: Inter, "Segoe UI", system-ui, -apple-system, Roboto, "Helvetica Neue", Arial, sans-serif;
  font-size: 15px; color: var(--ink); background: var(--bg); }
* { box-sizing: border-box; }
body { margin: 0; line-height: 1.45; }
code, pre, td.k { font-family: "JetBrains Mono", "SFMono-Regular", Menlo, Consolas, monospace; font-size: .84rem; }
.topbar { display: flex; align-items: center; gap: 10px; padding: 0 28px; height: 52px;
  background: #fff; border-bottom: 1px solid var(--line); }
.logo { width: 24px; height: 24px; border-radius: 7px; background: linear-gradient(135deg, #6366f1, #0ea5e9); }
.brand { font-weight: 750; font-size: 1.1rem; letter-spacing: -.02em; }
.muted { color: var(--muted); } .small { font-size: .82rem; } p { margin: 6px 0; }
main { max-width: 1320px; margin: 0 auto; padding: 20px 28px 48px; display: flex; flex-direction: column; gap: 16px; }
.grid { display: grid; grid-template-columns: minmax(0, 1fr) minmax(0, 1fr); gap: 16px; align-items: start; }
.card { background: #fff; border: 1px solid var(--line); border-radius: 12px; padding: 16px 20px;
  box-shadow: 0 1px 2px rgba(15,23,42,.04), 0 4px 16px rgba(15,23,42,.05); min-width: 0; overflow-x: auto; }
h1 { font-size: 1.35rem; margin: 0 0 4px; letter-spacing: -.01em; }
h2 { font-size: 1.02rem; margin: 0 0 10px; font-weight: 650; }
.big { font-size: 2rem; font-weight: 750; color: var(--accent); margin: 4px 0 10px; }
.stats { display: grid; grid-template-columns: repeat(auto-fit, minmax(130px, 1fr)); gap: 8px; }
.stat { background: #f8fafc; border: 1px solid var(--line); border-radius: 9px; padding: 7px 11px; }
.stat .k { display: block; font-size: .72rem; color: var(--muted); text-transform: uppercase; letter-spacing: .05em; font-weight: 600; }
.stat .v { display: block; font-size: 1.05rem; font-weight: 650; font-variant-numeric: tabular-nums; }
table { border-collapse: collapse; font-size: .88rem; }
th { text-align: left; font-size: .74rem; text-transform: uppercase; letter-spacing: .05em; color: var(--muted);
  font-weight: 600; padding: 6px 10px; border-bottom: 1px solid var(--line); }
td { padding: 5px 10px; border-bottom: 1px solid #f1f5f9; text-align: right; font-variant-numeric: tabular-nums; }
td.k { text-align: left; }
details { margin-top: 12px; } summary { cursor: pointer; color: var(--accent); font-weight: 600; }
pre { background: #f8fafc; border: 1px solid var(--line); border-radius: 8px; padding: 10px 12px; overflow-x: auto; }
img { max-width: 100%; height: auto; display: block; margin: 4px 0; }
"""

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>bareprop report: {title}</title>
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src data:; style-src 'unsafe-inline'; form-action 'none'">
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>{style}</style></head>
<body>
<header class="topbar"><span class="logo"></span><span class="brand">bareprop</span>
<span class="muted">report of {folder}</span></header>
<main>
{body}
</main>
</body></html>
"""


def _img(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _card(title: str, inner: str) -> str:
    return f'<section class="card"><h2>{html.escape(title)}</h2>{inner}</section>'


def _table(rows, header) -> str:
    """Rows of cells, the first (a name) left-aligned, numbers right-aligned; all escaped."""
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(
        f'<td{" class=k" if i == 0 else ""}>{html.escape(str(c))}</td>' for i, c in enumerate(r))
        + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _num(obj, key):
    """obj[key] when it is a number (metrics.json's optional fields are not checked)."""
    v = obj.get(key) if isinstance(obj, dict) else None
    return v if isinstance(v, Real) and not isinstance(v, bool) else None


# ----------------------------------------------------------------------------- settings

def _show(value) -> str:
    """A setting as one types it: words plain, lists space-separated, never JSON."""
    if isinstance(value, (list, tuple)):
        return " ".join(_show(v) for v in value) if value else "none"
    return ("none" if value is None else ("yes" if value else "no") if isinstance(value, bool)
            else repr(value) if isinstance(value, float) else str(value))


def _norm(value):
    return list(value) if isinstance(value, tuple) else value


def _flag(key) -> str:
    return "--" + str(key).replace("_", "-")


def unused_settings(cfg: dict) -> list[str]:
    """The settings of ``cfg`` the run never read: the MLP's with an --arch, and those of
    an optimizer or schedule it did not use (experiment.checks.FLAG_USERS)."""
    from .experiment.checks import FLAG_USERS
    from .experiment.config import MLP_FIELDS

    return [k for k in MLP_FIELDS if cfg.get("arch") and k in cfg] + [
        name for name, (field, users) in FLAG_USERS.items()
        if name in cfg and field in cfg and cfg[field] not in users]


def settings_rows(cfg: dict) -> list[tuple[str, str]]:
    """(setting, value as typed) rows of the settings a run used: an --arch run leaves
    out the MLP's (hidden, activation, ...: stored with their defaults, they describe no
    layer of the model, and "hidden 128" beside a CNN would mislead), and every run the
    flags its optimizer or schedule never reads (momentum under adam...)."""
    skip = set(unused_settings(cfg))
    return [(k, _show(v)) for k, v in cfg.items() if k not in skip]


def preset_settings(preset) -> dict | None:
    """Every setting of ``preset`` (defaults under the preset's own), or None for a name
    bareprop has no preset of."""
    from .experiment.config import DEFAULTS
    from .experiment.presets import PRESETS

    if not isinstance(preset, str) or preset not in PRESETS:
        return None
    return {k: _norm(v) for k, v in {**DEFAULTS, **PRESETS[preset]}.items()}


def changed_settings(cfg: dict) -> tuple[str, list[tuple[str, str, str]]]:
    """(what they are compared with, [(flag, this run's value, that value)]): the used
    settings that differ from the run's preset, or from the defaults when the preset is
    not one bareprop knows. The preset itself and the output folder are left out."""
    from .experiment.config import DEFAULTS

    base = preset_settings(cfg.get("preset"))
    label = f"preset {cfg.get('preset')}"
    if base is None:
        base, label = {k: _norm(v) for k, v in DEFAULTS.items()}, "bareprop's defaults"
    rows = [(_flag(k), _show(cfg[k]), _show(base[k]) if k in base else "(not a setting)")
            for k, _ in settings_rows(cfg)
            if k not in ("preset", "out") and _norm(cfg[k]) != base.get(k, object())]
    return label, rows


def _settings_section(cfg: dict) -> str:
    label, changed = changed_settings(cfg)
    used = settings_rows(cfg)
    top = (f"<p class=muted>{len(changed)} of the {len(used)} settings differ from "
           f"{html.escape(label)}:</p>" + _table(changed, ["setting", "this run", label])
           if changed else f"<p>Every setting is {html.escape(label)}'s.</p>")
    unused = unused_settings(cfg)
    note = (f"<p class='muted small'>Not read by this run (its optimizer, schedule or --arch "
            f"never uses them): {html.escape(', '.join(_flag(k) for k in unused))}</p>"
            if unused else "")
    folded = ("<details><summary>All " f"{len(used)} settings of the run</summary>"
              + _table([(_flag(k), v) for k, v in used], ["setting", "value"]) + note
              + "</details>")
    return _card("Settings", top + folded)


# ----------------------------------------------------------------------------- headline

def _duration(seconds) -> str:
    minutes, s = divmod(round(seconds or 0), 60)
    return ("-" if seconds is None else f"{seconds:.2g} s" if seconds < 1 else
            f"{seconds:.1f} s" if seconds < 120 else
            f"{minutes} min {s} s" if minutes < 60 else f"{minutes // 60} h {minutes % 60} min")


def _stats(pairs) -> str:
    return '<div class="stats">' + "".join(
        f'<div class="stat"><span class="k">{html.escape(k)}</span>'
        f'<span class="v">{html.escape(v)}</span></div>' for k, v in pairs) + "</div>"


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
            f'<p class="big">test accuracy {metrics["test_accuracy"]:.4f}</p>' + _stats(pairs)
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


# ------------------------------------------------------------------------------ the page

def build_report(run_dir, data_dir=None) -> Path:
    """Write ``run_dir``/report.html for the --out folder of a train run, a compare run,
    or both; every string from the folder is escaped before it reaches the page."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ConfigError(f"{run_dir}: not a run folder (give the --out folder of a train "
                          "or compare run)")
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


def _train_sections(metrics, predictor, extra, cfg, data_dir, tmp: Path, records) -> list[str]:
    """The train run's cards, in reading order."""
    from .train.history import History

    model = predictor.model
    out = [_train_headline(metrics, model, cfg)]
    hist = metrics["history"]
    if plots.save_training_plot(History(metrics["batch_loss"], hist), tmp / "curves.png",
                                title=cfg["dataset"]):
        out.append(_card("Loss and accuracy", _img(tmp / "curves.png", "Loss and accuracy")))
    dataset = extra.get("dataset", "mnist")
    cfg_dir = cfg.get("data_dir") if isinstance(cfg.get("data_dir"), str) else None
    try:
        ds = load(dataset if isinstance(dataset, str) else "mnist", data_dir=data_dir or cfg_dir,
                  verify=False, progress=False, splits=("test",))
    except (DataError, ConfigError) as exc:
        ds = None
        out.append(_card("Test set", f"<p>test-set figures skipped: {html.escape(str(exc))}</p>"))
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


def _inside_sections(predictor, ds, tmp: Path, records) -> list[str]:
    """First-layer weights or filters, feature maps of one test image, dead channels and
    the activation and gradient histograms."""
    model, out = predictor.model, []
    # the first layer with weights: a Linear's rows are images of the input, a Conv2d's
    # kernels are small filters (a Linear after convolutions is not shown as images)
    first = next((layer for layer in model.layers
                  if hasattr(layer, "in_features") or hasattr(layer, "in_channels")), None)
    if first is not None and first.weight.data.ndim == 4:
        if plots.save_conv_filters(first.weight.data, tmp / "filters.png"):
            out.append(_card("First-layer filters",
                             _img(tmp / "filters.png", "First-layer filters")))
    elif first is not None and plots.save_first_layer(first.weight.data, tmp / "weights.png"):
        out.append(_card("First-layer weights", _img(tmp / "weights.png", "First-layer weights")))
    if ds is not None and len(ds.y_test):
        one = ds.x_test[:1]                                          # (1, 28, 28) raw
        maps, probs = _feature_maps(predictor, one), predictor.predict_proba(one)
        title = (f"test image 0: label {ds.classes[ds.y_test[0]]}, predicted "
                 f"{ds.classes[probs[0].argmax()]} ({probs[0].max():.2f})")
        if plots.save_feature_maps(ds.x_test[0], maps, tmp / "maps.png", title):
            out.append(_card("Feature maps of one test image",
                             _img(tmp / "maps.png", "Feature maps of one test image")))
    if records:
        table = _channel_section(records)
        if table:
            out.append(table)
        for kind in ("activations", "gradients"):
            if plots.save_histograms(records, kind, tmp / f"{kind}.png"):
                out.append(_card(f"Histograms of {kind}",
                                 _img(tmp / f"{kind}.png", f"Histograms of {kind}")))
    return out


def _feature_maps(predictor, image) -> list:
    """[(layer, (C, H, W))]: what each convolution and pooling layer makes of ``image``
    (raw, (1, ...)), through the one inference path; [] for a model without them."""
    acts = predictor.activations(image)
    return [(f"{i} {layer.short_name()}", out[0])
            for i, (layer, (_, out)) in enumerate(zip(predictor.model.layers, acts))
            if hasattr(layer, "kernel_size") and out.ndim == 4]


def _channel_section(records) -> str:
    """A card with the image layers' channels at the last inspected epoch ('' when the
    model has none): how many never fired on the probe batch, and the mean fraction of
    zeros (inspect.json's per-channel statistics)."""
    last = max(records, key=int)
    rows = []
    for name, h in records[last]["activations"].items():
        zeros = (h.get("channels") or {}).get("zeros")
        if zeros:
            rows.append((name, len(zeros), sum(z == 1 for z in zeros),
                         f"{sum(zeros) / len(zeros):.3f}"))
    if not rows:
        return ""
    return _card(f"Channels on the probe batch (epoch {last})", _table(
        rows, ["layer", "channels", "never active", "zeros (mean)"]) +
        "<p>A channel that is 0 at every position of every probe example never fired: "
        "after a ReLU, a dead filter.</p>")


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
