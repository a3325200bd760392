"""docs/explain.md's figure: four methods of bp.explain on real MNIST test images, and an
FGSM example, for a small convnet trained here.

    BAREPROP_DATA_DIR=../shared/data python benchmarks/explain_figure.py   # ~30 s on 2 cores

The convnet is examples/05-why-did-it-say-7.ipynb's (two conv blocks, 20,000 training
images, 2 epochs, float32), explained in float64. Writes docs/images/explain.png.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import bareprop as bp  # noqa: E402
from bareprop.data import Scaler, load  # noqa: E402

OUT = Path(__file__).resolve().parents[1] / "docs" / "images" / "explain.png"


def trained():
    ds = load("mnist", download_missing=False)
    scaler = Scaler("unit")
    rng = np.random.default_rng(0)
    model = bp.Sequential(bp.Conv2d(1, 8, 5, rng=rng), bp.ReLU(), bp.MaxPool2d(2),
                          bp.Conv2d(8, 16, 3, rng=rng), bp.ReLU(), bp.MaxPool2d(2),
                          bp.Flatten(), bp.Linear(16 * 5 * 5, 10, rng=rng),
                          input_shape=(1, 28, 28))
    bp.fit(model, bp.CrossEntropyLoss(), bp.Adam(model.parameters(), lr=3e-3),
           (scaler.apply(ds.x_train[:20000, None]), ds.y_train[:20000]), epochs=2,
           batch_size=64, seed=0, verbose=False)
    return model.astype(np.float64).eval(), scaler.apply(ds.x_test[:, None], np.float64), ds.y_test


def main() -> int:
    model, x_test, y_test = trained()
    pick = [0, 1, 2, 3]
    x = x_test[pick]
    t = model(x).argmax(1)
    maps = [("saliency", bp.explain.saliency(model, x), False),
            ("integrated gradients", bp.explain.integrated_gradients(model, x), True),
            ("Grad-CAM", bp.explain.upsample(bp.explain.gradcam(model, x), (28, 28)), False),
            ("occlusion 4x4", bp.explain.occlusion(model, x), True)]
    # FGSM on the first test image whose prediction it changes at eps 0.2 (about 5 in 6 do)
    advs = bp.explain.fgsm(model, x_test[:50], y_test[:50], 0.2)
    k = int(np.flatnonzero(model(advs).argmax(1) != y_test[:50])[0])
    adv, x0 = advs[k:k + 1], x_test[k:k + 1]
    fig, axes = plt.subplots(len(pick), 6, figsize=(10, 6.8))
    for i in range(len(pick)):
        axes[i, 0].imshow(x[i, 0], cmap="gray")
        axes[i, 0].set_title(f"said {t[i]}", fontsize=8)
        for j, (name, a, signed) in enumerate(maps, start=1):
            m = a[i, 0]
            lim = np.abs(m).max() or 1.0
            axes[i, j].imshow(x[i, 0], cmap="gray")
            axes[i, j].imshow(m, cmap="RdBu_r" if signed else "inferno", alpha=0.7,
                              vmin=-lim if signed else 0, vmax=lim)
            if i == 0:
                axes[i, j].set_title(name, fontsize=8)
    axes[0, 5].imshow(adv[0, 0], cmap="gray", vmin=0, vmax=1)
    axes[0, 5].set_title(f"a {y_test[k]}, FGSM 0.2: said {model(adv).argmax(1)[0]}", fontsize=8)
    axes[1, 5].imshow(adv[0, 0] - x0[0, 0], cmap="RdBu_r", vmin=-0.2, vmax=0.2)
    axes[1, 5].set_title("its change", fontsize=8)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    for ax in axes[2:, 5]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(OUT, dpi=80)
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
