"""``bareprop report RUN_DIR``: one self-contained HTML page (images embedded as data
URIs) with the config, the model summary, the metrics, every plot, and the compare
table when the run folder holds a compare.json (a compare --out folder alone works too).
Every value from the folder, the model file or the data is escaped: untrusted strings
never become markup.
"""
from __future__ import annotations

import base64
import html
import json
import tempfile
from pathlib import Path


from . import modelfile, plots
from .data import load
from .errors import ConfigError, DataError
from .inference import Predictor
from .runs.jsonfiles import read_run_json
from .runs.layout import COMPARE, INSPECT, JSON_FILES, METRICS, MODEL, REPORT
from .runs.writer import write_whole

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>bareprop report: {title}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1100px; color: #222; }}
h1 {{ font-size: 1.5rem; }} h2 {{ border-bottom: 1px solid #ddd; margin-top: 2rem; }}
table {{ border-collapse: collapse; font-size: 0.9rem; }}
td, th {{ border: 1px solid #ddd; padding: 0.25rem 0.6rem; text-align: right; }}
th {{ background: #f4f4f4; }} td.k {{ text-align: left; font-family: monospace; }}
pre {{ background: #f7f7f7; padding: 0.8rem; overflow-x: auto; }}
img {{ max-width: 100%; display: block; margin: 0.5rem 0; }}
.big {{ font-size: 1.4rem; font-weight: bold; }}
</style></head>
<body data-images-ok="pending">
<h1>bareprop report: {title}</h1>
<p class="big">{acc}</p>
{body}
<script>
// lets a headless browser (and the test suite) confirm every figure decoded
window.addEventListener("load", function () {{
  var imgs = Array.from(document.images);
  var ok = imgs.filter(function (i) {{ return i.complete && i.naturalWidth > 0; }}).length;
  document.body.dataset.imagesOk = ok === imgs.length ? "true" : "false";
  document.body.dataset.imagesLoaded = ok + "/" + imgs.length;
}});
</script>
</body></html>
"""


def _img(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _table(rows, header) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(
        f'<td{" class=k" if i == 0 else ""}>{html.escape(str(c))}</td>' for i, c in enumerate(r))
        + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def settings_rows(cfg: dict) -> list[tuple[str, str]]:
    """(setting, JSON value) rows of a run's config. A run built from --arch leaves out the
    MLP's settings (hidden, activation, ...): they are stored with their defaults but
    describe no layer of the model, and "hidden [128]" beside a CNN would mislead."""
    from .experiment.config import MLP_FIELDS

    skip = MLP_FIELDS if cfg.get("arch") else ()
    return [(k, json.dumps(v)) for k, v in cfg.items() if k not in skip]


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
    model, extra, predictor = None, {}, None
    if metrics is not None:
        model, meta = modelfile.load(run_dir / MODEL, with_meta=True)
        predictor = Predictor.from_meta(model, meta, source=run_dir / MODEL)
        extra = meta.get("extra", {}) if isinstance(meta.get("extra"), dict) else {}
    cfg = (metrics or comp)["config"]
    sections = ["<h2>Settings</h2>" + _table(settings_rows(cfg), ["setting", "value"])]
    with tempfile.TemporaryDirectory() as tmp:
        figures = []
        if metrics is not None:
            figures += _train_sections(sections, metrics, predictor, extra, cfg, data_dir,
                                       Path(tmp), data.get(INSPECT))
        if comp is not None:
            figures += _compare_section(sections, comp, Path(tmp))
        for title, path in figures:
            sections.append(f"<h2>{html.escape(title)}</h2>" + _img(path, title))
    if metrics is not None:
        acc = f"test accuracy {metrics['test_accuracy']:.4f}"
    else:
        acc = f"test accuracy {comp['epochs'][-1]['bareprop']['test_accuracy']:.4f} (compare run)"
    page = PAGE.format(title=html.escape(f"{cfg['dataset']}, preset {cfg['preset']}"),
                       acc=html.escape(acc), body="\n".join(sections))
    return write_whole(run_dir, REPORT, page.encode())


def _train_sections(sections, metrics, predictor, extra, cfg, data_dir, tmp: Path, records):
    """Append the model, metrics and test-set sections; return the figures to embed."""
    from .train.history import History

    model = predictor.model
    sections.append("<h2>Model</h2><pre>" + html.escape(model.summary(print_fn=None)) + "</pre>")
    hist = metrics["history"]
    keys = [k for k in ("train_loss", "train_accuracy", "val_loss", "val_accuracy", "test_loss",
                        "test_accuracy", "lr", "seconds") if hist and k in hist[0]]
    sections.append("<h2>Metrics per epoch</h2>" + _table(
        [[e["epoch"]] + [f"{e[k]:.4g}" for k in keys] for e in hist], ["epoch"] + keys))
    figures = []
    h = History(metrics["batch_loss"], hist)
    if plots.save_training_plot(h, tmp / "curves.png", title=cfg["dataset"]):
        figures.append(("Loss and accuracy", tmp / "curves.png"))
    dataset = extra.get("dataset", "mnist")
    cfg_dir = cfg.get("data_dir") if isinstance(cfg.get("data_dir"), str) else None
    try:
        ds = load(dataset if isinstance(dataset, str) else "mnist", data_dir=data_dir or cfg_dir,
                  verify=False, progress=False, splits=("test",))
    except (DataError, ConfigError) as exc:
        ds = None
        sections.append(f"<p>test-set figures skipped: {html.escape(str(exc))}</p>")
    if ds is not None:
        probs = predictor.predict_proba(ds.x_test)       # the one inference path
        pred = probs.argmax(1)
        per_class = plots.confusion_matrix(ds.y_test, pred, len(ds.classes))
        sections.append("<h2>Per-class accuracy</h2>" + _table(
            [(c, f"{per_class[i, i] / max(per_class[i].sum(), 1):.4f}", int(per_class[i].sum()))
             for i, c in enumerate(ds.classes)], ["class", "accuracy", "examples"]))
        if plots.save_confusion(ds.y_test, pred, ds.classes, tmp / "confusion.png"):
            figures.append(("Confusion matrix", tmp / "confusion.png"))
        if plots.save_worst(ds.x_test, ds.y_test, probs, ds.classes, tmp / "worst.png"):
            figures.append(("Most confident mistakes", tmp / "worst.png"))
    # the first layer with weights: a Linear's rows are images of the input, a Conv2d's
    # kernels are small filters (a Linear after convolutions is not shown as images)
    first = next((layer for layer in model.layers
                  if hasattr(layer, "in_features") or hasattr(layer, "in_channels")), None)
    if first is not None and first.weight.data.ndim == 4:
        if plots.save_conv_filters(first.weight.data, tmp / "filters.png"):
            figures.append(("First-layer filters", tmp / "filters.png"))
    elif first is not None and plots.save_first_layer(first.weight.data, tmp / "weights.png"):
        figures.append(("First-layer weights", tmp / "weights.png"))
    if ds is not None and len(ds.y_test):
        maps = _feature_maps(predictor, ds.x_test[:1])
        title = (f"test image 0: label {ds.classes[ds.y_test[0]]}, predicted "
                 f"{ds.classes[pred[0]]} ({probs[0, pred[0]]:.2f})")
        if plots.save_feature_maps(ds.x_test[0], maps, tmp / "maps.png", title):
            figures.append(("Feature maps of one test image", tmp / "maps.png"))
    if records:
        table = _channel_section(records)
        if table:
            sections.append(table)
        for kind in ("activations", "gradients"):
            if plots.save_histograms(records, kind, tmp / f"{kind}.png"):
                figures.append((f"Histograms of {kind}", tmp / f"{kind}.png"))
    return figures


def _feature_maps(predictor, image) -> list:
    """[(layer, (C, H, W))]: what each convolution and pooling layer makes of ``image``
    (raw, (1, ...)), through the one inference path; [] for a model without them."""
    acts = predictor.activations(image)
    return [(f"{i} {layer.short_name()}", out[0])
            for i, (layer, (_, out)) in enumerate(zip(predictor.model.layers, acts))
            if hasattr(layer, "kernel_size") and out.ndim == 4]


def _channel_section(records) -> str:
    """A table of the image layers' channels at the last inspected epoch ('' when the
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
    return (f"<h2>Channels on the probe batch (epoch {html.escape(last)})</h2>" + _table(
        rows, ["layer", "channels", "never active", "zeros (mean)"]) +
        "<p>A channel that is 0 at every position of every probe example never fired: "
        "after a ReLU, a dead filter.</p>")


def _compare_section(sections, comp, tmp: Path):
    """Append the compare table (framework name escaped like every other string)."""
    fw = comp.get("framework", "torch")
    rows = [(r["epoch"], f"{r['bareprop']['train_loss']:.6f}",
             f"{r[fw]['train_loss']:.6f}", f"{r['bareprop']['test_accuracy']:.4f}",
             f"{r[fw]['test_accuracy']:.4f}", f"{r['max_abs_weight_diff']:.3e}")
            for r in comp["epochs"]]
    label = {"torch": "PyTorch", "keras": "Keras"}.get(fw, fw)
    sections.append(f"<h2>bareprop vs {html.escape(label)}</h2>" + _table(
        rows, ["epoch", "loss bareprop", f"loss {fw}", "acc bareprop", f"acc {fw}",
               "max |dW|"]) + f"<p>{html.escape(comp.get('verdict', ''))}</p>")
    if plots.save_compare_plot(comp, tmp / "compare.png"):
        return [(f"Loss curves, bareprop and {label}", tmp / "compare.png")]
    return []
