"""The Keras twin of a recurrent model: a GRU trains as bareprop's (Keras keeps both of its
biases), so its weights come back layer by layer in bareprop's names; an LSTM or RNN with
biases is refused in one line (Keras trains one bias where bareprop trains two)."""
import numpy as np
import pytest

import bareprop as bp
from bareprop.errors import ConfigError
from bareprop.experiment import arch


@pytest.fixture(autouse=True)
def _torch_backend(monkeypatch):
    monkeypatch.setenv("KERAS_BACKEND", "torch")        # as the twin runs it
    pytest.importorskip("keras")


def _twin(text):
    from bareprop.reference.keras_twin import KerasTwin

    model = arch.build(text, (1, 6, 5), n_classes=10, dtype=np.float32, seed=0)
    return model, KerasTwin(model, bp.SGD(model.parameters(), lr=0.1), bp.CrossEntropyLoss())


def test_a_gru_twin_gives_back_every_parameter_in_bareprops_layout():
    model, twin = _twin("rows gru(4,bidirectional=true) linear(10)")
    back = twin.weights()
    ours = [p.data for p in model.parameters()]
    assert [w.shape for w in back] == [w.shape for w in ours]
    for got, want in zip(back, ours):
        np.testing.assert_allclose(got, want, rtol=0, atol=0)


def test_a_gru_twin_trains_like_bareprop():
    model, twin = _twin("rows gru(4) linear(10)")
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((8, 1, 6, 5)).astype(np.float32), rng.integers(0, 10, 8)
    opt = bp.SGD(model.parameters(), lr=0.1)
    loss_fn = bp.CrossEntropyLoss()
    for _ in range(3):
        twin.step(x, y, opt.param_groups)
        model.zero_grad()
        loss_fn(model(x), y)
        model.backward(loss_fn.backward(), need_dx=False)
        opt.step()
    for got, p in zip(twin.weights(), model.parameters()):
        np.testing.assert_allclose(got, p.data, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("text", ["rows lstm(4) linear(10)", "rows rnn(4,layers=2) linear(10)"])
def test_an_lstm_or_rnn_with_biases_is_refused_in_one_line(text):
    model, twin = _twin(text)              # its forward is Keras' own: built
    x = np.zeros((2, 1, 6, 5), np.float32)
    with pytest.raises(ConfigError) as exc:          # but it cannot train as bareprop
        twin.step(x, np.zeros(2, int), bp.SGD(model.parameters(), lr=0.1).param_groups)
    msg = str(exc.value)
    assert "\n" not in msg and "--framework torch" in msg and "bias" in msg
    assert ("LSTM" if "lstm" in text else "RNN") in msg


def test_without_biases_an_lstm_twin_is_built():
    model, twin = _twin("rows lstm(4,bias=false) linear(10)")
    assert len(twin.weights()) == len(model.parameters())
