"""RNN, LSTM and GRU as a user meets them: shapes and layouts, initialisation, float32
kept, one BPTT per dout however the backward is asked for, hand-worked values, the
--arch grammar (hidden size, keywords, input_size read off the shape) and its one-line
refusals, model files and the memory estimate's scratch."""
import math

import numpy as np
import pytest

import bareprop as bp
from bareprop.core import cells
from bareprop.errors import ConfigError
from bareprop.experiment import arch
from bareprop.experiment.checks import arch_model, make_config


F64 = np.float64


def assert_one_line(message: str) -> None:
    assert message and "\n" not in message, message


@pytest.mark.parametrize("cls", [bp.RNN, bp.LSTM, bp.GRU])
def test_output_shapes_for_every_option(cls):
    x = np.zeros((2, 5, 3), np.float32)
    assert cls(3, 4, rng=0)(x).shape == (2, 4)
    assert cls(3, 4, bidirectional=True, rng=0)(x).shape == (2, 8)
    assert cls(3, 4, return_sequences=True, rng=0)(x).shape == (2, 5, 4)
    assert cls(3, 4, num_layers=3, bidirectional=True, return_sequences=True,
               rng=0)(x).shape == (2, 5, 8)
    tm = cls(3, 4, batch_first=False, return_sequences=True, bidirectional=True, rng=0)
    assert tm(np.zeros((5, 2, 3), np.float32)).shape == (5, 2, 8)
    assert cls(3, 4, rng=0).output_shape((5, 3)) == (4,)
    with pytest.raises(ConfigError, match="batch_first=True"):
        bp.Sequential(tm, input_shape=(5, 3))          # a model's examples come batch first
    assert cls(3, 4, return_sequences=True, bidirectional=True, rng=0).output_shape((9, 3)) \
        == (9, 8)


@pytest.mark.parametrize("cls", [bp.RNN, bp.LSTM, bp.GRU])
def test_float32_stays_float32(cls):
    layer = cls(3, 4, num_layers=2, bidirectional=True, rng=0)
    x = np.random.default_rng(0).normal(size=(2, 5, 3))          # float64 data: cast
    y = layer(x)
    assert y.dtype == np.float32
    dx = layer.backward(np.ones_like(y))
    assert dx.dtype == np.float32
    assert all(p.grad.dtype == np.float32 for p in layer.parameters())
    wide = cls(3, 4, num_layers=2, bidirectional=True, rng=0, dtype=F64)
    np.testing.assert_allclose(y, wide(x), rtol=1e-5, atol=1e-6)


def test_initialisation_is_pytorchs_unless_told():
    layer = bp.LSTM(10, 16, num_layers=2, rng=0)
    bound = 1 / math.sqrt(16)
    for name, p in layer.named_parameters():
        assert np.abs(p.data).max() <= bound and p.data.min() < 0 < p.data.max(), name
    again = bp.LSTM(10, 16, num_layers=2, rng=0)
    assert all(np.array_equal(a, b) for a, b in
               zip(layer.state_dict().values(), again.state_dict().values()))
    blank = bp.GRU(10, 16, init=None)
    assert all(not v.any() for v in blank.state_dict().values())
    xavier = bp.RNN(10, 16, init="xavier_uniform", rng=0)
    assert not xavier.bias_ih_l0.data.any() and xavier.weight_hh_l0.data.any()
    assert np.abs(xavier.weight_ih_l0.data).max() <= math.sqrt(6 / (10 + 16))
    with pytest.raises(ConfigError, match="init"):
        bp.LSTM(3, 4, init="nonsense")


def test_bad_constructor_arguments_are_one_line():
    for make, match in [(lambda: bp.LSTM(3, 0), "hidden_size"),
                        (lambda: bp.GRU(0, 3), "input_size"),
                        (lambda: bp.RNN(3, 4, nonlinearity="sigmoid"), "'tanh' or 'relu'"),
                        (lambda: bp.LSTM(3, 4, bidirectional="yes"), "bidirectional"),
                        (lambda: bp.GRU(3, 4, num_layers=0), "num_layers")]:
        with pytest.raises(ConfigError, match=match) as info:
            make()
        assert_one_line(str(info.value))


def test_wrong_inputs_name_the_layer_and_the_shape():
    layer = bp.LSTM(3, 4, rng=0)
    with pytest.raises(ValueError, match=r"LSTM\(3, 4\) expects input of shape \(N, T, 3\)"):
        layer(np.zeros((2, 5, 4)))
    with pytest.raises(ValueError, match="got \\(2, 15\\)"):
        layer(np.zeros((2, 15)))
    with pytest.raises(RuntimeError, match="forward first"):
        bp.GRU(3, 4, rng=0).backward(np.zeros((2, 4)))


