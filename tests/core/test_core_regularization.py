"""Dropout, BatchNorm1d, max-norm: gradient checks, torch twins, behaviour."""
import numpy as np
import pytest
import torch

import bareprop as bp
from bareprop.optim.constraints import max_norm_
from bareprop.reference.torch_twin import torch_module

from twins import rel, run_twins


def test_dropout_train_and_eval():
    d = bp.Dropout(0.25, rng=0)
    x = np.ones((400, 50), np.float32)
    y = d(x)
    kept = y != 0
    assert abs(kept.mean() - 0.75) < 0.02
    np.testing.assert_allclose(y[kept], 1 / 0.75, rtol=1e-6)
    assert y.dtype == np.float32
    g = d.backward(np.ones_like(x))
    np.testing.assert_array_equal(g, y)  # same mask, same scale
    d.eval()
    assert d(x) is x and d.backward(x) is x


def test_dropout_is_seeded():
    a, b = bp.Dropout(0.5, rng=3), bp.Dropout(0.5, rng=3)
    x = np.ones((10, 10))
    np.testing.assert_array_equal(a(x), b(x))
    assert not np.array_equal(a(x), b.forward(x) * 0 + bp.Dropout(0.5, rng=4)(x))


@pytest.mark.parametrize("training", [True, False])
def test_gradcheck_with_batchnorm_and_dropout(training, rng):
    net = bp.Sequential(bp.Linear(5, 7, bias=False, rng=rng, dtype=np.float64),
                        bp.BatchNorm1d(7, dtype=np.float64), bp.Tanh(), bp.Dropout(0.3, rng=1),
                        bp.Linear(7, 3, rng=rng, dtype=np.float64))
    net[1].running_mean[:] = rng.normal(size=7)
    net[1].running_var[:] = rng.random(7) + 0.5
    net.train(training)
    errs = bp.gradcheck(net, bp.CrossEntropyLoss(), rng.normal(size=(6, 5)),
                        rng.integers(0, 3, 6))
    assert max(errs.values()) < 1e-6, errs


def test_batchnorm_twin_fifty_steps_with_running_stats():
    rng = np.random.default_rng(2)
    model = bp.Sequential(bp.Linear(12, 9, rng=rng, dtype=np.float64),
                          bp.BatchNorm1d(9, momentum=0.2, dtype=np.float64), bp.ReLU(),
                          bp.Linear(9, 4, rng=rng, dtype=np.float64))
    data = [(rng.normal(size=(16, 12)) * 3 + 1, rng.integers(0, 4, 16)) for _ in range(50)]
    keep = {}
    gaps = run_twins(model, lambda p: bp.SGD(p, lr=0.05, momentum=0.9), data, keep=keep)
    assert max(gaps) < 1e-10
    tbn = keep["tmodel"][1]
    assert rel(model[1].running_mean, tbn.running_mean.numpy()) < 1e-10
    assert rel(model[1].running_var, tbn.running_var.numpy()) < 1e-10


def test_batchnorm_eval_matches_torch_and_running_stats():
    rng = np.random.default_rng(5)
    bn = bp.BatchNorm1d(6, dtype=np.float64)
    tbn = torch_module(bn)
    for _ in range(5):
        x = rng.normal(size=(8, 6)) * 2 + 3
        bn(x)
        tbn(torch.from_numpy(x))
    assert rel(bn.running_mean, tbn.running_mean.numpy()) < 1e-12
    assert rel(bn.running_var, tbn.running_var.numpy()) < 1e-12
    bn.eval()
    tbn.eval()
    x = rng.normal(size=(4, 6))
    assert rel(bn(x), tbn(torch.from_numpy(x)).detach().numpy()) < 1e-12
    state = bn.state_dict()
    assert set(state) == {"weight", "bias", "running_mean", "running_var"}


def test_batchnorm_refuses_batch_of_one():
    with pytest.raises(ValueError, match="more than 1 example"):
        bp.BatchNorm1d(3)(np.ones((1, 3), np.float32))


def test_max_norm_caps_rows_only_when_needed():
    w = np.array([[3.0, 4.0], [0.3, 0.4], [0.0, 0.0]], np.float32)
    max_norm_([w], 2.0)
    np.testing.assert_allclose(np.linalg.norm(w, axis=1), [2.0, 0.5, 0.0], rtol=1e-6)
    np.testing.assert_allclose(w[0], [1.2, 1.6], rtol=1e-6)
    assert w.dtype == np.float32
