"""Checks one layer's backward three ways against: float64 central differences, and
PyTorch autograd on its twin (the catalog's, bareprop's state_dict loaded strictly)."""
import numpy as np

import bareprop as bp

GRAD_TOL = 1e-6     # central differences (tests/core/test_core_gradcheck.py)
TORCH_TOL = 1e-12   # the same arithmetic, up to round-off


class Projection:
    """L = sum(y * r) for a fixed random r: dL/dy = r, so a gradient check of L checks the
    vector-Jacobian product J^T r of the layer for a random vector r."""

    def forward(self, y, r):
        self._r = r
        return float(np.sum(y * r))

    def backward(self):
        return self._r


def random_out(layer, x, rng):
    return rng.normal(size=(x.shape[0], *layer.output_shape(x.shape[1:])))


def gradcheck_errors(layer, x, rng) -> dict:
    """{name: relative error} of dx and every parameter gradient of ``layer`` at ``x``."""
    errs = bp.gradcheck(layer, Projection(), x, random_out(layer, x, rng), wrt_input=True)
    assert set(errs) == {"input"} | {name for name, _ in layer.named_parameters()}
    return errs


def assert_gradcheck(layer, x, rng):
    errs = gradcheck_errors(layer, x, rng)
    assert max(errs.values()) < GRAD_TOL, errs


def rel(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b), initial=0.0)) / max(float(np.max(np.abs(b), initial=0)),
                                                           1e-300)


def assert_matches_torch(layer, x, rng, tol=TORCH_TOL, train=True):
    """The layer's output, dx and every parameter gradient equal its PyTorch twin's (float64,
    dropout masks replayed); returns the twin."""
    import torch
    from bareprop.reference.torch_twin import torch_module

    layer.train(train)
    y = layer.forward(x)
    twin = torch_module(layer, replay_masks=True).train(train)
    tx = torch.tensor(x, requires_grad=True)
    ty = twin(tx)
    assert ty.shape == y.shape and rel(y, ty.detach().numpy()) < tol
    r = rng.normal(size=y.shape)
    layer.zero_grad()
    dx = layer.backward(r)
    (ty * torch.from_numpy(r)).sum().backward()
    assert rel(dx, tx.grad.numpy()) < tol
    grads = dict(twin.named_parameters())
    assert list(grads) == [name for name, _ in layer.named_parameters()]
    for name, p in layer.named_parameters():
        assert rel(p.grad, grads[name].grad.numpy()) < tol, name
    return twin
