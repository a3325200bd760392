"""The compiled element-wise kernels (fast/kernels.py) and the fast units built on them
(fast/linear.py, fast/loss.py) against the reference code they stand in for: the same
values within float32 rounding (bit for bit where one operation is all there is), NaN
and inf included; the switch that picks them (BAREPROP_ACCEL); and the plan that puts
them in a training step's chain, once, for exact Linear-ReLU pairs only (fast/plan.py)."""
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest

import bareprop as bp
from bareprop import optim
from bareprop.cli.main import main
from bareprop.errors import ConfigError
from bareprop.fast import kernels, plan
from bareprop.fast.linear import FastLinear, FastReLU, relu_back
from bareprop.fast.loss import FastCrossEntropy
from bareprop.train.step import TrainStep

needs_numba = pytest.mark.skipif(not kernels.available(), reason="numba is not installed")


@pytest.fixture
def accel(monkeypatch):
    monkeypatch.setattr(kernels, "_choice", None)       # restored after the test
    return kernels.use


def _hostile(rng, shape):
    """float32 values with zeros, negatives, NaN and +-inf sprinkled in."""
    a = rng.standard_normal(shape).astype(np.float32)
    flat = a.reshape(-1)
    picks = rng.choice(flat.size, size=min(flat.size, 12), replace=False)
    flat[picks] = np.array([0, -0.0, np.nan, np.inf, -np.inf, 0, 1e-45, -1e-45, 3e38,
                            -3e38, np.nan, 0], np.float32)[:len(picks)]
    return a


def test_unknown_mode_is_refused_by_name(accel, monkeypatch):
    monkeypatch.setenv("BAREPROP_ACCEL", "fast")
    with pytest.raises(ConfigError, match="BAREPROP_ACCEL must be one of auto, numpy, numba"):
        kernels.get(np.float32)
    with pytest.raises(ConfigError, match="got 'turbo'"):
        kernels.use("turbo")


def test_the_environment_is_read_once_until_use_none(accel, monkeypatch):
    monkeypatch.setenv("BAREPROP_ACCEL", "numpy")
    assert kernels.mode() == "numpy"
    monkeypatch.setenv("BAREPROP_ACCEL", "NUMBA ")
    assert kernels.mode() == "numpy"                       # cached
    assert kernels.use(None) == "numpy"
    assert kernels.mode() == "numba"                       # read again, normalised


def test_required_numba_missing_is_one_clear_error(accel, monkeypatch):
    monkeypatch.setattr(kernels, "_compiled", False)      # as if numba did not import
    accel("auto")
    assert kernels.get(np.float32) is None                # auto: the NumPy path
    accel("numba")
    with pytest.raises(ConfigError, match=r"pip install 'bareprop\[fast\]'"):
        kernels.get(np.float32)
    assert kernels.describe() == "NumPy (numba not installed)"


@pytest.fixture
def broken_numba(monkeypatch):
    """numba imports, but compiling the kernels fails (decided afresh in this test)."""
    pytest.importorskip("numba")

    def broken(numba):
        raise RuntimeError("LLVM said no")
    for name, value in (("_compiled", None), ("_failure", None), ("_warned", False),
                        ("_compile", broken)):
        monkeypatch.setattr(kernels, name, value)


def test_a_numba_that_cannot_compile_falls_back_to_numpy_with_a_warning(accel, broken_numba):
    accel("auto")
    assert kernels.describe().startswith("NumPy (numba could not compile: ")
    with pytest.warns(RuntimeWarning, match="could not compile.*LLVM said no.*stays on NumPy"):
        assert kernels.get(np.float32) is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")                    # decided once: no second warning
        assert kernels.get(np.float32) is None
    accel("numba")
    with pytest.raises(ConfigError, match="numba could not compile the kernels .*LLVM said no"):
        kernels.get(np.float32)