def test_one_bptt_per_dout_however_the_backward_is_asked(monkeypatch):
    """accumulate_grads(dout) then input_grad(dout) (the split Sequential uses) run the
    recurrence once and give what backward gives; a second accumulate_grads with the
    same dout adds the same gradients again; a new forward starts afresh."""
    rng = np.random.default_rng(0)
    layer = bp.LSTM(3, 4, num_layers=2, rng=rng, dtype=F64)
    x, dout = rng.normal(size=(2, 6, 3)), rng.normal(size=(2, 4))
    layer(x)
    want_dx = layer.backward(dout)
    want = {n: p.grad.copy() for n, p in layer.named_parameters()}
    calls = []
    real = cells.LSTMCell.backward
    monkeypatch.setattr(cells.LSTMCell, "backward",
                        lambda self, *a: calls.append(1) or real(self, *a))
    layer.zero_grad()
    layer(x)
    layer.accumulate_grads(dout)
    dx = layer.input_grad(dout)
    assert len(calls) == 2                             # one per stacked layer, once
    np.testing.assert_array_equal(dx, want_dx)
    layer.accumulate_grads(dout)
    assert len(calls) == 2
    for name, p in layer.named_parameters():
        np.testing.assert_allclose(p.grad, 2 * want[name], rtol=1e-14)
    layer(x)
    layer.input_grad(dout)
    assert len(calls) == 4


def test_rnn_worked_by_hand():
    """H = F = 1, T = 2: h1 = tanh(w x1 + b), h2 = tanh(w x2 + u h1 + b), b = b_ih + b_hh;
    L = h2. dL/du = (1 - h2^2) h1, dL/dw = (1 - h2^2)(x2 + u (1 - h1^2) x1),
    dL/dx1 = (1 - h2^2) u (1 - h1^2) w."""
    layer = bp.RNN(1, 1, init=None, dtype=F64)
    w, u, b1, b2 = 0.5, -0.8, 0.1, 0.2
    layer.load_state_dict({"weight_ih_l0": [[w]], "weight_hh_l0": [[u]],
                           "bias_ih_l0": [b1], "bias_hh_l0": [b2]})
    x1, x2 = 1.5, -0.5
    h1 = math.tanh(w * x1 + b1 + b2)
    h2 = math.tanh(w * x2 + u * h1 + b1 + b2)
    y = layer(np.array([[[x1], [x2]]]))
    assert y[0, 0] == pytest.approx(h2, rel=1e-15)
    dx = layer.backward(np.ones((1, 1)))
    d2, d1 = 1 - h2 ** 2, 1 - h1 ** 2
    assert layer.weight_hh_l0.grad[0, 0] == pytest.approx(d2 * h1, rel=1e-14)
    assert layer.weight_ih_l0.grad[0, 0] == pytest.approx(d2 * (x2 + u * d1 * x1), rel=1e-14)
    assert layer.bias_hh_l0.grad[0] == pytest.approx(d2 * (1 + u * d1), rel=1e-14)
    assert dx[0, 0, 0] == pytest.approx(d2 * u * d1 * w, rel=1e-14)
    assert dx[0, 1, 0] == pytest.approx(d2 * w, rel=1e-14)


def test_lstm_one_step_worked_by_hand():
    """T = 1, H = F = 1, zero state: c = i g, h = o tanh(c); dL/dz_f = 0 (c_0 = 0)."""
    layer = bp.LSTM(1, 1, bias=False, init=None, dtype=F64)
    wi, wf, wg, wo = 0.3, -0.2, 0.7, 0.5
    layer.load_state_dict({"weight_ih_l0": [[wi], [wf], [wg], [wo]],
                           "weight_hh_l0": [[0.1]] * 4})
    x = 2.0
    s = lambda v: 1 / (1 + math.exp(-v))                          # noqa: E731
    i, g, o = s(wi * x), math.tanh(wg * x), s(wo * x)
    c = i * g
    assert layer(np.array([[[x]]]))[0, 0] == pytest.approx(o * math.tanh(c), rel=1e-15)
    layer.backward(np.ones((1, 1)))
    dc = o * (1 - math.tanh(c) ** 2)
    want = [dc * g * i * (1 - i) * x, 0.0, dc * i * (1 - g ** 2) * x,
            math.tanh(c) * o * (1 - o) * x]
    np.testing.assert_allclose(layer.weight_ih_l0.grad[:, 0], want, rtol=1e-14)
    assert not layer.weight_hh_l0.grad.any()                    # h_0 = 0: no recurrent term


