"""Extremes, dtypes, state and API behaviour of the core."""
import numpy as np
import pytest

import bareprop as bp

EXTREME = np.array([[1000.0, -1000.0, 0.0], [-1000.0, -1000.0, 1000.0]])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("layer", [bp.Sigmoid, bp.Softmax, bp.Tanh, bp.GELU])
def test_activations_finite_at_extremes(layer, dtype):
    act = layer()
    x = EXTREME.astype(dtype)
    y = act.forward(x)
    dx = act.backward(np.ones_like(x))
    assert np.all(np.isfinite(y)) and np.all(np.isfinite(dx))
    assert y.dtype == dtype and dx.dtype == dtype


def test_sigmoid_values_at_extremes():
    y = bp.Sigmoid().forward(EXTREME)
    np.testing.assert_array_equal(y[0], [1.0, 0.0, 0.5])


def test_softmax_values_at_extremes():
    y = bp.Softmax().forward(EXTREME)
    np.testing.assert_allclose(y, [[1, 0, 0], [0, 0, 1]], atol=1e-300)
    np.testing.assert_allclose(y.sum(axis=1), 1.0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cross_entropy_finite_at_extremes(dtype):
    loss_fn = bp.CrossEntropyLoss()
    z = EXTREME.astype(dtype)
    loss = loss_fn(z, np.array([1, 2]))  # first row: true class at -1000 -> loss 1000
    assert np.isfinite(loss) and abs(loss - 1000.0) < 1e-3
    g = loss_fn.backward()
    assert np.all(np.isfinite(g)) and g.dtype == dtype
    assert loss_fn(z, np.array([0, 2])) == 0.0


OPTS = [lambda p: bp.SGD(p, lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-4),
        lambda p: bp.Adam(p, amsgrad=True, weight_decay=1e-4), lambda p: bp.AdamW(p),
        lambda p: bp.RMSprop(p, centered=True, momentum=0.5), lambda p: bp.Adagrad(p)]


@pytest.mark.parametrize("make_opt", OPTS)
def test_float32_stays_float32(make_opt, rng):
    acts = [bp.ReLU(), bp.LeakyReLU(), bp.Sigmoid(), bp.Tanh(), bp.GELU(), bp.GELU("tanh"),
            bp.Softmax(), bp.Identity()]
    layers = []
    for act in acts:
        layers += [bp.Linear(6, 6, rng=rng), act]
    model = bp.Sequential(bp.Linear(784, 6, init="notebook", rng=rng), *layers,
                          bp.Linear(6, 10, rng=rng))
    opt = make_opt(model.parameters())
    loss_fn = bp.CrossEntropyLoss(label_smoothing=0.1)
    x = rng.integers(0, 256, size=(8, 784)).astype(np.float32) / np.sqrt(784)  # float64!
    for _ in range(2):
        out = model(x)
        assert out.dtype == np.float32
        loss_fn(out, rng.integers(0, 10, 8))
        g = loss_fn.backward()
        assert g.dtype == np.float32
        opt.zero_grad()
        model.backward(g)
        opt.step()
    for p in model.parameters():
        assert p.data.dtype == np.float32 and p.grad.dtype == np.float32
    for state in opt.state:
        for v in state.values():
            if isinstance(v, np.ndarray):
                assert v.dtype == np.float32


@pytest.mark.parametrize("init", sorted(bp.init.INITIALIZERS))
def test_initialisers_are_seeded_and_scaled(init):
    a = bp.Linear(400, 300, init=init, rng=np.random.default_rng(0))
    b = bp.Linear(400, 300, init=init, rng=np.random.default_rng(0))
    np.testing.assert_array_equal(a.weight.data, b.weight.data)
    assert a.weight.data.dtype == np.float32
    expected_std = {
        "notebook": 1 / 400, "kaiming_normal": np.sqrt(2 / 400),
        "kaiming_uniform": np.sqrt(2 / 400), "xavier_normal": np.sqrt(2 / 700),
        "xavier_uniform": np.sqrt(2 / 700), "glorot_normal": np.sqrt(2 / 700),
        "glorot_uniform": np.sqrt(2 / 700), "lecun_normal": np.sqrt(1 / 400),
        "torch": np.sqrt(1 / 3) / np.sqrt(400),
    }[init]
    assert abs(a.weight.data.std() / expected_std - 1) < 0.02
    assert abs(a.weight.data.mean()) < 0.05 * expected_std * 10


def test_init_bounds():
    xu = bp.Linear(50, 30, init="xavier_uniform", rng=1).weight.data
    assert np.abs(xu).max() <= np.sqrt(6 / 80)
    ln = bp.Linear(50, 30, init="lecun_normal", rng=1).weight.data
    assert np.abs(ln).max() <= 2 * np.sqrt(1 / 50) / 0.87962566103423978 + 1e-7
    assert np.all(bp.Linear(5, 3, init="xavier_uniform", rng=1).bias.data == 0)
    tb = bp.Linear(25, 300, init="torch", rng=1).bias.data
    assert np.abs(tb).max() <= 0.2 and np.abs(tb).max() > 0.15


def test_summary_matches_keras_counts(capsys):
    net = bp.Sequential(bp.Linear(784, 128, rng=0), bp.ReLU(), bp.Linear(128, 10, rng=0))
    text = net.summary()
    assert "100,480" in text and "1,290" in text and "Total params: 101,770" in text
    assert "(None, 128)" in text and "(None, 10)" in text
    assert capsys.readouterr().out.strip() == text.strip()


def test_state_dict_round_trip_and_errors(rng):
    a = bp.Sequential(bp.Linear(4, 3, rng=rng), bp.ReLU(), bp.Linear(3, 2, rng=rng))
    b = bp.Sequential(bp.Linear(4, 3, rng=rng), bp.ReLU(), bp.Linear(3, 2, rng=rng))
    state = a.state_dict()
    assert list(state) == ["0.weight", "0.bias", "2.weight", "2.bias"]
    b.load_state_dict(state)
    x = rng.normal(size=(5, 4)).astype(np.float32)
    np.testing.assert_array_equal(a(x), b(x))
    state["0.weight"] = np.zeros((3, 5))
    with pytest.raises(ValueError, match="0.weight.*shape"):
        b.load_state_dict(state)
    with pytest.raises(ValueError, match="missing"):
        b.load_state_dict({"0.weight": np.zeros((3, 4))})


def test_train_eval_modes_propagate():
    net = bp.Sequential(bp.Linear(2, 2, rng=0), bp.ReLU())
    net.eval()
    assert not net.training and not net[0].training and not net[1].training
    net.train()
    assert net[1].training


def test_zero_grad_and_accumulation(rng):
    """Two backwards accumulate (as torch); zero_grad starts clean again."""
    net = bp.Sequential(bp.Linear(3, 2, rng=rng))
    loss_fn = bp.CrossEntropyLoss()
    x, y = rng.normal(size=(4, 3)), rng.integers(0, 2, 4)
    loss_fn(net(x), y)
    net.backward(loss_fn.backward())
    once = net[0].weight.grad.copy()
    loss_fn(net(x), y)
    net.backward(loss_fn.backward())
    np.testing.assert_allclose(net[0].weight.grad, 2 * once, rtol=1e-6)
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())


