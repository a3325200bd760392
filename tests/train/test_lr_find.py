"""The learning-rate range test: its rates rise exponentially, it stops when the smoothed
loss blows up, its suggestion is the steepest descent, it leaves the model and optimizer
exactly as found (training afterwards is bit-identical), and ``bareprop lr-find`` prints
the suggestion and the train command with it; bad ranges are one line."""
import numpy as np
import pytest

import bareprop as bp
from bareprop.cli.main import main
from bareprop.train.lr_find import SKIP_END, SKIP_START, suggest

from conftest import real_data_dir
from oneline import refused_here
from synthetic import digits_like, write_dataset


def setup(seed=0, opt="adam"):
    rng = np.random.default_rng(seed)
    model = bp.Sequential(bp.Flatten(), bp.Linear(784, 32, rng=rng), bp.BatchNorm1d(32),
                          bp.ReLU(), bp.Dropout(0.2, rng=seed), bp.Linear(32, 10, rng=rng),
                          input_shape=(28, 28))
    make = {"adam": lambda p: bp.Adam(p, lr=1e-3, weight_decay=1e-4),
            "sgd": lambda p: bp.SGD(p, lr=0.05, momentum=0.9)}[opt]
    return model, make(model.parameters())


def data(n=2000):
    x, y = digits_like(n, 3)
    return (x / 255.0).astype(np.float32), y


@pytest.mark.parametrize("opt", ["adam", "sgd"])
def test_the_model_and_optimizer_are_left_as_found(opt):
    x, y = data()
    a, opt_a = setup(opt=opt)
    b, opt_b = setup(opt=opt)
    loss = bp.CrossEntropyLoss()
    bp.fit(a, loss, opt_a, (x, y), epochs=1, batch_size=100, verbose=False)   # some state
    bp.fit(b, loss, opt_b, (x, y), epochs=1, batch_size=100, verbose=False)
    a.eval()
    b.eval()
    grads = [None if p.grad is None else p.grad.copy() for p in a.parameters()]
    result = bp.lr_find(a, loss, opt_a, (x, y), steps=40, batch_size=50)
    assert len(result.lrs) > 20 and np.all(np.isfinite(result.losses[:20]))
    assert not a.training and all(not m.training for m in a.modules())
    for g, p in zip(grads, a.parameters()):
        assert (g is None and p.grad is None) or np.array_equal(g, p.grad)
    assert opt_a.param_groups[0]["lr"] == opt_b.param_groups[0]["lr"]
    for k, v in b.state_dict().items():
        np.testing.assert_array_equal(a.state_dict()[k], v, err_msg=k)
    # and training on from here is bit-identical to never having run the test
    a.train()
    b.train()
    bp.fit(a, loss, opt_a, (x, y), epochs=1, batch_size=100, verbose=False, start_epoch=0)
    bp.fit(b, loss, opt_b, (x, y), epochs=1, batch_size=100, verbose=False, start_epoch=0)
    for (k, v), w in zip(a.state_dict().items(), b.state_dict().values()):
        np.testing.assert_array_equal(v, w, err_msg=k)


def test_rates_rise_exponentially_and_a_blow_up_stops_the_test():
    x, y = data()
    model, opt = setup(opt="sgd")
    r = bp.lr_find(model, bp.CrossEntropyLoss(), opt, (x, y), start=1e-5, end=1e3, steps=60,
                   batch_size=32)
    want = 1e-5 * (1e8) ** (np.arange(60) / 59)
    np.testing.assert_allclose(r.lrs, want[:len(r.lrs)], rtol=1e-12)
    assert r.diverged and len(r.lrs) < 60                     # SGD at lr 1e3 blows up
    assert r.smoothed[-1] > 4 * r.smoothed.min() or not np.isfinite(r.smoothed[-1])
    r = bp.lr_find(model, bp.CrossEntropyLoss(), opt, (x, y), start=1e-6, end=1e-3, steps=30,
                   batch_size=32)
    assert not r.diverged and len(r.lrs) == 30 and r.lrs[-1] == pytest.approx(1e-3)


def test_the_suggestion_is_the_steepest_descent_of_the_smoothed_curve():
    lrs = np.logspace(-6, 1, 80)
    loss = 2.5 - 2.0 / (1 + np.exp(-3 * (np.log10(lrs) + 3.0)))       # steepest at 1e-3
    assert suggest(lrs, loss) == pytest.approx(1e-3, rel=0.25)
    shifted = 2.5 - 2.0 / (1 + np.exp(-3 * (np.log10(lrs) + 1.5)))   # steepest at 10^-1.5
    assert suggest(lrs, shifted) == pytest.approx(10 ** -1.5, rel=0.25)
    assert suggest(lrs[:SKIP_START + SKIP_END + 1], loss[:SKIP_START + SKIP_END + 1]) is None


