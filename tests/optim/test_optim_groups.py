"""Parameter groups with per-group hyperparameters, as torch.optim: PyTorch twins (50
float64 steps, every loss and parameter to 1e-10), schedules over groups, the door
checks, the hyperparameter attributes and the optimizer's state (old format included).
"""
import subprocess
import sys

import numpy as np
import pytest
import torch

import bareprop as bp
from bareprop.optim import lr_scheduler as S
from bareprop.train.checkpoint import load_checkpoint, save_checkpoint

from test_optim_schedulers import CASES as SCHEDULER_CASES
from twins import batches, deep_net, run_scheduled_twins, run_twins

T = torch.optim.lr_scheduler


def split(params):
    """(weights, biases) of a Linear-only network."""
    params = list(params)
    return [p for p in params if p.data.ndim == 2], [p for p in params if p.data.ndim == 1]


def grouped(cls, weights_kw, biases_kw, **defaults):
    """An optimizer factory for run_twins: weights and biases in two groups."""
    def make(params):
        w, b = split(params)
        return cls([{"params": w, **weights_kw}, {"params": b, **biases_kw}], **defaults)
    return make


GROUPED = {
    "sgd_nesterov": grouped(bp.SGD, {"weight_decay": 1e-3}, {"lr": 0.02, "momentum": 0.5},
                            lr=0.05, momentum=0.9, nesterov=True),
    "adam_amsgrad": grouped(bp.Adam, {"weight_decay": 1e-2}, {"lr": 3e-3, "betas": (0.8, 0.99)},
                            lr=1e-3, amsgrad=True),
    "adamw": grouped(bp.AdamW, {"weight_decay": 0.1}, {"weight_decay": 0.0, "lr": 2e-3}),
    "rmsprop": grouped(bp.RMSprop, {"weight_decay": 1e-3, "momentum": 0.9},
                       {"lr": 3e-3, "centered": True}, lr=1e-3),
    "adagrad": grouped(bp.Adagrad, {"weight_decay": 1e-3, "initial_accumulator_value": 0.1},
                       {"lr": 3e-2, "lr_decay": 1e-3}, lr=1e-2),
}


@pytest.mark.parametrize("name", list(GROUPED))
def test_two_groups_equal_torch(name):
    rng = np.random.default_rng(21)
    model, data = deep_net(rng), batches(rng, 20, 5)
    start = [p.data.copy() for p in model.parameters()]
    loss_gap, param_gap = run_twins(model, GROUPED[name], data)
    assert loss_gap < 1e-10 and param_gap < 1e-10
    # the groups mattered: one group with the defaults ends elsewhere
    other = deep_net(np.random.default_rng(21))
    for p, s in zip(other.parameters(), start):
        p.data[...] = s
    opt = GROUPED[name](other.parameters())
    plain = type(opt)(other.parameters(), **opt.defaults)
    loss_fn = bp.CrossEntropyLoss()
    for x, y in data:
        loss_fn(other(x), y)
        plain.zero_grad()
        other.backward(loss_fn.backward())
        plain.step()
    gap = max(np.max(np.abs(p.data - q.data))
              for p, q in zip(model.parameters(), other.parameters()))
    assert gap > 1e-6


def test_torch_twin_gets_the_same_groups():
    model = deep_net(np.random.default_rng(0))
    opt = GROUPED["sgd_nesterov"](model.parameters())
    from bareprop.reference.torch_twin import torch_module, torch_optimizer

    topt = torch_optimizer(opt, torch_module(model), model)
    assert len(topt.param_groups) == 2
    for g, tg in zip(opt.param_groups, topt.param_groups):
        assert len(g["params"]) == len(tg["params"])
        for k, v in g.items():
            if k != "params":
                assert tg[k] == v, k


# --- schedules over groups --------------------------------------------------------

SCHEDULES = {   # the one-group cases of test_optim_schedulers, and one-cycle per group
    **{k: SCHEDULER_CASES[k] for k in ("step", "multistep", "exponential", "cosine", "linear")},
    "onecycle": (lambda o: S.OneCycleLR(o, [1.0, 0.3], 61, base_momentum=[0.85, 0.7]),
                 lambda o: T.OneCycleLR(o, [1.0, 0.3], total_steps=61,
                                        base_momentum=[0.85, 0.7])),
}