def test_eval_outputs_are_independent_arrays():
    """Training reuses scratch between steps; an eval forward allocates its own (a server
    may run one model from several threads), and no output aliases a cache."""
    layer = bp.GRU(3, 4, return_sequences=True, rng=0)
    x = np.random.default_rng(0).normal(size=(2, 5, 3)).astype(np.float32)
    a = layer(x)
    b = layer(x * 2)
    assert not np.shares_memory(a, b) and not np.array_equal(a, b)
    layer.eval()
    e1, e2 = layer(x), layer(x)
    np.testing.assert_array_equal(e1, a)
    assert not np.shares_memory(e1, e2)


# -- the --arch grammar -----------------------------------------------------------------
def test_arch_reads_an_image_row_by_row():
    model = arch.build("rows lstm(128) linear(10)", (1, 28, 28), seed=0)
    rows, lstm, linear = model.layers
    assert isinstance(rows, bp.Rows) and isinstance(lstm, bp.LSTM)
    assert (lstm.input_size, lstm.hidden_size, linear.in_features) == (28, 128, 128)
    assert model.shapes == [(28, 28), (128,), (10,)]
    cfg = make_config({"arch": "rows lstm(128) linear(10)"})
    assert arch_model(cfg).output_shape() == (10,)                # what train builds
    cols = arch.build("cols gru(8) linear(10)", (1, 28, 20), seed=0)
    assert cols.layers[1].input_size == 28 and cols.shapes[0] == (20, 28)


def test_arch_keywords_set_pytorchs_arguments():
    model = arch.build("rows lstm(16,layers=2,bidirectional=true,sequences=true) "
                       "rnn(8,nonlinearity=relu,bias=False,sequences=true) gru(4, init=xavier_uniform) "
                       "linear(10)", (28, 28), seed=0)
    lstm, rnn, gru = model.layers[1:4]
    assert (lstm.num_layers, lstm.bidirectional, lstm.return_sequences) == (2, True, True)
    assert (rnn.input_size, rnn.nonlinearity, rnn.bias) == (32, "relu", False)
    assert rnn.return_sequences and not gru.return_sequences and gru.init == "xavier_uniform"
    text = arch.format_arch(model)
    assert "lstm(16,2,bidirectional=True,sequences=True)" in text
    again = arch.build(text, (28, 28))
    assert [m.spec() for m in again.layers] == [m.spec() for m in model.layers]


@pytest.mark.parametrize("text, words", [
    ("lstm(8) linear(10)", ["lstm(8)", "(1, 28, 28)", "rows"]),
    ("rows lstm(8) gru(8) linear(10)", ["gru(8)", "(8,)", "sequences=true"]),
    ("rows lstm(0) linear(10)", ["lstm(0)", "hidden_size"]),
    ("rows rnn(8,nonlinearity=sigmoid) linear(10)", ["rnn", "'tanh' or 'relu'"]),
    ("rows lstm(8,layers=100) linear(10)", ["num_layers", "at most 64"]),
    ("rows lstm(8,sequences=true) linear(10)", ["linear(10)", "(28, 8)", "flatten"]),
    ("flatten rows lstm(8) linear(10)", ["rows", "(784,)"]),
    ("rows lstm(8,bidirectional=2) linear(10)", ["bidirectional", "True or False"]),
])
def test_arch_refusals_are_one_line_naming_the_layer(text, words):
    with pytest.raises(ConfigError) as info:
        arch.build(text, (1, 28, 28), n_classes=10)
    assert_one_line(str(info.value))
    for word in words:
        assert word in str(info.value), (word, str(info.value))


def test_a_colour_image_is_not_read_as_rows():
    with pytest.raises(ConfigError, match=r"Rows reads a grey image .* \(3, 32, 32\)"):
        arch.build("rows lstm(8) linear(10)", (3, 32, 32))


def test_model_files_and_the_memory_estimate(tmp_path):
    from bareprop.experiment.memory import scratch_per_example

    model = arch.build("cols lstm(12,layers=2,bidirectional=true) linear(10)", (1, 14, 14),
                       seed=3)
    x = np.random.default_rng(0).normal(size=(3, 1, 14, 14)).astype(np.float32)
    model.eval()
    back = bp.load(bp.save(model, tmp_path / "m.npz")).eval()
    np.testing.assert_array_equal(back(x), model(x))
    assert back.layers[1].spec() == model.layers[1].spec()
    # the scratch estimate covers what a training step keeps
    model.train()
    model(x)
    model.backward(np.ones((3, 10), np.float32))
    kept = sum(a.size for a in model.layers[1]._ws.values())
    assert 0.5 * kept < 3 * scratch_per_example(model) <= 1.5 * kept