def test_bad_ranges_are_config_errors():
    x, y = data(400)
    model, opt = setup()
    for kw, fragment in (({"start": 1.0, "end": 1e-3}, "0 < start < end"),
                         ({"start": 0.0}, "0 < start < end"), ({"diverge": 1.0}, "diverge"),
                         ({"steps": 1}, "at least 2 batches")):
        with pytest.raises(bp.ConfigError, match=fragment):
            bp.lr_find(model, bp.CrossEntropyLoss(), opt, (x, y), **kw)


def test_the_command_prints_the_suggestion_and_how_to_train_with_it(tmp_path, capsys):
    data_dir = write_dataset(tmp_path / "mnist", n_train=3000)
    rc = main(["lr-find", "--data-dir", str(data_dir), "--no-verify", "--hidden", "32",
               "--optimizer", "sgd", "--momentum", "0.9", "--batch-size", "16",
               "--plot", str(tmp_path / "lr.png")])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "100 batches, lr 1e-07 .. 10" in out or "(stopped at the loss diverged)" in out
    line = next(s for s in out.splitlines() if s.startswith("train with it: "))
    assert line.startswith("train with it: bareprop train --data-dir ") and "--hidden 32" in line
    assert "--optimizer sgd" in line and "--momentum 0.9" in line and "--lr " in line
    suggested = float(next(s for s in out.splitlines() if s.startswith("suggested")).split()[3])
    assert line.endswith(f"--lr {suggested:.3g}")
    assert (tmp_path / "lr.png").stat().st_size > 5000


@pytest.mark.parametrize("flags,fragment", [(["--start", "1", "--end", "0.1"], "0 < start < end"),
                                            (["--steps", "1"], "--steps must be at least 2"),
                                            (["--lr-typo", "1"], "unrecognized arguments")])
def test_bad_command_lines_are_one_line(tmp_path, capsys, flags, fragment):
    data_dir = write_dataset(tmp_path / "mnist")
    try:
        rc = main(["lr-find", "--data-dir", str(data_dir), "--no-verify", *flags])
    except SystemExit as exc:                      # argparse's own refusal
        rc = exc.code
    refused_here(capsys, rc, fragment)


@pytest.mark.skipif(real_data_dir() is None, reason="real MNIST files not found")
def test_on_the_default_preset_it_suggests_near_the_tuned_peak_rate(tmp_path, capsys):
    """The default preset's one-cycle peak, 3e-3, was tuned by hand; the range test on its
    model (100 batches, ~3 s) lands within a factor of 3 of it."""
    rc = main(["lr-find", "--preset", "default", "--data-dir", str(real_data_dir() / "mnist"),
               "--plot", str(tmp_path / "lr_find.png")])
    out = capsys.readouterr().out
    assert rc == 0
    suggested = float(next(s for s in out.splitlines() if s.startswith("suggested")).split()[3])
    assert 3e-3 / 3 <= suggested <= 3e-3 * 3, out


def test_dropout_draws_afterwards_what_it_would_have_drawn():
    """The range test draws dropout masks; their generators are put back too, so a hand
    loop of steps afterwards is bit-identical (not only fit, which reseeds per epoch)."""
    x, y = data(600)
    a, opt_a = setup(opt="sgd")
    b, opt_b = setup(opt="sgd")
    loss = bp.CrossEntropyLoss()
    bp.lr_find(a, loss, opt_a, (x, y), steps=20, batch_size=30)
    for model, opt in ((a, opt_a), (b, opt_b)):
        step = bp.TrainStep(model, loss, opt)
        for i in range(3):
            step(x[i * 50:(i + 1) * 50], y[i * 50:(i + 1) * 50])
    for (k, v), w in zip(a.state_dict().items(), b.state_dict().values()):
        np.testing.assert_array_equal(v, w, err_msg=k)


def test_a_nan_blow_up_factor_is_refused():
    x, y = data(200)
    model, opt = setup()
    with pytest.raises(bp.ConfigError, match="diverge must be a number above 1"):
        bp.lr_find(model, bp.CrossEntropyLoss(), opt, (x, y), diverge=float("nan"))