def _groups_pair(make, tmake, opt, steps=60, metric=None):
    """Every group's lr and momentum (beta1) of bareprop and torch, step by step."""
    w, b = split(bp.Linear(2, 2, rng=0).parameters())
    tw, tb = torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(2))
    if opt == "sgd":
        o = bp.SGD([{"params": w}, {"params": b, "lr": 0.03}], lr=0.1, momentum=0.9)
        to = torch.optim.SGD([{"params": [tw]}, {"params": [tb], "lr": 0.03}], lr=0.1,
                             momentum=0.9)
    else:
        o = bp.Adam([{"params": w}, {"params": b, "lr": 0.03}], lr=0.1)
        to = torch.optim.Adam([{"params": [tw]}, {"params": [tb], "lr": 0.03}], lr=0.1)
    s, ts = make(o), tmake(to)
    ours, theirs = [], []
    key = (lambda g: g["momentum"]) if opt == "sgd" else (lambda g: g["betas"][0])
    for i in range(steps):
        ours.append([v for g in o.param_groups for v in (g["lr"], key(g))])
        theirs.append([v for g in to.param_groups for v in (g["lr"], key(g))])
        to.step()
        args = (metric(i),) if metric else ()
        s.step(*args)
        ts.step(*args)
    return np.array(ours), np.array(theirs)


@pytest.mark.parametrize("name", list(SCHEDULES))
@pytest.mark.parametrize("opt", ["sgd", "adam"])
def test_schedules_act_per_group_like_torch(name, opt):
    ours, theirs = _groups_pair(*SCHEDULES[name], opt=opt)
    np.testing.assert_allclose(ours, theirs, rtol=1e-10, atol=0)
    lr0, lr1 = ours[:, 0], ours[:, 2]
    assert len(set(np.round(lr1, 12))) > 2           # the second group's lr moved
    assert np.max(np.abs(lr0 - lr1)) > 1e-3           # and differs from the first's


@pytest.mark.parametrize("kw", [dict(patience=2, cooldown=1, min_lr=[0.0, 0.02]),
                                dict(mode="max", factor=0.5, patience=1, threshold=0.1,
                                     threshold_mode="abs", min_lr=0.01)])
def test_reduce_on_plateau_acts_per_group_like_torch(kw):
    metric = (lambda i: 1 / (1 + i % 5)) if kw.get("mode") != "max" else (lambda i: (i % 4) * 0.05)
    ours, theirs = _groups_pair(lambda o: S.ReduceLROnPlateau(o, **kw),
                                lambda o: T.ReduceLROnPlateau(o, **kw), "sgd", metric=metric)
    np.testing.assert_allclose(ours, theirs, rtol=1e-12)
    assert ours[-1, 0] < ours[0, 0] and ours[-1, 2] < ours[0, 2]


@pytest.mark.filterwarnings("ignore:Detected call of")
@pytest.mark.parametrize("name", ["step", "onecycle"])
def test_training_with_schedule_over_groups_equals_torch(name):
    """50 float64 steps of Nesterov SGD, two groups with different lrs, scheduled."""
    make, tmake = {"step": SCHEDULES["step"],
                   "onecycle": (lambda o: S.OneCycleLR(o, [2e-2, 5e-3], 60),
                                lambda o: T.OneCycleLR(o, [2e-2, 5e-3], total_steps=60))}[name]
    rng = np.random.default_rng(13)
    model = deep_net(rng)
    loss_gap, param_gap = run_scheduled_twins(model, GROUPED["sgd_nesterov"], batches(rng, 20, 5),
                                              make, tmake)
    assert loss_gap < 1e-10 and param_gap < 1e-10


def test_per_group_values_must_match_the_groups():
    o = bp.SGD([{"params": [bp.Parameter(np.zeros(2))]}, {"params": [bp.Parameter(np.zeros(2))]}],
               lr=0.1, momentum=0.9)
    with pytest.raises(bp.ConfigError, match="max_lr has 3 values for 2 parameter groups"):
        S.OneCycleLR(o, [1.0, 2.0, 3.0], 10)


# --- the door ---------------------------------------------------------------------

def two_params():
    return bp.Parameter(np.zeros((3, 2))), bp.Parameter(np.zeros(3))


