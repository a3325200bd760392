"""Every layer and loss: float64 central differences against the hand-written backward."""
import numpy as np
import pytest

import bareprop as bp
from bareprop.core.gradcheck import numeric_grad, relative_error

# every activation the catalog declares (a new one is checked with nothing to add here),
# and the variants their arguments make
ACTIVATIONS = [e.cls for e in bp.core.catalog.entries()
               if e.public and issubclass(e.cls, bp.core.activations.Activation)]
ACTIVATIONS += [lambda: bp.LeakyReLU(0.2), lambda: bp.GELU("tanh")]
SHAPES = [(1, 3, 5, 2), (7, 5, 9, 3), (4, 1, 1, 2), (3, 11, 6, 7)]  # (N, D_in, H, C)


def _numeric_dx(layer, x, r):
    """d/dx of sum(layer(x) * r) by central differences."""
    return numeric_grad(lambda: float(np.sum(layer.forward(x) * r)), x)


@pytest.mark.parametrize("make_act", ACTIVATIONS)
@pytest.mark.parametrize("shape", SHAPES)
def test_network_gradients_match_central_differences(make_act, shape, rng):
    n, d, h, c = shape
    net = bp.Sequential(bp.Linear(d, h, rng=rng, dtype=np.float64), make_act(),
                        bp.Linear(h, c, rng=rng, dtype=np.float64))
    x = rng.normal(size=(n, d))
    y = rng.integers(0, c, size=n)
    errs = bp.gradcheck(net, bp.CrossEntropyLoss(), x, y)
    assert set(errs) == {"0.weight", "0.bias", "2.weight", "2.bias"}
    assert max(errs.values()) < 1e-6, errs


@pytest.mark.parametrize("make_act", ACTIVATIONS)
@pytest.mark.parametrize("shape", [(1, 4), (5, 7), (3, 1)])
def test_activation_input_gradient(make_act, shape, rng):
    act = make_act()
    x = rng.normal(size=shape) * 2
    r = rng.normal(size=shape)
    act.forward(x)
    analytic = act.backward(r.copy())
    assert relative_error(analytic, _numeric_dx(act, x, r)) < 1e-6


@pytest.mark.parametrize("shape", [(1, 3, 2), (6, 5, 4), (2, 1, 9)])
def test_linear_input_gradient(shape, rng):
    n, d, k = shape
    layer = bp.Linear(d, k, rng=rng, dtype=np.float64)
    x = rng.normal(size=(n, d))
    r = rng.normal(size=(n, k))
    layer.forward(x)
    assert relative_error(layer.backward(r), _numeric_dx(layer, x, r)) < 1e-6


@pytest.mark.parametrize("smoothing", [0.0, 0.1, 0.5])
@pytest.mark.parametrize("shape", [(1, 2), (5, 3), (8, 10)])
def test_cross_entropy_gradient(smoothing, shape, rng):
    loss = bp.CrossEntropyLoss(label_smoothing=smoothing)
    z = rng.normal(size=shape) * 3
    y = rng.integers(0, shape[1], size=shape[0])
    loss.forward(z, y)
    analytic = loss.backward()
    assert relative_error(analytic, numeric_grad(lambda: loss.forward(z, y), z)) < 1e-6


@pytest.mark.parametrize("shape", [(1, 1), (4, 3), (7, 10)])
def test_mse_gradient_through_a_network(shape, rng):
    n, c = shape
    net = bp.Sequential(bp.Linear(5, 6, rng=rng, dtype=np.float64), bp.Tanh(),
                        bp.Linear(6, c, rng=rng, dtype=np.float64))
    x = rng.normal(size=(n, 5))
    target = rng.normal(size=(n, c))
    errs = bp.gradcheck(net, bp.MSELoss(), x, target)
    assert max(errs.values()) < 1e-6, errs


def test_gradcheck_catches_a_wrong_backward(rng):
    """The checker itself can fail: a ReLU whose backward forgets the mask is caught."""

    class BrokenReLU(bp.ReLU):
        def backward(self, dout):
            return dout

    net = bp.Sequential(bp.Linear(4, 6, rng=rng, dtype=np.float64), BrokenReLU(),
                        bp.Linear(6, 3, rng=rng, dtype=np.float64))
    x = rng.normal(size=(5, 4))
    errs = bp.gradcheck(net, bp.CrossEntropyLoss(), x, rng.integers(0, 3, 5))
    assert errs["0.weight"] > 1e-3


def test_gradcheck_leaves_the_model_untouched(rng):
    net = bp.Sequential(bp.Linear(3, 2, rng=rng), bp.ReLU())
    before = net.state_dict()
    bp.gradcheck(net, bp.MSELoss(), rng.normal(size=(2, 3)), rng.normal(size=(2, 2)))
    after = net.state_dict()
    assert all(np.array_equal(before[k], after[k]) for k in before)
    assert net.dtype == np.float32


@pytest.mark.parametrize("layout", ["C", "F", "strided"])
def test_linear_layouts_same_values_and_dx_takes_the_input_layout(layout, rng):
    """y is returned feature-major (F-ordered, the transpose of a C-ordered W x^T); dx
    comes back in x's own layout, so Flatten's reshape of a C-ordered dx stays a view."""
    layer = bp.Linear(7, 5, rng=rng, dtype=np.float64)
    base = rng.normal(size=(6, 14))
    x = {"C": np.ascontiguousarray(base[:, :7]), "F": np.asfortranarray(base[:, :7]),
         "strided": base[:, ::2]}[layout]
    w, b = layer.weight.data, layer.bias.data
    y = layer.forward(x)
    assert y.flags.f_contiguous and not y.flags.c_contiguous
    np.testing.assert_allclose(y, x @ w.T + b, rtol=1e-13, atol=1e-13)
    r = rng.normal(size=(6, 5))
    dx = layer.backward(r)
    np.testing.assert_allclose(dx, r @ w, rtol=1e-13, atol=1e-13)
    assert dx.flags.c_contiguous == (layout == "C")
    np.testing.assert_allclose(layer.weight.grad, r.T @ x, rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(layer.bias.grad, r.sum(0), rtol=1e-13, atol=1e-13)


def test_linear_chain_passes_feature_major_arrays_without_copies(rng):
    """Linear -> ReLU -> Linear: the second layer's x^T is the first one's C-ordered
    output buffer itself, and its dx is F-ordered like that x."""
    net = bp.Sequential(bp.Linear(6, 4, rng=rng), bp.ReLU(inplace=True), bp.Linear(4, 3, rng=rng))
    x = rng.normal(size=(5, 6)).astype(np.float32)
    net(x)
    hidden = net[2]._x
    assert hidden.flags.f_contiguous and hidden.T.flags.c_contiguous
    owner = hidden.base                              # the first Linear's (4, N) y^T buffer
    assert owner is not None and owner.shape == (4, 5) and owner.flags.c_contiguous
    dx = net[2].input_grad(np.ones((5, 3), np.float32))
    assert dx.flags.f_contiguous and not dx.flags.c_contiguous
