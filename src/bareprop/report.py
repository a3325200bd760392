"""``bareprop report RUN_DIR``: one self-contained HTML page (images embedded as data
URIs) with the config, the model summary, the metrics, every plot, and the compare
table when the run folder holds a compare.json.
"""
from __future__ import annotations

import base64
import html
import json
import tempfile
from pathlib import Path


from . import io, plots
from .archive import atomic_write
from .data import load
from .inference import Predictor
from .errors import ConfigError, DataError, ModelFileError

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
<p class="big">test accuracy {acc}</p>
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


def build_report(run_dir, data_dir=None) -> Path:
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ConfigError(f"{run_dir}: not a run folder (give the --out folder of a train run)")
    try:
        metrics = json.loads((run_dir / "metrics.json").read_text())
    except FileNotFoundError:
        raise ConfigError(f"{run_dir}: no metrics.json; is this a bareprop train --out folder?") \
            from None
    except json.JSONDecodeError as exc:
        raise ModelFileError(f"{run_dir}/metrics.json is corrupted ({exc})") from None
    model, meta = io.load(run_dir / "model.npz", with_meta=True)
    predictor = Predictor.from_meta(model, meta, source=run_dir / "model.npz")
    extra = meta.get("extra", {})
    cfg = metrics.get("config", {})
    if plots._pyplot() is None:
        raise ConfigError(plots.INSTALL_HINT)
    sections = []
    sections.append("<h2>Settings</h2>" + _table(
        [(k, json.dumps(v)) for k, v in cfg.items()], ["setting", "value"]))
    sections.append("<h2>Model</h2><pre>" + html.escape(model.summary(print_fn=None)) + "</pre>")
    hist = metrics.get("history", [])
    keys = [k for k in ("train_loss", "train_accuracy", "val_loss", "val_accuracy", "test_loss",
                        "test_accuracy", "lr", "seconds") if hist and k in hist[0]]
    sections.append("<h2>Metrics per epoch</h2>" + _table(
        [[e["epoch"]] + [f"{e[k]:.4g}" for k in keys] for e in hist], ["epoch"] + keys))
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        figures = []
        from .train.history import History

        h = History(metrics.get("batch_loss", []), hist)
        if plots.save_training_plot(h, tmp / "curves.png", title=cfg.get("dataset", "")):
            figures.append(("Loss and accuracy", tmp / "curves.png"))
        try:
            ds = load(extra.get("dataset", "mnist"), data_dir=data_dir or cfg.get("data_dir"),
                      verify=False, progress=False)
        except DataError as exc:
            ds = None
            sections.append(f"<p>test-set figures skipped: {html.escape(str(exc))}</p>")
        if ds is not None:
            probs = predictor.predict_proba(ds.x_test)
            pred = probs.argmax(1)
            per_class = plots.confusion_matrix(ds.y_test, pred, len(ds.classes))
            sections.append("<h2>Per-class accuracy</h2>" + _table(
                [(c, f"{per_class[i, i] / max(per_class[i].sum(), 1):.4f}", int(per_class[i].sum()))
                 for i, c in enumerate(ds.classes)], ["class", "accuracy", "examples"]))
            if plots.save_confusion(ds.y_test, pred, ds.classes, tmp / "confusion.png"):
                figures.append(("Confusion matrix", tmp / "confusion.png"))
            if plots.save_worst(ds.x_test, ds.y_test, probs, ds.classes, tmp / "worst.png"):
                figures.append(("Most confident mistakes", tmp / "worst.png"))
        first = next((layer for layer in model.layers if hasattr(layer, "in_features")), None)
        if first is not None and plots.save_first_layer(first.weight.data, tmp / "weights.png"):
            figures.append(("First-layer weights", tmp / "weights.png"))
        inspect_path = run_dir / "inspect.json"
        if inspect_path.exists():
            records = json.loads(inspect_path.read_text())
            for kind in ("activations", "gradients"):
                if plots.save_histograms(records, kind, tmp / f"{kind}.png"):
                    figures.append((f"Histograms of {kind}", tmp / f"{kind}.png"))
        compare_path = run_dir / "compare.json"
        if compare_path.exists():
            comp = json.loads(compare_path.read_text())
            fw = comp.get("framework", "torch")
            rows = [(r["epoch"], f"{r['bareprop']['train_loss']:.6f}",
                     f"{r[fw]['train_loss']:.6f}", f"{r['bareprop']['test_accuracy']:.4f}",
                     f"{r[fw]['test_accuracy']:.4f}", f"{r['max_abs_weight_diff']:.3e}")
                    for r in comp["epochs"]]
            label = {"torch": "PyTorch", "keras": "Keras"}.get(fw, fw)
            sections.append(f"<h2>bareprop vs {label}</h2>" + _table(
                rows, ["epoch", "loss bareprop", f"loss {fw}", "acc bareprop", f"acc {fw}",
                       "max |dW|"]) + f"<p>{html.escape(comp.get('verdict', ''))}</p>")
            if plots.save_compare_plot(comp, tmp / "compare.png"):
                figures.append((f"Loss curves, bareprop and {label}", tmp / "compare.png"))
        for title, path in figures:
            sections.append(f"<h2>{html.escape(title)}</h2>" + _img(path, title))
    page = PAGE.format(title=html.escape(f"{cfg.get('dataset', '?')}, preset {cfg.get('preset', '?')}"),
                       acc=f"{metrics.get('test_accuracy', float('nan')):.4f}",
                       body="\n".join(sections))
    out = run_dir / "report.html"
    atomic_write(out, page.encode())
    return out
