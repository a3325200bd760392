"""The home page's figure: the seed and default presets' test loss and accuracy per epoch.

    BAREPROP_DATA_DIR=../shared/data python benchmarks/docs_figure.py   # ~30 s on 2 cores

Trains both presets exactly as ``bareprop train --preset P`` does (experiment.build_run,
the same fit call) and writes docs/images/seed-vs-default.png.
"""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from bareprop.experiment.build import build_run  # noqa: E402
from bareprop.experiment import make_config  # noqa: E402
from bareprop.train import fit  # noqa: E402

OUT = Path(__file__).resolve().parents[1] / "docs" / "images" / "seed-vs-default.png"


def history_of(preset: str):
    cfg = make_config({}, preset)
    with tempfile.TemporaryDirectory() as tmp:
        r = build_run(cfg, Path(tmp), quiet=True)
        return fit(r.model, r.loss_fn, r.optimizer, r.train, cfg.epochs, test=r.test,
                   callbacks=r.callbacks, update_order=cfg.update_order, seed=cfg.seed)


def main(out: Path = OUT) -> None:
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(9, 3.4))
    for preset, colour in (("seed", "tab:red"), ("default", "tab:blue")):
        h = history_of(preset)
        epochs = [e["epoch"] for e in h.epochs]
        ax_loss.plot(epochs, [e["test_loss"] for e in h.epochs], "o-", color=colour, label=preset)
        ax_acc.plot(epochs, [100 * e["test_accuracy"] for e in h.epochs], "o-", color=colour,
                    label=f"{preset}: {100 * h.epochs[-1]['test_accuracy']:.1f}%")
        print(f"{preset}: test accuracy {h.epochs[-1]['test_accuracy']:.4f}")
    ax_loss.set(xlabel="epoch", ylabel="test cross-entropy", yscale="log")
    ax_acc.set(xlabel="epoch", ylabel="test accuracy (%)")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle("784-128-10 on MNIST: the seed notebook's recipe and the default preset")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    print(f"wrote {out}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else OUT)
