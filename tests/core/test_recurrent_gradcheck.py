"""RNN (tanh and relu), LSTM and GRU: dx and every parameter gradient of the hand-written
backpropagation through time against float64 central differences, over T = 1, 2 and 7
steps, one and two stacked layers, one and two directions, the final state or every
step's output, batches of 1 to 3 and odd sizes; then the layout and bias variants, a
whole model through a loss, and the Rows/Cols adapters feeding a recurrent layer.

Derivations: docs/backprop.md, "Recurrent networks".
"""
import numpy as np
import pytest

import bareprop as bp

GRAD_TOL = 1e-6     # central differences, as tests/core/test_core_gradcheck.py
F64 = np.float64
CELLS = {"rnn_tanh": lambda **kw: bp.RNN(nonlinearity="tanh", **kw),
         "rnn_relu": lambda **kw: bp.RNN(nonlinearity="relu", **kw),
         "lstm": lambda **kw: bp.LSTM(**kw), "gru": lambda **kw: bp.GRU(**kw)}
#: T -> batch size: T = 2 runs a batch of one
BATCH = {1: 2, 2: 1, 7: 3}


class Projection:
    """L = sum(y * r) for a fixed random r: dL/dy = r, so checking L's gradient checks
    the layer's vector-Jacobian product J^T r for a random vector."""

    def forward(self, y, r):
        self._r = r
        return float(np.sum(y * r))

    def backward(self):
        return self._r


def assert_gradcheck(layer, x, rng):
    """dx and every parameter gradient of ``layer`` against central differences."""
    r = rng.normal(size=layer.forward(x).shape)
    errs = bp.gradcheck(layer, Projection(), x, r, wrt_input=True)
    assert set(errs) == {"input"} | {name for name, _ in layer.named_parameters()}
    assert max(errs.values()) < GRAD_TOL, errs


@pytest.mark.parametrize("sequences", [False, True], ids=["final", "sequences"])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("steps", [1, 2, 7])
@pytest.mark.parametrize("cell", list(CELLS))
def test_bptt_matches_central_differences(cell, steps, layers, bidirectional, sequences):
    rng = np.random.default_rng(steps * 100 + layers * 10 + bidirectional * 2 + sequences)
    layer = CELLS[cell](input_size=3, hidden_size=3, num_layers=layers,
                        bidirectional=bidirectional, return_sequences=sequences,
                        rng=rng, dtype=F64)
    x = rng.normal(size=(BATCH[steps], steps, 3))
    assert_gradcheck(layer, x, rng)


@pytest.mark.parametrize("cell", list(CELLS))
def test_time_major_input_without_bias(cell):
    """batch_first=False takes (T, N, F); bias=False has only the weights."""
    rng = np.random.default_rng(5)
    for bias in (False, True):
        layer = CELLS[cell](input_size=5, hidden_size=3, num_layers=2, bias=bias,
                            batch_first=False, bidirectional=True, return_sequences=True,
                            rng=rng, dtype=F64)
        assert len(layer.parameters()) == 2 * 2 * (4 if bias else 2)
        assert_gradcheck(layer, rng.normal(size=(4, 2, 5)), rng)


@pytest.mark.parametrize("arch", ["rows lstm(5,layers=2) linear(3)",
                                  "cols gru(4,bidirectional=true) linear(3)",
                                  "rows rnn(4,sequences=true) lstm(3) linear(3)"])
def test_whole_models_through_cross_entropy(arch):
    """Sequences made from images, recurrent layers stacked in a Sequential (a
    return_sequences layer feeding the next), a Linear on top, the loss on the logits."""
    rng = np.random.default_rng(3)
    model = bp.experiment.arch.build(arch, (1, 6, 5), dtype=F64, seed=2)
    x = rng.normal(size=(3, 1, 6, 5))
    y = rng.integers(0, 3, 3)
    errs = bp.gradcheck(model, bp.CrossEntropyLoss(), x, y, wrt_input=True)
    assert max(errs.values()) < GRAD_TOL, errs
