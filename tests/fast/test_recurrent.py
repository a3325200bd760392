"""The LSTM's compiled time step (fast/cellkernels.py, fast/recurrent.py) against the
reference cell (core/cells.py): the vectorised exp/tanh/sigmoid against float64 maths
within a few ulp, NaN and inf included; whole layers (stacked, bidirectional, sequence
outputs, one step, batch 1, odd sizes, hostile inputs) equal to the reference within
float32 rounding in their output, dx and every gradient; training steps that follow the
reference's; and the plan rule that picks it (exact float32 LSTMs only)."""
import numpy as np
import pytest

import bareprop as bp
from bareprop import optim
from bareprop.core.recurrent import LSTM
from bareprop.fast import kernels, plan
from bareprop.fast.recurrent import FastLSTMCell, FastRecurrent
from fastpath import assert_training_follows_the_reference

needs_numba = pytest.mark.skipif(not kernels.available(), reason="numba is not installed")
pytestmark = needs_numba


@pytest.fixture
def k(monkeypatch):
    monkeypatch.setattr(kernels, "_choice", None)
    kernels.use("auto")
    return kernels.compiled()


def _ulps(got, want):
    """|got - want| in float32 ulps of want (want float64)."""
    spacing = np.spacing(np.abs(want).astype(np.float32)).astype(np.float64)
    return np.abs(got.astype(np.float64) - want) / spacing


def _vector(fn, x):
    out = np.empty_like(x)
    for i, v in enumerate(x):
        out[i] = fn(v)
    return out


@pytest.mark.parametrize("name, ref, ulps", [
    ("exp32", np.exp, 2), ("tanh32", np.tanh, 4),
    ("sigmoid32", lambda x: 1 / (1 + np.exp(-x)), 4)])
def test_transcendentals_within_a_few_ulp_of_float64(k, name, ref, ulps):
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.uniform(-90, 90, 3000), rng.uniform(-1, 1, 2000),
                        np.geomspace(1e-30, 0.5, 500), -np.geomspace(1e-30, 0.5, 500),
                        [0.29999, 0.3, 0.30001, -0.3, 88.7, -87.3]]).astype(np.float32)
    fn = getattr(k, name)
    got = np.array([fn(v) for v in x], np.float32)
    with np.errstate(over="ignore"):
        want = ref(x.astype(np.float64))
    normal = (np.abs(want) > 1.2e-38) & (np.abs(want) < 3.4e38)
    assert _ulps(got[normal], want[normal]).max() <= ulps


@pytest.mark.parametrize("name", ["exp32", "tanh32", "sigmoid32"])
def test_transcendentals_of_non_finite_and_extreme_values_as_numpy(k, name):
    x = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 89.0, -89.0, 1e4, -1e4, 3e38, -3e38],
                 np.float32)
    np_fn = {"exp32": np.exp, "tanh32": np.tanh,
             "sigmoid32": lambda v: 1 / (1 + np.exp(-v))}[name]
    with np.errstate(over="ignore"):
        want = np_fn(x)
    got = np.array([getattr(k, name)(v) for v in x], np.float32)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-38)   # NaN where NumPy's


