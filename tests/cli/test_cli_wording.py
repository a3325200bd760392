"""What the CLI says must be true and readable: plurals, install hints, compare.png."""
import subprocess
import sys

import numpy as np
import pytest

import bareprop as bp
from bareprop.errors import ConfigError

from synthetic import write_dataset


def test_one_epoch_is_singular(tmp_path):
    folder = write_dataset(tmp_path / "mnist")
    r = subprocess.run([sys.executable, "-m", "bareprop", "train", "--data-dir", folder,
                        "--no-verify", "--epochs", "1", "--out", tmp_path / "o"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "mnist, 1 epoch, batch 128" in r.stdout


def test_compare_without_keras_names_the_extra(monkeypatch):
    from bareprop.reference.compare import KerasTwin

    monkeypatch.setitem(sys.modules, "keras", None)      # import keras -> ImportError
    model = bp.Sequential(bp.Linear(4, 2, rng=0))
    with pytest.raises(ConfigError, match=r"pip install 'bareprop\[keras\]'"):
        KerasTwin(model, bp.SGD(model.parameters(), lr=0.1), bp.CrossEntropyLoss())


@pytest.mark.parametrize("diff", [np.zeros(50), np.r_[np.zeros(25), np.full(25, 3e-12)]])
def test_compare_plot_difference_panel_is_readable(tmp_path, monkeypatch, diff):
    pytest.importorskip("matplotlib")
    from matplotlib.figure import Figure

    from bareprop import plots

    drawn = []
    real_savefig = Figure.savefig
    monkeypatch.setattr(Figure, "savefig",
                        lambda self, *a, **k: drawn.append(self) or real_savefig(self, *a, **k))
    a = np.linspace(2.3, 0.3, 50)
    plots.save_compare_plot({"framework": "torch",
                             "batch_loss": {"bareprop": a.tolist(), "torch": (a + diff).tolist()}},
                            tmp_path / "compare.png")
    low, high = drawn[0].axes[1].get_ylim()
    if diff.max() == 0:
        assert (low, high) == (-1, 1)                     # a flat line at 0, labelled
    else:
        assert low > 1e-14 and high < 1e-10               # the data's own decades
