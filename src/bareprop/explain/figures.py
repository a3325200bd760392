"""The explanations' figures (matplotlib, the ``plots`` extra): a map beside its image and
over it, an adversarial example and its change, and a grid of overlays for the report."""
from __future__ import annotations

import numpy as np

from ..plots import _plain, _pyplot, _save, _tiles


def _scale(heat, signed: bool):
    """(the map with NaN as 0, colour map, low, high): diverging and centred on 0 for a
    signed map, from 0 otherwise; scaled to the map's own largest magnitude."""
    heat = np.nan_to_num(np.asarray(heat, np.float64))
    lim = float(np.abs(heat).max()) or 1.0
    return (heat, "RdBu_r", -lim, lim) if signed else (heat, "inferno", 0.0, lim)


def save_explanation(image, heat, signed: bool, title: str, path, method: str) -> bool:
    """The input, the heat map and the overlay side by side, with a colour bar: a
    diverging map (blue -, red +, centred on 0) for signed attributions, a sequential
    one otherwise. image: (H, W) grey 0..255 (ink high); heat: (H, W)."""
    plt = _pyplot()
    if plt is None:
        return False
    heat, cmap, lo, hi = _scale(heat, signed)
    fig, axes = plt.subplots(1, 3, figsize=(8.4, 3.2))
    axes[0].imshow(image, cmap="gray", vmin=0, vmax=255)
    axes[0].set_title("input", fontsize=9)
    shown = axes[1].imshow(heat, cmap=cmap, vmin=lo, vmax=hi)
    axes[1].set_title(_plain(method), fontsize=9)
    axes[2].imshow(image, cmap="gray", vmin=0, vmax=255)
    axes[2].imshow(heat, cmap=cmap, vmin=lo, vmax=hi, alpha=0.55)
    axes[2].set_title("overlay", fontsize=9)
    for ax in axes:
        ax.axis("off")
    fig.colorbar(shown, ax=list(axes), fraction=0.025, pad=0.02)
    fig.suptitle(_plain(title), fontsize=10)
    _save(fig, path, dpi=90)
    return True


def save_adversarial(image, change, adversarial, title: str, path) -> bool:
    """FGSM: the input, the change (diverging, centred on 0) and the adversarial image,
    each (H, W) in the model's input scale."""
    plt = _pyplot()
    if plt is None:
        return False
    fig, axes = plt.subplots(1, 3, figsize=(8.4, 3.2))
    lo, hi = float(min(image.min(), adversarial.min())), float(max(image.max(), adversarial.max()))
    lim = float(np.abs(change).max()) or 1.0
    for ax, pic, name, kw in ((axes[0], image, "input", {"cmap": "gray", "vmin": lo, "vmax": hi}),
                              (axes[1], change, "change", {"cmap": "RdBu_r", "vmin": -lim,
                                                           "vmax": lim}),
                              (axes[2], adversarial, "adversarial",
                               {"cmap": "gray", "vmin": lo, "vmax": hi})):
        shown = ax.imshow(pic, **kw)
        ax.set_title(name, fontsize=9)
        ax.axis("off")
        if name == "change":
            fig.colorbar(shown, ax=ax, fraction=0.046)
    fig.suptitle(_plain(title), fontsize=10)
    _save(fig, path, dpi=90)
    return True


def save_explained(images, maps, signed: bool, titles, path, method: str) -> bool:
    """Overlays of attribution maps on their images, 6 to a row, each map scaled to its
    own maximum (diverging for signed methods)."""
    plt = _pyplot()
    if plt is None:
        return False
    fig, axes = _tiles(plt, len(images), 6, 1.9)
    for ax, image, heat, title in zip(axes.flat, images, maps, titles):
        heat, cmap, lo, hi = _scale(heat, signed)
        ax.imshow(image, cmap="gray", vmin=0, vmax=255)
        ax.imshow(heat, cmap=cmap, vmin=lo, vmax=hi, alpha=0.55)
        ax.set_title(_plain(title), fontsize=6.5)
    fig.suptitle(_plain(method), fontsize=9)
    fig.tight_layout()
    _save(fig, path, dpi=90)
    return True
