"""Plots (matplotlib, an optional extra: pip install 'bareprop[plots]').

Not imported by the library core; each function says how to install matplotlib
when it is missing instead of failing.
"""
from __future__ import annotations

import sys
from pathlib import Path

INSTALL_HINT = "matplotlib is not installed; for plots run: pip install 'bareprop[plots]'"


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    return plt


def save_training_plot(history, path, title: str = "") -> bool:
    """loss.png: per-batch loss (the notebook's plot), per-epoch loss and accuracy curves."""
    plt = _pyplot()
    if plt is None:
        print(f"note: loss.png skipped: {INSTALL_HINT}", file=sys.stderr)
        return False
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
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(Path(path), dpi=90)
    plt.close(fig)
    return True


def save_compare_plot(result: dict, path) -> bool:
    """Overlay of bareprop's and PyTorch's per-batch loss curves, and their difference."""
    plt = _pyplot()
    if plt is None:
        print(f"note: compare.png skipped: {INSTALL_HINT}", file=sys.stderr)
        return False
    import numpy as np

    a = np.array(result["batch_loss"]["bareprop"])
    b = np.array(result["batch_loss"]["torch"])
    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
    axes[0].plot(a, lw=1.2, label="bareprop")
    axes[0].plot(b, lw=0.8, ls="--", label="PyTorch")
    axes[0].set(title="loss per batch", xlabel="batch", ylabel="cross-entropy")
    axes[0].legend()
    axes[1].semilogy(np.abs(a - b) + 1e-300, lw=0.8)
    axes[1].set(title="|loss(bareprop) - loss(PyTorch)|", xlabel="batch")
    fig.tight_layout()
    fig.savefig(Path(path), dpi=90)
    plt.close(fig)
    return True