@pytest.mark.parametrize("groups,match", [
    (lambda w, b: [{"params": [w], "momentun": 0.9}], r"no hyperparameter 'momentun'"),
    (lambda w, b: [{"params": [w]}, {"param": [b]}], r"group 1: .*needs a 'params' entry"),
    (lambda w, b: [{"params": [w]}, b], "mix Parameters and dicts"),
    (lambda w, b: [{"params": [w, b]}, {"params": [b]}], "group 1: .*more than once"),
    (lambda w, b: [{"params": [w, w]}], "more than once"),
    (lambda w, b: [w, b, w], "more than once"),
    (lambda w, b: [{"params": [w]}, {"params": [b], "momentum": -1}],
     r"group 1: Invalid momentum: -1.0 \(must be in \[0.0, inf\)\)"),
    (lambda w, b: [{"params": [w], "lr": 0.0}], r"group 0: Invalid learning rate: 0.0"),
    (lambda w, b: [{"params": [b], "nesterov": True}], "Nesterov momentum requires"),
    (lambda w, b: [{"params": [w.data]}], "must be Parameters, got ndarray"),
    (lambda w, b: [], "empty parameter list"),
    (lambda w, b: [{"params": []}], "empty parameter list"),
    (lambda w, b: w, "not one Parameter"),
])
def test_groups_are_checked_at_the_door(groups, match):
    with pytest.raises(bp.ConfigError, match=match):
        bp.SGD(groups(*two_params()), lr=0.1)


def test_unknown_hyperparameter_error_names_it_and_the_valid_ones():
    w, b = two_params()
    with pytest.raises(bp.ConfigError) as e:
        bp.Adam([{"params": [w], "beta1": 0.8}])
    assert "'beta1'" in str(e.value) and "betas" in str(e.value) and "Adam" in str(e.value)


# --- hyperparameters as attributes and in param_groups ------------------------------

def test_param_groups_hold_every_hyperparameter_like_torch():
    w, b = two_params()
    opt = bp.SGD([{"params": [w], "weight_decay": 1e-4}, {"params": b}], lr=0.1, momentum=0.9)
    tw, tb = torch.zeros(3, 2, requires_grad=True), torch.zeros(3, requires_grad=True)
    topt = torch.optim.SGD([{"params": [tw], "weight_decay": 1e-4}, {"params": tb}], lr=0.1,
                           momentum=0.9)
    for g, tg in zip(opt.param_groups, topt.param_groups):
        assert set(g) <= set(tg) and set(g) == {"params", *opt.defaults}
        assert all(g[k] == tg[k] for k in g if k != "params")
    assert opt.param_groups[0]["params"] == [w] and opt.param_groups[1]["params"] == [b]


def test_hyperparameters_are_attributes():
    w, b = two_params()
    opt = bp.SGD([{"params": [w], "lr": 0.5}, {"params": [b]}], lr=0.1, momentum=0.9)
    assert opt.lr == 0.5 and opt.momentum == 0.9          # the first group's
    opt.lr = 0.2                                          # every group's
    assert [g["lr"] for g in opt.param_groups] == [0.2, 0.2]
    opt.param_groups[1]["momentum"] = 0.5                 # one group's, as torch
    assert opt.momentum == 0.9 and opt.param_groups[1]["momentum"] == 0.5
    with pytest.raises(bp.ConfigError, match="Invalid momentum: -0.1"):
        opt.momentum = -0.1
    assert [g["momentum"] for g in opt.param_groups] == [0.9, 0.5]   # a refused set changes nothing
    with pytest.raises(bp.ConfigError, match="Invalid learning rate"):
        opt.lr = float("nan")
    a = bp.Adam([w], lr=1e-3)
    a.betas = [0.5, 0.9]
    assert a.betas == (0.5, 0.9) and a.amsgrad is False


def test_step_uses_each_groups_hyperparameters():
    """SGD without momentum: p <- p - lr_g g, by hand; step(params) updates only those."""
    w, b = two_params()
    opt = bp.SGD([{"params": [w]}, {"params": [b], "lr": 0.5}], lr=0.1)
    w.grad, b.grad = np.full((3, 2), 2.0), np.full(3, 2.0)
    opt.step([b])                                   # the notebook order: one layer at a time
    assert np.all(w.data == 0.0) and np.allclose(b.data, -1.0)
    opt.step([w])
    assert np.allclose(w.data, -0.2) and np.allclose(b.data, -1.0)
    opt.step()
    assert np.allclose(w.data, -0.4) and np.allclose(b.data, -2.0)