def test_input_grad_on_request(rng):
    net = bp.Sequential(bp.Linear(3, 2, rng=rng))
    loss_fn = bp.CrossEntropyLoss()
    loss_fn(net(rng.normal(size=(4, 3))), rng.integers(0, 2, 4))
    g = loss_fn.backward()
    assert net.backward(g) is None
    assert net.backward(g, need_dx=True).shape == (4, 3)


@pytest.mark.parametrize("bad", [
    lambda: bp.SGD(bp.Linear(2, 2).parameters(), lr=-1),
    lambda: bp.SGD(bp.Linear(2, 2).parameters(), lr=0),
    lambda: bp.SGD(bp.Linear(2, 2).parameters(), lr=0.1, nesterov=True),
    lambda: bp.Adam(bp.Linear(2, 2).parameters(), betas=(1.0, 0.9)),
    lambda: bp.Adam(bp.Linear(2, 2).parameters(), lr=float("nan")),
    lambda: bp.Linear(0, 3),
    lambda: bp.Linear(3, 2, init="kaiming"),
    lambda: bp.Linear(3, 2, dtype=np.int32),
    lambda: bp.CrossEntropyLoss(label_smoothing=2),
    lambda: bp.Sequential(bp.Linear(2, 2), clip_delta=0),
])
def test_bad_settings_raise_config_error(bad):
    with pytest.raises(bp.ConfigError):
        bad()


def test_unknown_init_suggests_closest():
    with pytest.raises(bp.ConfigError, match="Did you mean 'kaiming_normal'"):
        bp.Linear(3, 2, init="kaiming_norml")


