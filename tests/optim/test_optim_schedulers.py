"""Learning-rate schedules against torch.optim.lr_scheduler, step by step, and in training."""
import numpy as np
import pytest
import torch

import bareprop as bp
from bareprop.optim import lr_scheduler as S

from twins import batches, deep_net, run_scheduled_twins

T = torch.optim.lr_scheduler

CASES = {
    "step": (lambda o: S.StepLR(o, 7, 0.5), lambda o: T.StepLR(o, 7, 0.5)),
    "multistep": (lambda o: S.MultiStepLR(o, [5, 12, 30], 0.3),
                  lambda o: T.MultiStepLR(o, [5, 12, 30], 0.3)),
    "exponential": (lambda o: S.ExponentialLR(o, 0.93), lambda o: T.ExponentialLR(o, 0.93)),
    "cosine": (lambda o: S.CosineAnnealingLR(o, 20, 1e-3),
               lambda o: T.CosineAnnealingLR(o, 20, 1e-3)),
    "linear": (lambda o: S.LinearLR(o, 0.1, 1.0, 8), lambda o: T.LinearLR(o, 0.1, 1.0, 8)),
    "onecycle_cos": (lambda o: S.OneCycleLR(o, 1.0, 61), lambda o: T.OneCycleLR(o, 1.0, total_steps=61)),
    "onecycle_linear": (lambda o: S.OneCycleLR(o, 0.5, 61, pct_start=0.25, anneal_strategy="linear",
                                               div_factor=10, final_div_factor=100),
                        lambda o: T.OneCycleLR(o, 0.5, total_steps=61, pct_start=0.25,
                                               anneal_strategy="linear", div_factor=10,
                                               final_div_factor=100)),
}


def _pair(make, tmake, opt="sgd", steps=60, metric=None):
    params = bp.Linear(2, 2, rng=0).parameters()
    tparams = [torch.nn.Parameter(torch.zeros(2))]
    if opt == "sgd":
        o, to = bp.SGD(params, lr=0.1, momentum=0.9), torch.optim.SGD(tparams, lr=0.1, momentum=0.9)
    else:
        o, to = bp.Adam(params, lr=0.1), torch.optim.Adam(tparams, lr=0.1)
    s, ts = make(o), tmake(to)
    lrs, tlrs, moms, tmoms = [], [], [], []
    for i in range(steps):
        lrs.append(o.lr)
        tlrs.append(to.param_groups[0]["lr"])
        h, g = o.param_groups[0], to.param_groups[0]
        moms.append(h["momentum"] if opt == "sgd" else h["betas"][0])
        tmoms.append(g["momentum"] if opt == "sgd" else g["betas"][0])
        to.step()
        if metric:
            s.step(metric(i))
            ts.step(metric(i))
        else:
            s.step()
            ts.step()
    return np.array(lrs), np.array(tlrs), np.array(moms), np.array(tmoms)


@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("opt", ["sgd", "adam"])
def test_lr_sequence_equals_torch(name, opt):
    lrs, tlrs, moms, tmoms = _pair(*CASES[name], opt=opt)
    np.testing.assert_allclose(lrs, tlrs, rtol=1e-10, atol=0)
    np.testing.assert_allclose(moms, tmoms, rtol=1e-10, atol=0)  # OneCycle cycles momentum
    assert len(set(np.round(lrs, 12))) > 2  # it did change the lr


@pytest.mark.parametrize("kw", [dict(patience=2, cooldown=1), dict(mode="max", factor=0.5,
                                patience=1, threshold=0.1, threshold_mode="abs", min_lr=0.01)])
def test_reduce_on_plateau_equals_torch(kw):
    metric = (lambda i: 1 / (1 + i % 5)) if kw.get("mode") != "max" else (lambda i: (i % 4) * 0.05)
    lrs, tlrs, _, _ = _pair(lambda o: S.ReduceLROnPlateau(o, **kw),
                            lambda o: T.ReduceLROnPlateau(o, **kw), metric=metric)
    np.testing.assert_allclose(lrs, tlrs, rtol=1e-12)
    assert lrs[-1] < lrs[0]


TRAINING_CASES = {
    "cosine": CASES["cosine"],
    "step": CASES["step"],
    "onecycle": (lambda o: S.OneCycleLR(o, 1e-2, 60), lambda o: T.OneCycleLR(o, 1e-2, total_steps=60)),
}


@pytest.mark.filterwarnings("ignore:Detected call of")
@pytest.mark.parametrize("name", list(TRAINING_CASES))
def test_training_with_schedule_equals_torch(name):
    """50 float64 steps of Adam with the lr (and momentum) moved by a schedule each step."""
    make, tmake = TRAINING_CASES[name]
    rng = np.random.default_rng(11)
    model = deep_net(rng)
    loss_gap, param_gap = run_scheduled_twins(model, lambda p: bp.Adam(p, lr=2e-3), batches(rng, 20, 5),
                                              make, tmake)
    assert loss_gap < 1e-10 and param_gap < 1e-10


def test_onecycle_refuses_to_run_past_its_end():
    o = bp.SGD(bp.Linear(2, 2).parameters(), lr=0.1)
    s = S.OneCycleLR(o, 1.0, 3, cycle_momentum=False)
    for _ in range(3):
        s.step()
    with pytest.raises(bp.ConfigError, match="total_steps"):
        s.step()


def test_scheduler_state_round_trip():
    o = bp.SGD(bp.Linear(2, 2).parameters(), lr=0.1, momentum=0.9)
    s = S.OneCycleLR(o, 1.0, 50)
    for _ in range(17):
        s.step()
    o2 = bp.SGD(bp.Linear(2, 2).parameters(), lr=0.1, momentum=0.9)
    s2 = S.OneCycleLR(o2, 1.0, 50)
    s2.load_state_dict(s.state_dict())
    assert o2.lr == o.lr and o2.momentum == o.momentum