def test_add_param_group():
    w, b = two_params()
    opt = bp.SGD([w], lr=0.1, momentum=0.9)
    opt.add_param_group({"params": [b], "lr": 0.01})
    assert opt.param_groups[1]["lr"] == 0.01 and opt.param_groups[1]["momentum"] == 0.9
    b.grad = np.ones(3)
    opt.step()
    assert np.allclose(b.data, -0.01)
    with pytest.raises(bp.ConfigError, match="more than once"):
        opt.add_param_group({"params": [w]})
    with pytest.raises(bp.ConfigError, match="group 2: Invalid learning rate"):
        opt.add_param_group({"params": [bp.Parameter(np.zeros(1))], "lr": -1})
    assert len(opt.param_groups) == 2 and len(opt.state) == 2


# --- state ------------------------------------------------------------------------

def trained(make, steps=3):
    model = deep_net(np.random.default_rng(2))
    opt = make(model.parameters())
    rng = np.random.default_rng(3)
    loss_fn = bp.CrossEntropyLoss()
    for _ in range(steps):
        loss_fn(model(rng.normal(size=(8, 20))), rng.integers(0, 5, 8))
        opt.zero_grad()
        model.backward(loss_fn.backward())
        opt.step()
    return model, opt


def test_state_dict_carries_per_group_hyperparameters(tmp_path):
    _, opt = trained(GROUPED["adam_amsgrad"])
    opt.param_groups[1]["lr"] = 7e-3                   # as a schedule would
    save_checkpoint(tmp_path / "c.npz", {"optimizer": opt.state_dict()})   # through JSON
    sd = load_checkpoint(tmp_path / "c.npz")["optimizer"]
    _, fresh = trained(GROUPED["adam_amsgrad"], steps=0)
    fresh.load_state_dict(sd)
    for g, h in zip(opt.param_groups, fresh.param_groups):
        assert {k: v for k, v in g.items() if k != "params"} == \
               {k: v for k, v in h.items() if k != "params"}
    assert fresh.param_groups[1]["betas"] == (0.8, 0.99)   # a tuple again
    assert fresh.state[0]["step"] == 3
    np.testing.assert_array_equal(fresh.state[-1]["exp_avg"], opt.state[-1]["exp_avg"])
    _, single = trained(lambda p: bp.Adam(p), steps=0)
    with pytest.raises(ValueError, match="groups"):
        single.load_state_dict(sd)


def test_state_written_before_groups_still_loads(tmp_path):
    """A checkpoint of today's runs stores {"lr", "hyper", "state"}: --resume must work."""
    _, opt = trained(lambda p: bp.SGD(p, lr=0.05, momentum=0.9, nesterov=True))
    new = opt.state_dict()
    old = {"lr": 0.0123, "hyper": {"momentum": 0.8, "dampening": 0.0, "nesterov": True,
                                   "weight_decay": 1e-4}, "state": new["state"]}
    save_checkpoint(tmp_path / "c.npz", {"optimizer": old})
    _, fresh = trained(lambda p: bp.SGD(p, lr=0.05, momentum=0.9, nesterov=True), steps=0)
    fresh.load_state_dict(load_checkpoint(tmp_path / "c.npz")["optimizer"])
    assert fresh.lr == 0.0123 and fresh.momentum == 0.8 and fresh.weight_decay == 1e-4
    np.testing.assert_array_equal(fresh.state[0]["momentum_buffer"],
                                  opt.state[0]["momentum_buffer"])


def test_scheduler_state_written_before_groups_still_loads():
    """Old scheduler states hold one number (base_lr, max_lr, ...) where groups need lists."""
    w, b = two_params()
    o = bp.SGD([w, b], lr=0.1, momentum=0.9)
    s = S.OneCycleLR(o, 1.0, 50)
    for _ in range(17):
        s.step()
    state = s.state_dict()
    old = {(k[:-1] if k in s._per_group else k): (v[0] if k in s._per_group else v)
           for k, v in state.items()}
    assert "base_lr" in old and "max_momentum" in old and "max_lrs" not in old
    o2 = bp.SGD(two_params(), lr=0.1, momentum=0.9)
    s2 = S.OneCycleLR(o2, 0.5, 50)
    s2.load_state_dict(old)
    assert s2.state_dict() == state and o2.lr == o.lr and o2.momentum == o.momentum
    r = S.ReduceLROnPlateau(o2, min_lr=0.2)
    r.load_state_dict({**{k: v for k, v in r.state_dict().items() if k != "min_lrs"},
                       "min_lr": 0.05})
    assert r.min_lrs == [0.05]


