"""Plots (matplotlib, an optional extra: pip install 'bareprop[plots]').

Not imported by the library core; each function says how to install matplotlib
when it is missing instead of failing.
"""
from __future__ import annotations

import sys
from pathlib import Path

INSTALL_HINT = "matplotlib is not installed; for plots run: pip install 'bareprop[plots]'"


def _save(fig, path, dpi: int) -> None:
    """Render ``fig`` to PNG bytes in memory and hand them to the one file writer:
    savefig on a path would follow a symlink planted at that name."""
    import io

    from .archive import atomic_write

    buf = io.BytesIO()
    try:
        fig.savefig(buf, format="png", dpi=dpi)
    finally:
        _pyplot().close(fig)
    atomic_write(Path(path), buf.getvalue())


def _plain(text) -> str:
    """``text`` shown literally: matplotlib reads $...$ as math and fails on a lone $,
    and these strings come from files and flags."""
    return str(text).replace("$", r"\$")


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    return plt


def training_figure(history, title: str = ""):
    """The figure of loss.png (per-batch loss, per-epoch loss and accuracy), or None
    without matplotlib."""
    plt = _pyplot()
    if plt is None:
        return None
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    axes[0].plot(history.batch_loss, lw=0.7)
    axes[0].set(title="loss per batch", xlabel="batch", ylabel="cross-entropy")
    epochs = [e["epoch"] for e in history.epochs]
    for prefix, style in (("train", "-o"), ("val", "-s"), ("test", "-^")):
        if history.epochs and f"{prefix}_loss" in history.epochs[0]:
            axes[1].plot(epochs, history.series(f"{prefix}_loss"), style, label=prefix)
            axes[2].plot(epochs, history.series(f"{prefix}_accuracy"), style, label=prefix)
    axes[1].set(title="loss per epoch", xlabel="epoch", ylabel="cross-entropy")
    axes[2].set(title="accuracy per epoch", xlabel="epoch", ylabel="accuracy")
    for ax in axes[1:]:
        ax.legend()
        ax.grid(alpha=0.3)
        if 0 < len(epochs) <= 15:                                    # whole epochs
            ax.set_xticks(epochs)
    if title:
        fig.suptitle(_plain(title))
    fig.tight_layout()
    return fig


def save_training_plot(history, path, title: str = "") -> bool:
    """loss.png: per-batch loss (the notebook's plot), per-epoch loss and accuracy curves."""
    fig = training_figure(history, title)
    if fig is None:
        print(f"note: loss.png skipped: {INSTALL_HINT}", file=sys.stderr)
        return False
    _save(fig, path, dpi=90)
    return True


def save_compare_plot(result: dict, path) -> bool:
    """Overlay of bareprop's and PyTorch's per-batch loss curves, and their difference."""
    plt = _pyplot()
    if plt is None:
        print(f"note: compare.png skipped: {INSTALL_HINT}", file=sys.stderr)
        return False
    import numpy as np

    name = result.get("framework", "torch")
    label = _plain({"torch": "PyTorch", "keras": "Keras"}.get(name, name))
    a = np.array(result["batch_loss"]["bareprop"])
    b = np.array(result["batch_loss"][name])
    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
    axes[0].plot(a, lw=1.2, label="bareprop")
    axes[0].plot(b, lw=0.8, ls="--", label=label)
    axes[0].set(title="loss per batch", xlabel="batch", ylabel="cross-entropy")
    axes[0].legend()
    diff = np.abs(a - b)
    positive = diff[diff > 0]
    if positive.size:
        # exact zeros (common in float64) cannot sit on a log axis: draw them at a tenth
        # of the smallest nonzero difference rather than at a tiny constant, which
        # stretched the axis over 300 decades and flattened the curve
        axes[1].semilogy(np.maximum(diff, positive.min() / 10), lw=0.8)
    else:
        axes[1].plot(diff, lw=0.8)
        axes[1].set_ylim(-1, 1)
        axes[1].text(0.5, 0.6, "identical: the difference is exactly 0 at every batch",
                     transform=axes[1].transAxes, ha="center")
    axes[1].set(title=f"|loss(bareprop) - loss({label})|", xlabel="batch")
    fig.tight_layout()
    _save(fig, path, dpi=90)
    return True


def confusion_matrix(y_true, y_pred, n_classes: int):
    import numpy as np

    m = np.zeros((n_classes, n_classes), np.int64)
    np.add.at(m, (y_true, y_pred), 1)
    return m