def test_bad_labels_and_shapes(rng):
    loss_fn = bp.CrossEntropyLoss()
    with pytest.raises(ValueError, match="0..2"):
        loss_fn(rng.normal(size=(2, 3)), np.array([0, 3]))
    with pytest.raises(ValueError, match="integers"):
        loss_fn(rng.normal(size=(2, 3)), np.array([0.0, 1.0]))
    with pytest.raises(ValueError, match=r"\(N, 3\)"):
        bp.Linear(3, 2)(np.zeros((2, 4)))


def _ce_per_row(z, y, eps):
    """The textbook per-row form in float64: log p = z - max_row - log sum exp(z - max_row)."""
    z = z.astype(np.float64)
    logp = z - z.max(axis=1, keepdims=True)
    logp -= np.log(np.exp(logp).sum(axis=1, keepdims=True))
    n, c = z.shape
    q = np.full((n, c), eps / c)
    q[np.arange(n), y] += 1 - eps
    return float(-(q * logp).sum() / n), (np.exp(logp) - q) / n


@pytest.mark.parametrize("dtype,tol", [(np.float32, 2e-6), (np.float64, 1e-14)])
@pytest.mark.parametrize("eps", [0.0, 0.1])
@pytest.mark.parametrize("spread", [3.0, 30.0, 1000.0])
def test_cross_entropy_batch_shift_equals_the_per_row_form(dtype, tol, eps, spread):
    """The loss shifts logits by the batch's max, not each row's (a ~7 us saving per step);
    rows far below the batch's largest logit (spread 30 in float32, 1000 in both) take the
    per-row path. Loss and gradient agree with the per-row form either way."""
    rng = np.random.default_rng(int(spread))
    z = (rng.standard_normal((64, 10)) * spread).astype(dtype)
    z[5] -= 10 * spread                               # one row far below the rest
    y = rng.integers(0, 10, 64)
    loss_fn = bp.CrossEntropyLoss(label_smoothing=eps)
    loss, grad = loss_fn(z, y), loss_fn.backward()
    want_loss, want_grad = _ce_per_row(z, y, eps)
    assert grad.dtype == dtype and np.all(np.isfinite(grad))
    assert abs(loss - want_loss) <= tol * max(1.0, abs(want_loss))
    np.testing.assert_allclose(grad, want_grad, rtol=0, atol=tol * 10 / len(z))
    np.testing.assert_allclose(loss_fn.backward(), grad)      # backward twice: the same


@pytest.mark.parametrize("layout", ["fortran", "transposed", "strided"])
def test_cross_entropy_of_logits_in_any_memory_layout(layout):
    """The label term is subtracted through flat indices: logits that are not C-ordered
    (a transposed view, a slice) must give the same loss and gradient."""
    rng = np.random.default_rng(1)
    z = rng.standard_normal((6, 4))
    y = rng.integers(0, 4, 6)
    view = {"fortran": np.asfortranarray(z), "transposed": np.ascontiguousarray(z.T).T,
            "strided": np.repeat(z, 2, axis=1)[:, ::2]}[layout]
    assert np.array_equal(view, z) and not view.flags.c_contiguous
    loss_fn = bp.CrossEntropyLoss()
    want = loss_fn(z, y), loss_fn.backward()
    got = loss_fn(view, y), loss_fn.backward()
    assert abs(got[0] - want[0]) < 1e-15
    np.testing.assert_allclose(got[1], want[1], rtol=0, atol=1e-16)


@pytest.mark.parametrize("labels", [np.array([0, -1], np.int8), np.array([0, -3], np.int64),
                                    np.array([0, -1], ">i4"), np.array([0, 3], np.uint8),
                                    np.array([2**40, 0])])
def test_out_of_range_labels_of_any_integer_type_are_refused(labels):
    with pytest.raises(ValueError, match=r"labels must lie in 0..2"):
        bp.CrossEntropyLoss()(np.zeros((2, 3)), labels)


@pytest.mark.parametrize("dtype", [np.uint64, np.uint16, ">i8", np.int32])
def test_labels_of_every_integer_type_give_the_same_loss(dtype):
    z = np.random.default_rng(2).standard_normal((5, 3))
    y = np.array([0, 2, 1, 1, 0])
    loss_fn = bp.CrossEntropyLoss()
    want = loss_fn(z, y), loss_fn.backward()
    got = loss_fn(z, y.astype(dtype)), loss_fn.backward()
    assert got[0] == want[0] and np.array_equal(got[1], want[1])


def test_cross_entropy_of_an_empty_batch():
    loss_fn = bp.CrossEntropyLoss()
    with np.errstate(invalid="ignore", divide="ignore"):
        assert np.isnan(loss_fn(np.zeros((0, 3)), np.zeros(0, np.int64)))
    g = loss_fn.backward()
    assert g.shape == (0, 3)
