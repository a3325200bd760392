"""LayerNorm: dx, dgamma and dbeta against float64 central differences and against
torch.nn.LayerNorm, a hand-worked row, its state_dict in torch's names, eval = train,
and its refusals. Derivation: docs/backprop.md, "Attention" (LayerNorm's backward)."""
import numpy as np
import pytest
import torch

import bareprop as bp
from bareprop.errors import ConfigError

from layercheck import assert_gradcheck, assert_matches_torch

F64 = np.float64


def _random_affine(ln, rng):
    """gamma and beta away from (1, 0), so their gradients are not special cases."""
    for p in ln.parameters():
        p.data[...] = rng.normal(size=p.shape)
    return ln


CASES = [  # (normalized_shape, input shape, kwargs)
    (5, (3, 5), {}),
    (7, (2, 4, 7), {}),                       # tokens (N, T, E)
    ((4, 3), (2, 5, 4, 3), {}),               # two trailing axes
    (6, (1, 1, 6), {"eps": 1e-3}),            # batch 1, one token
    (5, (3, 4, 5), {"elementwise_affine": False}),
    (5, (3, 4, 5), {"bias": False}),
]


@pytest.mark.parametrize("shape, x_shape, kw", CASES)
def test_layernorm_gradcheck(shape, x_shape, kw, rng):
    ln = _random_affine(bp.LayerNorm(shape, dtype=F64, **kw), rng)
    assert_gradcheck(ln, rng.normal(size=x_shape) * 3 + 1, rng)


@pytest.mark.parametrize("shape, x_shape, kw", CASES)
def test_layernorm_matches_torch(shape, x_shape, kw, rng):
    ln = _random_affine(bp.LayerNorm(shape, dtype=F64, **kw), rng)
    twin = assert_matches_torch(ln, rng.normal(size=x_shape) * 3 + 1, rng)
    assert isinstance(twin, torch.nn.LayerNorm)


def test_a_hand_worked_row():
    """x = (1, 2, 3, 6): mu = 3, var = (4 + 1 + 0 + 9) / 4 = 3.5; with eps = 0,
    xh = (x - 3) / sqrt(3.5). For dout = (1, 0, 0, 0) and gamma = 1:
    dx = (1/sqrt 3.5) (e1 - 1/4 - xh * xh_1 / 4)."""
    ln = bp.LayerNorm(4, eps=1e-300, dtype=F64)
    x = np.array([[1.0, 2.0, 3.0, 6.0]])
    xh = (x - 3) / np.sqrt(3.5)
    np.testing.assert_allclose(ln(x), xh, rtol=1e-14)
    dx = ln.backward(np.array([[1.0, 0, 0, 0]]))
    want = (np.array([1.0, 0, 0, 0]) - 0.25 - xh * xh[0, 0] / 4) / np.sqrt(3.5)
    np.testing.assert_allclose(dx, want, rtol=1e-13)
    np.testing.assert_allclose(ln.weight.grad, [xh[0, 0], 0, 0, 0], atol=1e-15)
    np.testing.assert_allclose(ln.bias.grad, [1.0, 0, 0, 0])


def test_rows_come_out_with_zero_mean_and_unit_variance_and_train_equals_eval(rng):
    ln = bp.LayerNorm(64)
    x = (rng.normal(size=(8, 16, 64)) * 50 + 7).astype(np.float32)
    y = ln(x)
    assert y.dtype == np.float32 and y.shape == x.shape
    np.testing.assert_allclose(y.mean(axis=-1), 0, atol=1e-5)
    np.testing.assert_allclose(y.std(axis=-1), 1, atol=1e-3)
    np.testing.assert_array_equal(ln.eval()(x), y)          # no running statistics


def test_state_dict_round_trips_through_torch_both_ways(rng):
    ln = _random_affine(bp.LayerNorm((3, 4), dtype=F64), rng)
    t = torch.nn.LayerNorm((3, 4), dtype=torch.float64)
    t.load_state_dict({k: torch.from_numpy(v) for k, v in ln.state_dict().items()}, strict=True)
    with torch.no_grad():
        t.weight.mul_(2)
    back = bp.LayerNorm((3, 4), dtype=F64)
    back.load_state_dict({k: v.numpy() for k, v in t.state_dict().items()})
    np.testing.assert_array_equal(back.weight.data, 2 * ln.weight.data)
    assert list(ln.state_dict()) == list(t.state_dict()) == ["weight", "bias"]


def test_refusals_name_the_layer_and_the_shapes():
    with pytest.raises(ConfigError, match=r"LayerNorm\(64\) normalises trailing axes \(64,\), "
                                          r"but its input has shape \(16, 32\)"):
        bp.LayerNorm(64).output_shape((16, 32))
    with pytest.raises(ValueError, match=r"LayerNorm\(8\) expects inputs of shape "
                                         r"\(N, \.\.\., 8\), got \(2, 5\)"):
        bp.LayerNorm(8)(np.zeros((2, 5), np.float32))
    with pytest.raises(ConfigError, match="normalized_shape must be a positive integer"):
        bp.LayerNorm((4, 0))
    with pytest.raises(ConfigError, match="eps > 0"):
        bp.LayerNorm(4, eps=0)


@pytest.mark.parametrize("affine", [True, False])
def test_an_in_place_relu_after_it_leaves_its_backward_right(affine, rng):
    """--arch makes a ReLU after a LayerNorm work in place (its output is fresh): the
    normalised x it keeps for the backward must not be that output."""
    ln = bp.LayerNorm(6, elementwise_affine=affine, dtype=F64)
    net = bp.Sequential(ln, bp.ReLU(inplace=True), bp.Linear(6, 3, rng=0, dtype=F64))
    assert ln.fresh_output
    errs = bp.gradcheck(net, bp.CrossEntropyLoss(), rng.normal(size=(4, 6)),
                        np.array([0, 1, 2, 1]), wrt_input=True)
    assert max(errs.values()) < 1e-6, errs
