"""Rows and Cols: an image read as a sequence of its rows or of its columns. Values,
views, the backward as the inverse rearrangement (central differences and PyTorch),
their shapes and refusals."""
import numpy as np
import pytest
import torch

import bareprop as bp
from bareprop.core.gradcheck import numeric_grad, relative_error
from bareprop.errors import ConfigError
from bareprop.reference.torch_twin import torch_module


@pytest.mark.parametrize("shape", [(2, 1, 5, 3), (2, 5, 3)])
def test_rows_and_cols_values(shape):
    x = np.random.default_rng(0).normal(size=shape)
    img = x.reshape(2, 5, 3)
    rows, cols = bp.Rows()(x), bp.Cols()(x)
    np.testing.assert_array_equal(rows, img)                       # step t = row t
    np.testing.assert_array_equal(cols, img.transpose(0, 2, 1))    # step t = column t
    assert np.shares_memory(rows, x) and np.shares_memory(cols, x)   # views, no copy
    assert bp.Rows().output_shape(shape[1:]) == (5, 3)
    assert bp.Cols().output_shape(shape[1:]) == (3, 5)


@pytest.mark.parametrize("cls", [bp.Rows, bp.Cols])
@pytest.mark.parametrize("shape", [(2, 1, 4, 3), (1, 4, 3)])
def test_backward_is_the_inverse_rearrangement(cls, shape):
    rng = np.random.default_rng(1)
    layer = cls()
    x = rng.normal(size=shape)
    r = rng.normal(size=layer(x).shape)
    dx = layer.backward(r)
    assert dx.shape == x.shape
    numeric = numeric_grad(lambda: float(np.sum(layer.forward(x) * r)), x)
    assert relative_error(dx, numeric) < 1e-9
    tx = torch.tensor(x, requires_grad=True)
    ty = torch_module(layer)(tx)
    np.testing.assert_array_equal(ty.detach().numpy(), layer(x))
    (ty * torch.from_numpy(r)).sum().backward()
    np.testing.assert_array_equal(tx.grad.numpy(), dx)


@pytest.mark.parametrize("cls", [bp.Rows, bp.Cols])
def test_only_grey_images_are_read_as_sequences(cls):
    for shape, word in [((3, 8, 8), "3 channels"), ((64,), "flat features"),
                        ((1, 2, 8, 8), "4 axes")]:
        with pytest.raises(ConfigError, match=word) as info:
            cls().output_shape(shape)
        assert cls.__name__ in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(ValueError, match=r"\(N, 1, H, W\) or \(N, H, W\)"):
        cls()(np.zeros((2, 3, 8, 8)))


def test_rows_then_lstm_reads_top_to_bottom():
    """The LSTM's first step sees the top row: changing only the bottom row changes the
    final state, and a return_sequences output's first step sees only the top row."""
    model = bp.Sequential(bp.Rows(), bp.LSTM(4, 3, return_sequences=True, rng=0,
                                             dtype=np.float64), input_shape=(1, 5, 4))
    x = np.random.default_rng(2).normal(size=(1, 1, 5, 4))
    y = model(x)
    x2 = x.copy()
    x2[0, 0, -1] += 1.0                                           # the bottom row
    y2 = model(x2)
    np.testing.assert_array_equal(y[:, :-1], y2[:, :-1])          # steps before it: same
    assert not np.allclose(y[:, -1], y2[:, -1])