STOP_AFTER_EPOCH_1 = """
import os, sys
from bareprop.train import callbacks
save = callbacks.Checkpointer.on_epoch_end
def on_epoch_end(self, state, logs):
    save(self, state, logs)
    if logs["epoch"] == 1:
        os._exit(9)                  # as a kill -9 right after the checkpoint is written
callbacks.Checkpointer.on_epoch_end = on_epoch_end
from bareprop.cli.main import main
sys.exit(main())
"""


def test_resume_from_a_checkpoint_written_before_groups_is_bit_identical(tmp_path):
    """Today's runs wrote the optimizer as {lr, hyper, state} and OneCycleLR's values as
    single numbers (base_lr, max_lr, ...); such a run resumes and ends bit-identical."""
    from synthetic import write_dataset
    from resumable import FLAGS, weights

    data = write_dataset(tmp_path / "mnist", n_train=3000, n_test=200)
    cmd = ["--data-dir", data, *FLAGS]
    r = subprocess.run([sys.executable, "-m", "bareprop", "train", "--out", tmp_path / "full",
                        *cmd], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    cut = tmp_path / "cut"
    r = subprocess.run([sys.executable, "-c", STOP_AFTER_EPOCH_1, "train", "--out", cut, *cmd],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 9, r.stderr
    ck = load_checkpoint(cut / "checkpoint.npz")
    assert ck["epoch"] == 1
    opt = ck["optimizer"]
    (group,) = opt["param_groups"]
    ck["optimizer"] = {"lr": group["lr"], "state": opt["state"],
                       "hyper": {k: v for k, v in group.items() if k not in ("params", "lr")}}
    sched = ck["callbacks"]["scheduler"]
    for k in [k for k in sched if k.endswith("s") and isinstance(sched[k], list)]:
        sched[k[:-1]] = sched.pop(k)[0]
    assert {"base_lr", "max_lr", "max_momentum"} <= set(sched)
    save_checkpoint(cut / "checkpoint.npz", ck)
    r = subprocess.run([sys.executable, "-m", "bareprop", "train", "--resume", cut,
                        "--data-dir", data, "--no-verify", "--quiet"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    a, b = weights(tmp_path / "full"), weights(cut)
    assert a.keys() == b.keys()
    for k in a:
        assert np.array_equal(a[k], b[k]), k


def test_compare_copies_every_groups_schedule_to_the_torch_twin():
    """bareprop compare's twin gets the groups, and each step every group's lr/momentum."""
    from bareprop.data import Batches, Scaler
    from bareprop.reference.compare import compare
    from synthetic import digits_like

    x, y = digits_like(300, 5, size=8)
    scaler = Scaler.fit("unit", x)
    train = Batches(x, y, 32, scaler, np.float64, shuffle=True, seed=1)
    test = Batches(*digits_like(100, 6, size=8), 50, scaler, np.float64)
    rng = np.random.default_rng(0)
    model = bp.Sequential(bp.Flatten(), bp.Linear(64, 16, rng=rng, dtype=np.float64), bp.ReLU(),
                          bp.Linear(16, 10, rng=rng, dtype=np.float64))
    opt = GROUPED["sgd_nesterov"](model.parameters())
    sched = S.OneCycleLR(opt, [0.1, 0.02], 2 * len(train), base_momentum=[0.85, 0.6])
    report = compare(model, opt, bp.CrossEntropyLoss(), train, test, 2, scheduler=sched)
    assert report["epochs"][-1]["max_abs_weight_diff"] < 1e-10
    np.testing.assert_allclose(report["batch_loss"]["bareprop"], report["batch_loss"]["torch"],
                               rtol=1e-10)
    assert opt.param_groups[1]["momentum"] != opt.param_groups[0]["momentum"]