def save_confusion(y_true, y_pred, classes, path) -> bool:
    """Confusion matrix: rows are true classes, columns predictions, counts in the cells."""
    plt = _pyplot()
    if plt is None:
        return False
    m = confusion_matrix(y_true, y_pred, len(classes))
    fig, ax = plt.subplots(figsize=(6.5, 5.5))
    im = ax.imshow(m, cmap="Blues")
    ax.set(xticks=range(len(classes)), yticks=range(len(classes)), xlabel="predicted",
           ylabel="true", title="confusion matrix (test set)")
    ax.set_xticklabels([_plain(c) for c in classes], rotation=45, ha="right")
    ax.set_yticklabels([_plain(c) for c in classes])
    for i in range(len(classes)):
        for j in range(len(classes)):
            ax.text(j, i, str(m[i, j]), ha="center", va="center", fontsize=7,
                    color="white" if m[i, j] > m.max() / 2 else "black")
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    _save(fig, path, dpi=90)
    return True


def save_worst(images, y_true, probs, classes, path, k: int = 24) -> bool:
    """The k misclassified test images the model was most confident about."""
    import numpy as np

    plt = _pyplot()
    if plt is None:
        return False
    pred = probs.argmax(axis=1)
    wrong = np.flatnonzero(pred != y_true)
    wrong = wrong[np.argsort(-probs[wrong, pred[wrong]])][:k]
    cols = 8
    rows = max(1, -(-len(wrong) // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 1.4, rows * 1.7))
    for ax in np.ravel(axes):
        ax.axis("off")
    for ax, i in zip(np.ravel(axes), wrong):
        ax.imshow(images[i], cmap="gray")
        ax.set_title(_plain(f"true {classes[y_true[i]]}\npred {classes[pred[i]]} "
                            f"{probs[i, pred[i]]:.2f}"),
                     fontsize=7)
    fig.suptitle("most confident mistakes")
    fig.tight_layout()
    _save(fig, path, dpi=90)
    return True


def _tiles(plt, n: int, cols: int, size: float):
    """A figure of ceil(n / cols) x cols small axes, all unframed; (fig, flat axes)."""
    rows = max(1, -(-n // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(cols * size, rows * size), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    return fig, axes


def save_first_layer(weight, path, side: int = 28, k: int = 64) -> bool:
    """The first k hidden units' incoming weights, each shown as a side x side image."""
    import numpy as np

    plt = _pyplot()
    if plt is None or weight.shape[1] != side * side:
        return False
    k = min(k, weight.shape[0])
    fig, axes = _tiles(plt, k, 8, 1.1)
    for ax, w in zip(axes.flat, weight[:k]):
        lim = np.abs(w).max() or 1.0
        ax.imshow(w.reshape(side, side), cmap="RdBu_r", vmin=-lim, vmax=lim)
    fig.suptitle("first-layer weights (red +, blue -)")
    fig.tight_layout()
    _save(fig, path, dpi=90)
    return True


def save_conv_filters(weight, path, k: int = 64) -> bool:
    """The first convolution's filters: weight (O, C, kh, kw), one tile per output channel
    (the first k) showing its kernel for input channel 0, all on one colour scale
    centred on 0, so filters compare in strength as well as in pattern."""
    import numpy as np

    plt = _pyplot()
    if plt is None or np.ndim(weight) != 4:
        return False
    kernels = np.asarray(weight)[:k, 0]                             # (k, kh, kw)
    lim = float(np.abs(kernels).max()) or 1.0
    fig, axes = _tiles(plt, len(kernels), min(8, len(kernels)), 1.0)
    for o, (ax, kernel) in enumerate(zip(axes.flat, kernels)):
        ax.imshow(kernel, cmap="RdBu_r", vmin=-lim, vmax=lim, interpolation="nearest")
        ax.set_title(f"filter {o}", fontsize=7)
    channels = f" (input channel 0 of {weight.shape[1]})" if weight.shape[1] > 1 else ""
    fig.suptitle(f"first-layer filters{channels}: red +, blue -, |w| up to {lim:.3g}",
                 fontsize=9)
    fig.tight_layout()
    _save(fig, path, dpi=90)
    return True


def save_feature_maps(image, maps, path, title: str = "", k: int = 16) -> bool:
    """One input image and what the network makes of it: a row per layer in ``maps``
    ([(name, array (C, H, W))]) with its first k channels. Each row has one colour
    scale: dark to bright from 0 when the layer's values are >= 0 (after a ReLU),
    blue-white-red centred on 0 otherwise."""
    import numpy as np

    plt = _pyplot()
    if plt is None or not maps:
        return False
    cols = min(k, max(len(m) for _, m in maps))
    fig, axes = _tiles(plt, (1 + len(maps)) * cols, cols, 0.95)
    axes[0, 0].imshow(image, cmap="gray")
    axes[0, 0].set_title("input", fontsize=7)
    for row, (name, m) in zip(axes[1:], maps):
        if len(m) > k:
            name = f"{name}, first {k} of {len(m)} channels"
        m = np.asarray(m)[:k]                                       # (<= k, H, W)
        lo, hi = float(m.min()), float(m.max())
        if lo >= 0:
            style = {"cmap": "magma", "vmin": 0.0, "vmax": hi or 1.0}
        else:
            lim = max(-lo, hi)
            style = {"cmap": "RdBu_r", "vmin": -lim, "vmax": lim}
        for c, (ax, channel) in enumerate(zip(row, m)):
            ax.imshow(channel, interpolation="nearest", **style)
            # the layer's name on a first line of its own, free to run over the row
            ax.set_title(_plain(f"{name}\nch 0") if c == 0 else f"\nch {c}", fontsize=7,
                         loc="left" if c == 0 else "center")
    if title:
        fig.suptitle(_plain(title), fontsize=9)
    fig.tight_layout()
    _save(fig, path, dpi=80)
    return True


def _signed(a):
    """imshow colours for ``a``: blue-white-red centred on 0 over its largest |value|."""
    import numpy as np

    lim = float(np.nanmax(np.abs(a))) if np.size(a) else 0.0
    return {"cmap": "RdBu_r", "vmin": -(lim or 1.0), "vmax": lim or 1.0}


def save_sequence_states(image, states, path, title: str = "", k: int = 128,
                         input_label: str = "input") -> bool:
    """An image read as a sequence and what each recurrent layer holds after each step:
    ``states`` is [(name, array (T, U))] or [(name, array, directions)], one heatmap per
    layer with a row per step and a column per output unit (the first k), blue-white-red
    centred on 0 (tanh keeps them in [-1, 1]); a bidirectional layer's forward and
    backward units are split by a line. When the image has T rows, its rows share the
    heatmaps' vertical axis: row t of the picture is step t."""
    import numpy as np
    from matplotlib.ticker import MaxNLocator

    plt = _pyplot()
    if plt is None or not states:
        return False
    states = [(s[0], np.asarray(s[1]), s[2] if len(s) > 2 else 1) for s in states]
    steps = states[0][1].shape[0]
    aligned = np.shape(image)[0] == steps and all(h.shape[0] == steps for _, h, _ in states)
    # a heatmap's width follows its units (a few px each), within what a page shows
    widths = [float(np.clip(0.045 * min(h.shape[1], k), 2.2, 6.0)) + 0.9 for _, h, _ in states]
    fig, axes = plt.subplots(1, 1 + len(states), squeeze=False, sharey=aligned,
                             figsize=(2.9 + sum(widths), 3.5),
                             gridspec_kw={"width_ratios": [2.9] + widths})
    axes = axes[0]
    rows, cols = np.shape(image)[:2]
    axes[0].imshow(image, cmap="gray", aspect="auto" if aligned else "equal",
                   interpolation="nearest", extent=(-0.5, cols - 0.5, rows - 0.5, -0.5))
    axes[0].set_title(_plain(input_label), fontsize=9)
    axes[0].set_xticks([])
    if aligned:
        axes[0].set_ylabel("step", fontsize=9)
        axes[0].yaxis.set_major_locator(MaxNLocator(integer=True))
        axes[0].tick_params(labelsize=8)
    else:
        axes[0].set_yticks([])
    for ax, (name, h, directions) in zip(axes[1:], states):
        shown = h[:, :k]
        im = ax.imshow(shown, aspect="auto", interpolation="nearest", **_signed(shown))
        more = f", first {k} of {h.shape[1]} units" if h.shape[1] > k else ""
        ax.set_title(_plain(f"{name}{more}"), fontsize=9)
        if not aligned:
            ax.set_ylabel("step", fontsize=9)
        per = h.shape[1] // directions          # forward units first, then backward
        for x in range(per, shown.shape[1], per):
            ax.axvline(x - 0.5, color="black", lw=1.2)
        ax.set_xlabel("unit (forward | backward)" if directions > 1 else "unit", fontsize=9)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, nbins=6))
        ax.tick_params(labelsize=8, labelleft=not aligned)
        bar = fig.colorbar(im, ax=ax, fraction=0.06, pad=0.03)
        bar.ax.tick_params(labelsize=8)
    if title:
        fig.suptitle(_plain(title), fontsize=10)
    fig.tight_layout()
    _save(fig, path, dpi=90)
    return True


def save_attention_maps(image, maps, path, title: str = "") -> bool:
    """Which parts of an image each attention head looks at: ``maps`` is
    [(name, array (heads, gh, gw), how)] (``how`` the map was read from the attention
    weights: from the class token, or received on average), a row per layer: the image,
    then each head's map on the patch grid with the image's ink drawn over it in cyan,
    one colour scale a row (0 to the row's largest weight) so heads compare."""
    import numpy as np

    plt = _pyplot()
    if plt is None or not maps:
        return False
    maps = [(m[0], np.asarray(m[1]), m[2] if len(m) > 2 else "") for m in maps]
    cols = 1 + max(len(m) for _, m, _ in maps)
    # a subfigure a layer: its label over the whole row, not squeezed into one tile
    fig = plt.figure(figsize=(max(cols * 1.9, 6.0), len(maps) * 2.25 + 0.35 * bool(title)),
                     layout="constrained")
    img = np.asarray(image, np.float64)
    h, w = img.shape[-2:]
    ink = (img - img.min()) / ((img.max() - img.min()) or 1.0)
    cyan = np.dstack([0 * ink, 0.85 + 0 * ink, 1 + 0 * ink, 0.7 * ink])   # (H, W, RGBA)
    for sub, (name, m, how) in zip(np.atleast_1d(fig.subfigures(len(maps), 1)), maps):
        top = float(m.max()) or 1.0
        label = f"{name}: attention {how}" if how else name
        sub.suptitle(_plain(f"{label} (colour 0 to {top:.3g})"), fontsize=9, x=0.01,
                     ha="left")
        row = sub.subplots(1, cols, squeeze=False)[0]
        for ax in row:
            ax.axis("off")
        row[0].imshow(img, cmap="gray", interpolation="nearest")
        row[0].set_title("input", fontsize=9)
        for head, (ax, grid) in enumerate(zip(row[1:], m)):
            ax.imshow(grid, cmap="inferno", interpolation="nearest", extent=(0, w, h, 0),
                      vmin=0.0, vmax=top)
            ax.imshow(cyan, extent=(0, w, h, 0), interpolation="nearest")
            ax.set_title(f"head {head}", fontsize=9)
    if title:
        fig.suptitle(_plain(title), fontsize=10)
    _save(fig, path, dpi=90)
    return True


#: panels per row of the histograms: at HIST_DPI the figure is at most 1,152 px wide, so
#: a report (at most about 1,220 px of figure) shows it at its own size, ticks ~11 px
HIST_COLUMNS, HIST_DPI = 4, 90


def save_histograms(records: dict, kind: str, path) -> bool:
    """Per-layer histograms of ``kind`` ("activations" or "gradients") at recorded epochs,
    HIST_COLUMNS panels a row (however many layers: a wide row would be shrunk to fit a
    page, and its labels with it)."""
    import numpy as np

    plt = _pyplot()
    if plt is None or not records:
        return False
    epochs = sorted(records, key=int)
    names = list(records[epochs[0]][kind])
    cols = max(1, min(HIST_COLUMNS, len(names)))
    rows = -(-len(names) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.6 * rows + 0.4), squeeze=False)
    for ax in axes.flat[len(names):]:
        ax.axis("off")
    for ax, name in zip(axes.flat, names):
        for e in epochs:
            h = records[e][kind][name]
            edges = np.array(h["edges"])
            ax.stairs(h["counts"], edges, label=f"epoch {e}")
        ax.set_title(_plain(name), fontsize=10)
        ax.set_yscale("log")
        ax.tick_params(labelsize=9)
        ax.locator_params(axis="x", nbins=4)            # labels that never run together
    axes[0][0].legend(fontsize=9)
    fig.suptitle(f"{kind} on a fixed test batch (counts, log scale)", fontsize=11)
    fig.tight_layout()
    _save(fig, path, dpi=HIST_DPI)
    return True

