"""Train bareprop and its PyTorch twin side by side: same initial weights (copied),
same batches in the same order, same dropout masks, same schedule.

In float64 the two runs agree to ~1e-10; in float32 they drift apart by round-off,
and the per-epoch table shows how far.
"""
from __future__ import annotations

import time

import numpy as np

from .. import core
from ..optim.constraints import max_norm_
from .torch_twin import _torch, torch_module, torch_optimizer


def _twin(model):
    """torch twin whose Dropout layers replay bareprop's masks and whose Linear outputs
    clip their gradient like ``clip_delta``."""
    torch = _torch()
    nn = torch.nn

    class MaskReplay(nn.Module):
        def __init__(self, layer):
            super().__init__()
            self.layer = layer

        def forward(self, x):
            mask = self.layer._mask
            return x if (not self.training or mask is None) else x * torch.from_numpy(mask)

    class Twin(nn.Module):
        def __init__(self):
            super().__init__()
            self.clip = model.clip_delta
            self.kinds = []
            mods = []
            for layer in model.layers:
                mods.append(MaskReplay(layer) if isinstance(layer, core.Dropout)
                            else torch_module(layer))
                self.kinds.append(type(layer).__name__)
            self.net = nn.Sequential(*mods)

        def forward(self, x):
            for kind, mod in zip(self.kinds, self.net):
                x = mod(x)
                if kind == "Linear" and self.clip is not None and x.requires_grad:
                    bound = self.clip / x.shape[0]
                    x.register_hook(lambda g, b=bound: g.clamp(-b, b))
            return x

    return Twin()


def compare(model, optimizer, loss_fn, train, test, epochs: int, scheduler=None,
            max_norm=None, seed: int = 0, on_epoch=None) -> dict:
    """Run both; returns per-epoch rows and the per-batch losses of each."""
    torch = _torch()
    from ..train.loop import _reseed, evaluate

    tmodel = _twin(model)
    topt = torch_optimizer(optimizer, tmodel)
    tloss = torch.nn.CrossEntropyLoss(label_smoothing=loss_fn.label_smoothing)
    params = model.parameters()
    tparams = list(tmodel.parameters())
    hidden_w = [m.weight for m in model.layers if isinstance(m, core.Linear)][:-1]
    t_hidden_w = [m.weight for m in tmodel.net if isinstance(m, torch.nn.Linear)][:-1]
    rows, bp_losses, t_losses = [], [], []
    for epoch in range(epochs):
        model.train()
        tmodel.train()
        _reseed(model, seed, epoch)
        t_bp = t_t = 0.0
        sums = np.zeros(2)
        n = 0
        for xb, yb in train.epoch(epoch):
            t0 = time.perf_counter()
            loss = loss_fn(model(xb), yb)
            optimizer.zero_grad()
            model.backward(loss_fn.backward())
            optimizer.step()
            if max_norm:
                max_norm_([w.data for w in hidden_w], max_norm)
            t1 = time.perf_counter()
            for g in topt.param_groups:  # the same schedule: copy lr (and momentum) over
                g["lr"] = optimizer.lr
                for k in ("momentum", "betas"):
                    if k in g:
                        g[k] = optimizer.hyper[k]
            tl = tloss(tmodel(torch.from_numpy(xb)), torch.from_numpy(yb))
            topt.zero_grad()
            tl.backward()
            topt.step()
            if max_norm:
                with torch.no_grad():
                    max_norm_([w.numpy() for w in t_hidden_w], max_norm)
            t2 = time.perf_counter()
            t_bp += t1 - t0
            t_t += t2 - t1
            bp_losses.append(loss)
            t_losses.append(tl.item())
            sums += (loss * len(yb), tl.item() * len(yb))
            n += len(yb)
            if scheduler is not None and scheduler.per_batch:
                scheduler.step()
        if scheduler is not None and not scheduler.per_batch:
            scheduler.step() if not hasattr(scheduler, "best") else scheduler.step(sums[0] / n)
        r = evaluate(model, loss_fn, test)
        tmodel.eval()
        with torch.no_grad():
            tl_sum, correct = 0.0, 0
            for xb, yb in test.epoch(0):
                out = tmodel(torch.from_numpy(xb))
                tl_sum += tloss(out, torch.from_numpy(yb)).item() * len(yb)
                correct += int((out.argmax(1).numpy() == yb).sum())
        diff = max(float(np.max(np.abs(p.data - tp.detach().numpy())))
                   for p, tp in zip(params, tparams))
        row = {"epoch": epoch + 1,
               "bareprop": {"train_loss": sums[0] / n, "test_loss": r.loss,
                            "test_accuracy": r.accuracy, "seconds": t_bp},
               "torch": {"train_loss": sums[1] / n, "test_loss": tl_sum / test.n,
                         "test_accuracy": correct / test.n, "seconds": t_t},
               "max_abs_weight_diff": diff}
        rows.append(row)
        if on_epoch:
            on_epoch(row)
    return {"epochs": rows, "batch_loss": {"bareprop": bp_losses, "torch": t_losses}}
