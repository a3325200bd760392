"""PyTorch twins: copied weights, identical batches, 50 optimizer steps, float64.

Every loss and every parameter must agree to 1e-10 relative: not "close", the same
arithmetic up to round-off.
"""
import numpy as np
import pytest
import torch

import bareprop as bp
from bareprop.reference.torch_twin import torch_module

from twins import STEPS, batches, deep_net, rel, run_twins

def notebook_net(rng):
    return bp.Sequential(bp.Linear(784, 128, init="notebook", rng=rng, dtype=np.float64),
                         bp.ReLU(),
                         bp.Linear(128, 10, init="notebook", rng=rng, dtype=np.float64))


OPTIMIZERS = {
    "sgd": lambda p: bp.SGD(p, lr=0.05),
    "sgd_momentum_dampening": lambda p: bp.SGD(p, lr=0.05, momentum=0.9, dampening=0.1),
    "sgd_nesterov_wd": lambda p: bp.SGD(p, lr=0.05, momentum=0.9, nesterov=True,
                                        weight_decay=1e-3),
    "adam": lambda p: bp.Adam(p, lr=1e-3),
    "adam_amsgrad_wd": lambda p: bp.Adam(p, lr=1e-3, betas=(0.8, 0.99), weight_decay=1e-2,
                                         amsgrad=True),
    "adamw": lambda p: bp.AdamW(p, lr=1e-3, weight_decay=0.1),
    "adamw_amsgrad": lambda p: bp.AdamW(p, lr=2e-3, amsgrad=True),
    "rmsprop": lambda p: bp.RMSprop(p, lr=1e-3),
    "rmsprop_centered_momentum": lambda p: bp.RMSprop(p, lr=1e-3, centered=True, momentum=0.9,
                                                      weight_decay=1e-3),
    "adagrad": lambda p: bp.Adagrad(p, lr=1e-2, lr_decay=1e-3, weight_decay=1e-3,
                                    initial_accumulator_value=0.1),
}


@pytest.mark.parametrize("opt_name", list(OPTIMIZERS))
@pytest.mark.parametrize("net_name", ["notebook", "deep"])
def test_fifty_steps_equal_torch(net_name, opt_name):
    rng = np.random.default_rng(7)
    if net_name == "notebook":
        model, data = notebook_net(rng), batches(rng, 784, 10, scale=0.5)
    else:
        model, data = deep_net(rng), batches(rng, 20, 5)
    loss_gap, param_gap = run_twins(model, OPTIMIZERS[opt_name], data)
    assert loss_gap < 1e-10
    assert param_gap < 1e-10


def test_label_smoothing_matches_torch():
    rng = np.random.default_rng(3)
    model = deep_net(rng)
    gaps = run_twins(model, OPTIMIZERS["adam"], batches(rng, 20, 5),
                     loss_fn=bp.CrossEntropyLoss(label_smoothing=0.1),
                     t_loss=torch.nn.CrossEntropyLoss(label_smoothing=0.1))
    assert max(gaps) < 1e-10


def test_mse_matches_torch():
    rng = np.random.default_rng(4)
    model = bp.Sequential(bp.Linear(6, 8, rng=rng, dtype=np.float64), bp.Tanh(),
                          bp.Linear(8, 3, rng=rng, dtype=np.float64))
    data = [(rng.normal(size=(10, 6)), rng.normal(size=(10, 3))) for _ in range(STEPS)]
    gaps = run_twins(model, OPTIMIZERS["sgd_nesterov_wd"], data, loss_fn=bp.MSELoss(),
                     t_loss=torch.nn.MSELoss())
    assert max(gaps) < 1e-10


def test_twin_gap_is_detected():
    """The comparison can fail: a different learning rate on one side is caught."""
    rng = np.random.default_rng(5)
    model = deep_net(rng)

    def skew(i, opt, topt):
        if i == 10:
            opt.lr *= 1.01

    _, param_gap = run_twins(model, OPTIMIZERS["sgd"], batches(rng, 20, 5), steps_hook=skew)
    assert param_gap > 1e-8


def backward_both(seed):
    """deep_net and its torch twin after one backward on the same batch (float64)."""
    rng = np.random.default_rng(seed)
    model = deep_net(rng)
    tmodel = torch_module(model)
    x, y = rng.normal(size=(9, 20)), rng.integers(0, 5, 9)
    loss_fn = bp.CrossEntropyLoss()
    loss_fn(model(x), y)
    model.backward(loss_fn.backward())
    torch.nn.CrossEntropyLoss()(tmodel(torch.from_numpy(x)), torch.from_numpy(y)).backward()
    return model, tmodel


def test_gradients_equal_torch_float64():
    model, tmodel = backward_both(8)
    for p, tp in zip(model.parameters(), tmodel.parameters()):
        assert rel(p.grad, tp.grad.numpy()) < 1e-12


@pytest.mark.parametrize("max_norm,norm_type", [(0.1, 2.0), (100.0, 2.0), (0.05, float("inf")),
                                                (0.3, 1.0)])
def test_clip_grad_norm_matches_torch(max_norm, norm_type):
    model, tmodel = backward_both(9)
    total = bp.clip_grad_norm_(model.parameters(), max_norm, norm_type)
    ttotal = torch.nn.utils.clip_grad_norm_(tmodel.parameters(), max_norm, norm_type)
    assert abs(total - ttotal.item()) <= 1e-12 * ttotal.item()
    for p, tp in zip(model.parameters(), tmodel.parameters()):
        assert rel(p.grad, tp.grad.numpy()) < 1e-12


def test_clip_grad_value_matches_torch():
    model, tmodel = backward_both(10)
    bp.clip_grad_value_(model.parameters(), 1e-6)
    torch.nn.utils.clip_grad_value_(tmodel.parameters(), 1e-6)
    for p, tp in zip(model.parameters(), tmodel.parameters()):
        assert rel(p.grad, tp.grad.numpy()) < 1e-12
        assert np.abs(p.grad).max() <= 1e-6
    assert any(np.abs(p.grad).max() == 1e-6 for p in model.parameters())  # it did clip
