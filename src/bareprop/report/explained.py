"""The report's "what the network looked at": Grad-CAM for a model with image-shaped
layers, integrated gradients otherwise (bp.explain, docs/explain.md), over the most
confident mistakes and one correctly classified test image per class."""
from __future__ import annotations

import numpy as np

from ..explain import figures, methods
from .page import _card, _img

MISTAKES = 8          # the most confident mistakes shown
IG_STEPS = 32         # integrated gradients' steps: the report shows, it does not prove


def chosen(model) -> str:
    """Grad-CAM when the model has a layer with (C, h, w) maps, else integrated gradients."""
    return "gradcam" if "gradcam" in methods.offered(model) else "integrated-gradients"


def picks(y: np.ndarray, probs: np.ndarray, n_classes: int) -> list[int]:
    """Test indices: the MISTAKES most confident mistakes, then the first correctly
    classified image of each class."""
    pred = probs.argmax(axis=1)
    wrong = np.flatnonzero(pred != y)
    wrong = wrong[np.argsort(-probs[wrong, pred[wrong]], kind="stable")][:MISTAKES]
    right = [int(np.flatnonzero((pred == y) & (y == c))[0]) for c in range(n_classes)
             if np.any((pred == y) & (y == c))]
    return [int(i) for i in wrong] + right


def section(predictor, ds, probs, tmp) -> list[str]:
    """The card (none without test data or matplotlib)."""
    model = predictor.model
    idx = picks(ds.y_test, probs, len(ds.classes))
    if not idx:
        return []
    method = chosen(model)
    raw = ds.x_test[idx]
    x = predictor.prepare(raw)
    pred = probs[idx].argmax(axis=1)
    options = {"steps": IG_STEPS} if method == "integrated-gradients" else {}
    attr = methods.run(method, model, x, pred, **options)       # for the predicted class
    maps = methods.picture(attr, raw.shape[1:])
    titles = [f"{'wrong' if pred[k] != ds.y_test[i] else 'right'}: true "
              f"{ds.classes[ds.y_test[i]]}, said {ds.classes[pred[k]]} "
              f"{probs[i, pred[k]]:.2f}" for k, i in enumerate(idx)]
    path = tmp / "explained.png"
    if not figures.save_explained(raw, maps, methods.SIGNED[method], titles, path, method):
        return []
    how = ("Grad-CAM at the last layer with image-shaped maps (upsampled): where the "
           "evidence for the predicted class is" if method == "gradcam" else
           f"integrated gradients ({IG_STEPS} steps from a zero baseline) of the predicted "
           "class: red pixels raised its logit, blue ones lowered it")
    head = "What the network looked at"
    return [_card(head, _img(path, head) + (
        f"<p class='muted small'>{how}; the {MISTAKES} most confident mistakes first, then "
        "one correctly classified test image per class (bareprop explain, "
        "docs/explain.md).</p>"))]