def _hostile_sequence(rng, shape, hostile):
    x = (rng.standard_normal(shape) * 3).astype(np.float32)
    if hostile:                       # one example of NaN, one of inf, one of huge values
        x[0, -1, 0] = np.nan
        x[min(1, shape[0] - 1), 0, -1] = np.inf
        x[-1, shape[1] // 2] = 1e4
    return x


def _run(net, loss, x, y, model):
    model.zero_grad()
    logits = net(x)
    loss(logits, y)
    dx = net.backward(loss.backward(), need_dx=True)
    return logits.copy(), dx.copy(), [p.grad.copy() for p in model.parameters()]


def _assert_close(got, want, scale):
    """Equal within float32 rounding: the same NaN and inf, the rest close."""
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    fin = np.isfinite(want)
    np.testing.assert_array_equal(got[~fin & ~np.isnan(want)], want[~fin & ~np.isnan(want)])
    np.testing.assert_allclose(got[fin], want[fin], rtol=2e-4, atol=2e-6 * scale)


@pytest.mark.parametrize("kw, t, n, f, h, hostile", [
    ({}, 7, 5, 3, 9, False),
    ({}, 1, 1, 4, 5, False),
    ({"num_layers": 2}, 6, 3, 5, 7, False),
    ({"bidirectional": True}, 5, 4, 3, 6, False),
    ({"return_sequences": True}, 4, 3, 2, 3, False),
    ({"num_layers": 2, "bidirectional": True, "return_sequences": True}, 5, 2, 3, 4, False),
    ({"bias": False}, 3, 2, 3, 4, False),
    ({}, 6, 4, 3, 5, True),
    ({"bidirectional": True, "return_sequences": True}, 5, 3, 4, 6, True),
])
def test_layer_equals_the_reference_cell(k, kw, t, n, f, h, hostile):
    rng = np.random.default_rng(t * 100 + n)
    lstm = LSTM(f, h, rng=1, **kw)
    out = h * (2 if kw.get("bidirectional") else 1) * (t if kw.get("return_sequences") else 1)
    model = bp.Sequential(lstm, bp.Flatten(), bp.Linear(out, 3, rng=2))
    loss = bp.CrossEntropyLoss()
    p = plan(model, loss)
    assert any(isinstance(u, FastRecurrent) for u in p.net.layers)
    x, y = _hostile_sequence(rng, (n, t, f), hostile), rng.integers(0, 3, n)
    with np.errstate(invalid="ignore", over="ignore"):
        want = _run(model, loss, x, y, model)
        got = _run(p.net, p.loss, x, y, model)
    for g, w in zip(got[:2], want[:2]):
        _assert_close(g, w, np.nanmax(np.abs(w[np.isfinite(w)]), initial=1))
    for g, w in zip(got[2], want[2]):
        _assert_close(g, w, np.nanmax(np.abs(w[np.isfinite(w)]), initial=1))
    if hostile:
        assert np.isnan(got[0]).any() and np.isfinite(got[0]).any()


def test_training_follows_the_reference_steps(k):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((16, 28, 28)).astype(np.float32)
    assert_training_follows_the_reference(
        lambda: bp.Sequential(bp.LSTM(28, 16, rng=0), bp.Linear(16, 10, rng=1)),
        lambda params: optim.Adam(params, lr=3e-3), x, rng.integers(0, 10, 16), steps=20,
        unit="FastRecurrent", learns=0.8)


def test_the_unit_shares_the_layers_parameters_and_follows_its_mode(k):
    lstm = LSTM(3, 4, rng=0)
    unit = FastRecurrent(lstm, FastLSTMCell(k))
    assert [id(p) for p in unit.parameters()] == [id(p) for p in lstm.parameters()]
    x = np.ones((2, 5, 3), np.float32)
    lstm.eval()
    y1, y2 = unit(x), unit(x)
    assert y1 is not y2 and not unit.run._ws                 # eval: fresh arrays, no scratch
    np.testing.assert_allclose(y1, lstm(x), rtol=1e-6, atol=1e-7)
    with pytest.raises(RuntimeError, match="no forward yet"):
        LSTM(3, 4, rng=0).with_cell(FastLSTMCell(k)).hidden_states()


def test_plan_takes_exact_float32_lstms_only(k):
    loss = bp.CrossEntropyLoss()

    class MyLSTM(LSTM):
        pass

    def planned(model):
        net = plan(model, loss).net
        return [type(u).__name__ for u in getattr(net, "layers", [])]

    assert planned(bp.Sequential(LSTM(3, 4, rng=0), bp.Linear(4, 2, rng=0)))[0] == \
        "FastRecurrent"
    assert planned(bp.Sequential(MyLSTM(3, 4, rng=0), bp.Linear(4, 2, rng=0)))[0] == "MyLSTM"
    f64 = bp.Sequential(LSTM(3, 4, rng=0, dtype=np.float64),
                        bp.Linear(4, 2, rng=0, dtype=np.float64))
    assert plan(f64, loss).net is f64
    gru = bp.Sequential(bp.GRU(3, 4, rng=0), bp.Linear(4, 2, rng=0))
    assert planned(gru)[0] == "GRU"
    kernels.use("numpy")
    assert planned(bp.Sequential(LSTM(3, 4, rng=0), bp.Linear(4, 2, rng=0)))[0] == "LSTM"
