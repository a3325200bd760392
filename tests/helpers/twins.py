"""Helpers for the PyTorch twin tests: run bareprop and torch side by side."""
import numpy as np
import torch

import bareprop as bp
from bareprop.reference.torch_twin import torch_module, torch_optimizer
from bareprop.train.step import TrainStep


def rel(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    scale = max(float(np.max(np.abs(b), initial=0.0)), 1e-300)
    return float(np.max(np.abs(a - b), initial=0.0)) / scale


def run_twins(model, make_opt, batches, loss_fn=None, t_loss=None, steps_hook=None, keep=None):
    """Train ``model`` and its torch twin on the same batches; return the worst gaps.

    Returns (max loss rel diff, max rel diff after any step of any parameter or buffer,
    BatchNorm running stats included, each paired with torch's by its state_dict name).
    Dropout layers replay bareprop's masks on the torch side.
    """
    loss_fn = loss_fn or bp.CrossEntropyLoss()
    t_loss = t_loss or torch.nn.CrossEntropyLoss()
    tmodel = torch_module(model, replay_masks=True)
    if keep is not None:
        keep["tmodel"] = tmodel
    opt = make_opt(model.parameters())
    topt = torch_optimizer(opt, tmodel, model)
    worst_loss = worst_param = 0.0
    step = TrainStep(model, loss_fn, opt)       # the step fit, compare and bench take
    for i, (x, y) in enumerate(batches):
        loss, _ = step(x, y)

        tx = torch.from_numpy(x)
        ty = torch.from_numpy(y)
        tl = t_loss(tmodel(tx), ty)
        topt.zero_grad()
        tl.backward()
        topt.step()
        if steps_hook:
            steps_hook(i, opt, topt)
        worst_loss = max(worst_loss, abs(loss - tl.item()) / max(abs(tl.item()), 1e-300))
        tstate = tmodel.state_dict()
        for name, value in model.state_dict().items():
            worst_param = max(worst_param, rel(value, tstate[name].numpy()))
    return worst_loss, worst_param


def run_scheduled_twins(model, make_opt, batches, make_sched, make_tsched):
    """run_twins with a schedule stepped after every step on both sides: ``make_sched(opt)``
    for bareprop's optimizer, ``make_tsched(topt)`` for torch's."""
    sched = {}

    def hook(i, opt, topt):
        if "s" not in sched:
            sched["s"], sched["t"] = make_sched(opt), make_tsched(topt)
        sched["s"].step()
        sched["t"].step()

    return run_twins(model, make_opt, batches, steps_hook=hook)


#: optimizer steps every twin test takes
STEPS = 50


def deep_net(rng):
    """Uses every activation of the catalog once, and the variants of their arguments."""
    acts = [e.cls() for e in bp.core.catalog.entries()
            if e.public and issubclass(e.cls, bp.core.activations.Activation)]
    acts += [bp.LeakyReLU(0.1), bp.GELU("tanh")]
    widths = [20, 17, 13, 11, 9, 15, 8, 12, 7, 10, 14, 9, 11, 8, 13][:len(acts) + 1]
    layers = []
    for i, act in enumerate(acts):
        layers += [bp.Linear(widths[i], widths[i + 1], rng=rng, dtype=np.float64), act]
    layers.append(bp.Linear(widths[-1], 5, rng=rng, dtype=np.float64))
    return bp.Sequential(*layers)


def batches(rng, n_in, n_classes, batch=16, scale=1.0):
    return [(rng.normal(size=(batch, n_in)) * scale, rng.integers(0, n_classes, batch))
            for _ in range(STEPS)]