def test_cli_with_required_numba_that_cannot_compile_says_one_line(accel, broken_numba,
                                                                    monkeypatch, capsys):
    monkeypatch.setenv("BAREPROP_ACCEL", "numba")
    with warnings.catch_warnings():
        warnings.simplefilter("error")                    # an error, not a warning too
        assert main(["train", "--epochs", "1", "--data-dir", "/nonexistent"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "could not compile" in err and "LLVM said no" in err


def test_cli_refuses_a_bad_mode_before_any_work(accel, capsys, monkeypatch):
    accel("numpy")                                        # the CLI reads the variable afresh
    monkeypatch.setenv("BAREPROP_ACCEL", "fastest")
    # no data directory is needed: the check comes before the command runs
    assert main(["train", "--epochs", "1", "--data-dir", "/nonexistent"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "BAREPROP_ACCEL" in err and "Traceback" not in err


def test_float64_and_numpy_mode_never_compile(accel):
    accel("numba" if kernels.available() else "auto")
    assert kernels.get(np.float64) is None
    accel("numpy")
    assert kernels.get(np.float32) is None
    assert kernels.describe() == "NumPy (BAREPROP_ACCEL=numpy)"


@needs_numba
def test_bias_relu_equals_add_then_maximum(accel):
    rng = np.random.default_rng(0)
    z = _hostile(rng, (37, 53))
    b = _hostile(rng, (37,))
    want = np.maximum(z + b[:, None], 0)
    got = z.copy()
    accel("numba")
    kernels.get(np.float32).bias_relu(got, b)
    np.testing.assert_array_equal(got, want)              # NaN where NumPy has NaN


@needs_numba
@pytest.mark.parametrize("order", ["C", "F"])
def test_relu_backward_equals_numpy_in_either_layout(accel, order):
    rng = np.random.default_rng(1)
    y = np.asarray(np.maximum(_hostile(rng, (64, 30)), 0), order=order)
    d = np.asarray(_hostile(rng, (64, 30)), order=order)
    relu = bp.ReLU()
    relu._y = y
    want = relu.input_grad(d)                             # the reference formula
    accel("numba")
    got = relu_back(d, y)
    np.testing.assert_array_equal(got, want)              # NaN * 0 stays NaN in both
    assert got.flags.f_contiguous == (order == "F")       # dx keeps dout's layout
    # mixed layouts take the NumPy path, with the same values
    other = np.ascontiguousarray(y) if order == "F" else np.asfortranarray(y)
    np.testing.assert_array_equal(relu_back(d, other), want)


def _ce(mode, accel, z, y, eps):
    """The reference loss ("numpy"), or the fast one with its kernel ("numba")."""
    accel(mode)
    loss_fn = bp.CrossEntropyLoss(label_smoothing=eps)
    if mode == "numba":
        loss_fn = FastCrossEntropy(loss_fn)
    loss = loss_fn(z, y)
    return loss, loss_fn.backward()


@needs_numba
@pytest.mark.parametrize("eps", [0.0, 0.1])
@pytest.mark.parametrize("n,c,order", [(128, 10, "F"), (7, 10, "C"), (1, 3, "C"), (33, 1, "F")])
def test_softmax_cross_entropy_equals_numpy(accel, eps, n, c, order):
    rng = np.random.default_rng(n * c)
    z = np.asarray(rng.standard_normal((n, c)) * 4, np.float32, order=order)
    # each row's max in a random column, rows ~120 apart: only a per-row shift keeps every
    # row's sum from underflowing (the NumPy path falls back to per-row maxima too)
    z[np.arange(n), rng.integers(0, c, n)] += np.linspace(0, 120, n, dtype=np.float32)
    y = rng.integers(0, c, n)
    want_loss, want_dz = _ce("numpy", accel, z, y, eps)
    got_loss, got_dz = _ce("numba", accel, z, y, eps)
    assert got_loss == pytest.approx(want_loss, rel=2e-6, abs=1e-6)
    # entries are at most 1/N; p - 1 near p = 1 cancels: a few float32 ulps of 1/N
    np.testing.assert_allclose(got_dz, want_dz, rtol=1e-5, atol=4 * 2.0**-24 / n)
    assert got_dz.shape == (n, c) and got_dz.flags.c_contiguous and got_dz.dtype == np.float32


@needs_numba
@pytest.mark.parametrize("eps", [0.0, 0.1])
def test_softmax_cross_entropy_non_finite_logits_like_numpy(accel, eps):
    """-inf logits (a class ruled out) keep the loss finite without smoothing; NaN and
    +inf make it NaN; in both paths, row by row."""
    z = np.zeros((5, 4), np.float32)
    z[1, 2] = -np.inf
    z[2, [0, 3]] = -np.inf
    y = np.array([0, 1, 1, 2, 3])
    want_loss, want_dz = _ce("numpy", accel, z, y, eps)
    got_loss, got_dz = _ce("numba", accel, z, y, eps)
    assert np.isfinite(got_loss) == np.isfinite(want_loss) == (eps == 0)
    if eps == 0:
        assert got_loss == pytest.approx(want_loss, rel=1e-6)
    np.testing.assert_allclose(got_dz, want_dz, rtol=1e-5, atol=1e-7)
    for bad in (np.nan, np.inf):
        z2 = z.copy()
        z2[3, 1] = bad
        for mode in ("numpy", "numba"):
            loss, dz = _ce(mode, accel, z2, y, eps)
            assert np.isnan(loss), (mode, bad)
            assert np.isnan(dz[3]).all() and np.isfinite(dz[0]).all(), (mode, bad)


@needs_numba
def test_backward_twice_gives_equal_fresh_arrays(accel):
    accel("numba")
    loss_fn = FastCrossEntropy(bp.CrossEntropyLoss())
    loss_fn(np.linspace(-1, 1, 20, dtype=np.float32).reshape(5, 4), np.arange(5) % 4)
    a = loss_fn.backward()
    want = a.copy()
    a *= 100                                   # the caller's array: the loss keeps its own
    b = loss_fn.backward()
    np.testing.assert_array_equal(b, want)
    assert b is not a


def _net(dtype, inplace):
    return bp.Sequential(bp.Linear(20, 16, rng=0, dtype=dtype), bp.ReLU(inplace=inplace),
                         bp.Linear(16, 12, rng=1, dtype=dtype), bp.ReLU(inplace=True),
                         bp.Linear(12, 5, rng=2, dtype=dtype))


def _train(mode, accel, dtype, opt, inplace=True, eps=0.0, steps=12):
    accel(mode)
    net = _net(dtype, inplace)
    make = {"sgd": lambda p: optim.SGD(p, lr=0.1),
            "momentum": lambda p: optim.SGD(p, lr=0.05, momentum=0.9, nesterov=True),
            "adam": lambda p: optim.Adam(p, lr=1e-2)}[opt]
    step = TrainStep(net, bp.CrossEntropyLoss(label_smoothing=eps), make(net.parameters()))
    rng = np.random.default_rng(5)
    losses = []
    for _ in range(steps):
        x = rng.standard_normal((24, 20)).astype(dtype)
        losses.append(step(x, rng.integers(0, 5, 24))[0])
    return [p.data for p in net.parameters()], losses


@needs_numba
@pytest.mark.parametrize("opt", ["sgd", "momentum", "adam"])
@pytest.mark.parametrize("inplace", [True, False])
def test_training_with_kernels_equals_numpy_within_rounding(accel, opt, inplace):
    want_p, want_l = _train("numpy", accel, np.float32, opt, inplace, eps=0.05)
    got_p, got_l = _train("numba", accel, np.float32, opt, inplace, eps=0.05)
    np.testing.assert_allclose(got_l, want_l, rtol=1e-5)
    for g, w in zip(got_p, want_p):
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-6)


@needs_numba
def test_a_float32_training_step_runs_every_kernel(accel, monkeypatch):
    accel("numba")
    k = kernels.get(np.float32)
    calls = []
    for name in ("bias_relu", "relu_back", "softmax_ce"):
        f = getattr(k, name)
        monkeypatch.setattr(k, name, lambda *a, f=f, name=name: calls.append(name) or f(*a))
    _train("numba", accel, np.float32, "sgd", steps=1)
    assert sorted(set(calls)) == ["bias_relu", "relu_back", "softmax_ce"]
    assert calls.count("bias_relu") == 2 and calls.count("relu_back") == 2


def test_float64_training_is_bit_identical_whatever_the_mode(accel):
    want_p, want_l = _train("numpy", accel, np.float64, "momentum")
    got_p, got_l = _train("numba" if kernels.available() else "auto", accel, np.float64,
                          "momentum")
    assert got_l == want_l
    for g, w in zip(got_p, want_p):
        np.testing.assert_array_equal(g, w)


def _spy_bias_relu(monkeypatch):
    k = kernels.get(np.float32)
    calls = []
    f = k.bias_relu
    monkeypatch.setattr(k, "bias_relu", lambda z, b: calls.append(z.shape) or f(z, b))
    return calls


def _units(net):
    return [type(u).__name__ for u in plan(net, bp.CrossEntropyLoss()).net.layers]


@needs_numba
def test_the_plan_fuses_only_exact_linear_then_relu(accel, monkeypatch):
    class MyLinear(bp.Linear):
        pass
    net = bp.Sequential(bp.Linear(6, 5, rng=0), bp.ReLU(), MyLinear(5, 4, rng=1), bp.ReLU(),
                        bp.Linear(4, 3, rng=2), bp.Tanh())
    x = np.random.default_rng(0).standard_normal((8, 6)).astype(np.float32)
    want = net.forward(x)                     # the model itself: the reference path
    accel("numba")
    planned = plan(net, bp.CrossEntropyLoss())
    assert _units(net) == ["FastLinear", "MyLinear", "FastReLU", "Linear", "Tanh"]
    calls = _spy_bias_relu(monkeypatch)
    np.testing.assert_allclose(planned.net.forward(x), want, rtol=1e-6)
    assert calls == [(5, 8)]                  # the first pair only: y^T of Linear(6, 5)
    fused = planned.net.layers[0]
    assert isinstance(fused, FastLinear) and fused.linear is net.layers[0]
    assert fused.relu is net.layers[1] and fused.parameters() == net.layers[0].parameters()
    # the model's own Linear is still just the affine map (no ReLU applied)
    assert (net.layers[0].forward(x) < 0).any()
    # float64, or the NumPy mode: nothing planned, the model runs as it is
    accel("numpy")
    assert plan(net, bp.CrossEntropyLoss()).net is net
    accel("numba")
    assert plan(bp.Sequential(*net.layers[:2]).astype(np.float64),
                bp.CrossEntropyLoss()).net.layers[0] is net.layers[0]


@needs_numba
def test_a_changed_layer_list_is_planned_anew(accel, monkeypatch):
    """A step is planned once, when it is built; a layer swapped into the model later is
    seen at the next step, which plans again (a stale chain would train the old layer)."""
    rng = np.random.default_rng(1)
    net = bp.Sequential(bp.Linear(6, 5, rng=0), bp.ReLU(), bp.Linear(5, 3, rng=1))
    accel("numba")
    step = TrainStep(net, bp.CrossEntropyLoss(), optim.SGD(net.parameters(), lr=0.1))
    assert type(step.plan.net.layers[0]) is FastLinear
    net.layers[1] = bp.Sigmoid()               # no longer a Linear-ReLU pair
    calls = _spy_bias_relu(monkeypatch)
    step(rng.standard_normal((8, 6)).astype(np.float32), rng.integers(0, 3, 8))
    assert calls == [] and step.plan.net.layers[1] is net.layers[1]
    net.layers[1] = bp.ReLU()
    step(rng.standard_normal((8, 6)).astype(np.float32), rng.integers(0, 3, 8))
    assert calls == [(5, 8)]


@needs_numba
def test_a_replaced_forward_is_not_planned_and_sees_every_call(accel, monkeypatch):
    """A profiler's or a mock's wrapper, on the instance or on the class, is called as
    before: a layer whose forward was replaced is run as it is, never fused."""
    x = np.random.default_rng(2).standard_normal((8, 6)).astype(np.float32)
    net = bp.Sequential(bp.Linear(6, 5, rng=0), bp.ReLU(), bp.Linear(5, 3, rng=1))
    accel("numba")
    want = net.forward(x)
    seen = []
    inner = net.layers[1].forward
    net.layers[1].forward = lambda v: seen.append("instance") or inner(v)
    assert _units(net) == ["Linear", "ReLU", "Linear"]
    np.testing.assert_allclose(plan(net, None).net.forward(x), want, rtol=1e-6)
    del net.layers[1].forward
    for cls in (bp.Linear, bp.ReLU):
        original = cls.forward
        def wrapper(self, v, f=original, name=cls.__name__):
            seen.append(name)
            return f(self, v)
        monkeypatch.setattr(cls, "forward", wrapper)
        np.testing.assert_allclose(plan(net, None).net.forward(x), want, rtol=1e-6)
        monkeypatch.setattr(cls, "forward", original)
    assert seen == ["instance", "Linear", "Linear", "ReLU"]


def test_a_numba_that_fails_at_import_leaves_numpy_in_charge(tmp_path):
    """llvmlite failing to load raises OSError (not ImportError) from ``import numba``:
    under auto, one warning and NumPy; under BAREPROP_ACCEL=numba, one line from the CLI
    before any work; a float32 step trains either way."""
    fake = tmp_path / "site" / "numba"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise OSError('libllvmlite.so: cannot open shared "
                                      "object file')\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "site"), "BAREPROP_ACCEL": "auto"}
    code = ("import warnings, numpy as np, bareprop as bp\n"
            "from bareprop.fast import kernels\n"
            "with warnings.catch_warnings(record=True) as w:\n"
            "    warnings.simplefilter('always')\n"
            "    net = bp.Sequential(bp.Linear(4, 3, rng=0), bp.ReLU(), bp.Linear(3, 2, rng=1))\n"
            "    step = bp.TrainStep(net, bp.CrossEntropyLoss(), bp.SGD(net.parameters(), lr=0.1))\n"
            "    loss, _ = step(np.ones((5, 4), np.float32), np.arange(5) % 2)\n"
            "    kernels.get(np.float32)\n"
            "print(len(w), str(w[0].message) if w else '', np.isfinite(loss))\n")
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("1 numba could not compile") and "libllvmlite" in r.stdout
    assert r.stdout.strip().endswith("True")
    env["BAREPROP_ACCEL"] = "numba"
    r = subprocess.run([sys.executable, "-m", "bareprop", "train", "--epochs", "1",
                        "--data-dir", "/nonexistent"], env=env, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert "libllvmlite" in r.stderr and "Traceback" not in r.stderr


def test_an_installed_numba_compiles_every_kernel():
    """Where numba is installed (CI's [dev] install) the kernels compile: otherwise every
    test of a fast path would skip, silently, as if numba were missing."""
    pytest.importorskip("numba")
    assert kernels.available(), kernels.describe()
