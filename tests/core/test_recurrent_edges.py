"""Edges of the recurrent layers found in review: dx when a hook steps the layer between
its gradients and its dx (the notebook's update order), scratch that a training step
reuses instead of reallocating, inputs that saturate every gate, and model files that
declare sizes no machine could build."""
import numpy as np
import pytest

import bareprop as bp
from bareprop.archive import write_archive
from bareprop.errors import ModelFileError

F64 = np.float64


def _make(kind):
    if kind == "lstm2":
        return bp.LSTM(4, 3, num_layers=2, rng=0, dtype=F64)
    if kind == "gru_bi":
        return bp.GRU(4, 3, bidirectional=True, return_sequences=True, rng=0, dtype=F64)
    return bp.RNN(4, 3, nonlinearity="relu", bias=False, rng=0, dtype=F64)


@pytest.mark.parametrize("kind", ["lstm2", "gru_bi", "rnn_relu"])
def test_dx_is_the_forward_weights_gradient_when_a_hook_steps_the_layer(kind, rng):
    """Sequential runs accumulate_grads, then the layer hook (the notebook order steps
    the layer there), then input_grad. The deltas went back through time with the
    forward's weights, so dx must use the forward's W_ih too (as MultiheadAttention's
    and the encoder block's dx do), not a mix of old deltas and new input weights."""
    x = rng.normal(size=(2, 5, 4))
    ref = _make(kind)
    y = ref(x)
    dout = rng.normal(size=y.shape)
    want = ref.backward(dout)
    layer = _make(kind)
    layer(x)
    layer.accumulate_grads(dout)
    for p in layer.parameters():                       # what UpdateAsYouGo.after does
        p.data -= 0.5 * p.grad
    np.testing.assert_allclose(layer.input_grad(dout), want, rtol=1e-13, atol=1e-15)


def test_the_notebook_order_through_sequential_gives_the_forward_weights_dx(rng):
    """The same through Sequential.backward with a hook that steps each layer: the
    lower LSTM's gradients are those of the standard order (its delta came from the
    upper LSTM with the forward's weights)."""
    def net():
        return bp.Sequential(bp.LSTM(4, 3, return_sequences=True, rng=1, dtype=F64),
                             bp.LSTM(3, 2, rng=2, dtype=F64), input_shape=(5, 4))

    class Step:
        def before(self, d):
            return d

        def after(self, layer):
            for p in layer.parameters():
                p.data -= 0.3 * p.grad

    x, dout = rng.normal(size=(3, 5, 4)), rng.normal(size=(3, 2))
    standard, hooked = net(), net()
    standard(x)
    standard.backward(dout)
    hooked(x)
    hooked.backward(dout, layer_hook=Step())
    for (name, p), q in zip(hooked.layers[0].named_parameters(), standard.layers[0].parameters()):
        np.testing.assert_allclose(p.grad, q.grad, rtol=1e-12, atol=1e-15, err_msg=name)


@pytest.mark.parametrize("cls", [bp.RNN, bp.LSTM, bp.GRU])
def test_a_second_training_step_reuses_every_scratch_array(cls):
    """Training keeps its scratch between steps of the same shape: no buffer is
    reallocated (a forward and a backward asking for one name in two shapes would
    reallocate it twice a step)."""
    layer = cls(3, 4, num_layers=2, bidirectional=True, rng=0)
    x = np.ones((2, 5, 3), np.float32)
    for step in range(2):
        y = layer(x)
        layer.backward(np.ones_like(y))
        if step == 0:
            before = {k: id(v) for k, v in layer._ws.items()}
    assert {k: id(v) for k, v in layer._ws.items()} == before


@pytest.mark.parametrize("cls", [bp.RNN, bp.LSTM, bp.GRU])
@pytest.mark.parametrize("dtype", [np.float32, F64])
def test_saturated_gates_stay_finite(cls, dtype, rng):
    """Inputs of 1e6 drive every sigmoid to 0 or 1 and every tanh to +-1: no overflow
    warning turns into NaN (e^-z = inf is the sigmoid's 0), forward or backward, batch 1,
    both directions."""
    layer = cls(4, 5, bidirectional=True, return_sequences=True, rng=0, dtype=dtype)
    x = (rng.normal(size=(1, 6, 4)) * 1e6).astype(dtype)
    with np.errstate(invalid="raise", divide="raise"):     # 0 * inf, inf - inf, x / 0
        y = layer(x)
        dx = layer.backward(np.ones_like(y))
    assert np.isfinite(y).all() and np.isfinite(dx).all()
    assert all(np.isfinite(p.grad).all() for p in layer.parameters())


def test_float64_input_into_a_float32_layer_computes_in_float32(rng):
    layer = bp.LSTM(4, 3, rng=0)
    x = rng.normal(size=(2, 5, 4))
    y = layer(x)
    assert y.dtype == np.float32
    np.testing.assert_array_equal(y, layer(x.astype(np.float32)))
    assert layer.backward(np.ones(y.shape)).dtype == np.float32


def _lstm_file(tmp_path, **spec):
    layer = {"type": "LSTM", "input_size": 28, "hidden_size": 8, "num_layers": 1,
             "bias": True, "batch_first": True, "bidirectional": False,
             "return_sequences": False, **spec}
    meta = {"format": "bareprop-model", "version": 2, "dtype": "float32",
            "architecture": {"type": "Sequential", "layers": [layer]},
            "input_shape": [28, 28], "classes": None, "scaling": None, "extra": {}}
    path = tmp_path / "m.npz"
    write_archive(path, meta, {"filler": np.zeros(4096, np.float32)})
    return path


@pytest.mark.parametrize("spec, words", [
    ({"hidden_size": 10**6}, ["declares", "weights"]),
    ({"num_layers": 10**6}, ["num_layers", "at most 64"]),
    ({"hidden_size": 8.0}, ["hidden_size", "positive integer"]),
    ({"hidden_size": True}, ["hidden_size", "positive integer"]),
    ({"bidirectional": "false"}, ["bidirectional", "True or False"]),
    ({"type": "RNN", "nonlinearity": "sigmoid"}, ["'tanh' or 'relu'"]),
])
def test_crafted_model_files_are_refused_in_one_line(tmp_path, spec, words):
    with pytest.raises(ModelFileError) as info:
        bp.load(_lstm_file(tmp_path, **spec))
    msg = str(info.value)
    assert "\n" not in msg
    for w in words:
        assert w in msg, msg
