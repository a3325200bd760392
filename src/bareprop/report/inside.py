"""The report's look inside a trained model: its first layer's weights or filters, what
one test image becomes inside it (a convnet's feature maps, a recurrent model's hidden
state step by step, an attention model's maps over the image's patch grid), the
channels that never fired, and the histograms of activations and gradients."""
from __future__ import annotations

import html
from pathlib import Path

from .. import plots
from ..inference import attention_maps, hidden_states, patch_grid
from .page import _card, _img, _table


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
        out += _one_image_sections(predictor, ds, tmp)
    if records:
        table = _channel_section(records)
        if table:
            out.append(table)
        for kind in ("activations", "gradients"):
            if plots.save_histograms(records, kind, tmp / f"{kind}.png"):
                out.append(_card(f"Histograms of {kind}",
                                 _img(tmp / f"{kind}.png", f"Histograms of {kind}")))
    return out


#: how inference.attention_maps read each map, in a sentence
READ = {"from the class token": "the class token's attention to each patch",
        "received, mean over tokens": "the attention each patch receives, averaged over "
                                      "the tokens that give it"}


def _one_image_sections(predictor, ds, tmp: Path) -> list[str]:
    """What test image 0 becomes inside the model: the cards of its feature maps, its
    hidden state over the steps and its attention maps (those the model has)."""
    model, image, out = predictor.model, ds.x_test[0], []
    one = ds.x_test[:1]                                              # (1, 28, 28) raw
    maps = _feature_maps(predictor, one)
    # read right after that forward of ``one``: the layers keep what it left
    states, attention = _sequence_states(model), attention_maps(model)
    probs = predictor.predict_proba(one)
    title = (f"test image 0: label {ds.classes[ds.y_test[0]]}, predicted "
             f"{ds.classes[probs[0].argmax()]} ({probs[0].max():.2f})")
    if plots.save_feature_maps(image, maps, tmp / "maps.png", title):
        out.append(_card("Feature maps of one test image",
                         _img(tmp / "maps.png", "Feature maps of one test image")))
    along = "columns" if _reads_columns(model) else "rows"
    picture = (image.T, "input, transposed: row t is column t") if along == "columns" \
        else (image, "input")
    if plots.save_sequence_states(picture[0], states, tmp / "states.png", title,
                                  input_label=picture[1]):
        head = f"Hidden state over the {along} of one test image"
        out.append(_card(head, _img(tmp / "states.png", head) + (
            f"<p class='muted small'>A row of each heatmap is one step: the layer's output "
            f"after it read image {along[:-1]} t (blue negative, red positive; its "
            f"units across). The state at the last step is what a layer without "
            f"return_sequences passes on.</p>")))
    if plots.save_attention_maps(image, attention, tmp / "attention.png", title):
        grid = patch_grid(model)
        hows = " / ".join(sorted({READ.get(how, f"attention {how}") for _, _, how in attention}))
        head = "Attention maps of one test image"
        out.append(_card(head, _img(tmp / "attention.png", head) + (
            f"<p class='muted small'>Each head's attention weights on the image's "
            f"{grid[0]}&times;{grid[1]} patch grid ({html.escape(hows)}): the brighter a "
            "patch, the more attention it gets.</p>")))
    return out


def _reads_columns(model) -> bool:
    """Whether the model reads its images column by column (Cols) rather than by rows."""
    from ..core.sequence import Cols

    return any(isinstance(layer, Cols) for layer in model.layers)


def _sequence_states(model) -> list:
    """[(name, (T, U), directions)] of each recurrent layer for the first example of the
    last forward (inference.hidden_states, with each layer's directions beside it)."""
    from ..core.bptt import Recurrent

    layers = [layer for layer in model.layers if isinstance(layer, Recurrent)]
    return [(name, h, layer.directions) for (name, h), layer in zip(hidden_states(model), layers)]


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
