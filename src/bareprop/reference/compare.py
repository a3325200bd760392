"""Train bareprop and a framework twin (PyTorch, or Keras 3 on the torch backend) side
by side: same initial weights (copied), same batches in the same order, same dropout
masks (replayed on the twin), same schedule. Image models work alike (the Keras twin
converts NCHW to NHWC: keras_twin.py).

In float64 the PyTorch twin agrees to ~1e-10; in float32 the two drift apart by
round-off, and the per-epoch table shows how far. Keras' own update rules differ in
places (its Adam's epsilon sits outside the bias correction), which the table shows too.
"""
from __future__ import annotations

import time
import warnings

import numpy as np

from ..optim.constraints import max_norm_
from ..train.callbacks import Callback
from .keras_twin import KerasTwin
from .torch_twin import _torch, torch_module, torch_optimizer


#: the hyperparameters a schedule moves, copied to the twin before each step
SCHEDULED = ("lr", "momentum", "betas")

#: float64 against PyTorch: the largest weight difference after the last epoch that is
#: still a MATCH (the float64 twins agree far below it: the tests hold them to 1e-10)
MATCH_TOL = 1e-8


class TorchTwin:
    """torch twin whose Dropout layers replay bareprop's masks and whose layers with
    parameters clip the gradient at their output like ``clip_delta``."""

    name = "torch"

    def __init__(self, model, optimizer, loss_fn, max_norm=None):
        torch = self.torch = _torch()
        nn = torch.nn

        class Twin(nn.Module):
            def __init__(self):
                super().__init__()
                self.clip = model.clip_delta
                # the notebook's clip applies to the delta of every layer with parameters
                self.clipped = [layer.has_parameters() for layer in model.layers]
                self.net = nn.Sequential(*[torch_module(layer, replay_masks=True)
                                           for layer in model.layers])

            def forward(self, x):
                with warnings.catch_warnings():
                    # torch says once that "same" with an even kernel pads a copy of the
                    # input: true, and no news to compare's table
                    warnings.filterwarnings("ignore", "Using padding='same'", UserWarning)
                    for clipped, mod in zip(self.clipped, self.net):
                        x = mod(x)
                        if clipped and self.clip is not None and x.requires_grad:
                            bound = self.clip / x.shape[0]
                            x.register_hook(lambda g, b=bound: g.clamp(-b, b))
                return x

        self.model = Twin()
        self.opt = torch_optimizer(optimizer, self.model, model)
        self.loss = nn.CrossEntropyLoss(label_smoothing=loss_fn.label_smoothing)
        self.max_norm = max_norm
        self.hidden_w = [m.weight for m in self.model.net if isinstance(m, nn.Linear)][:-1]

    def step(self, xb, yb, groups) -> float:
        torch = self.torch
        self.model.train()
        for tg, g in zip(self.opt.param_groups, groups):  # the same schedule, group by group
            tg.update(g)
        loss = self.loss(self.model(torch.from_numpy(xb)), torch.from_numpy(yb))
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        if self.max_norm:
            with torch.no_grad():
                max_norm_([w.numpy() for w in self.hidden_w], self.max_norm)
        return loss.item()

    def evaluate(self, test):
        torch = self.torch
        self.model.eval()
        total, correct = 0.0, 0
        with torch.no_grad():
            for xb, yb in test.epoch(0):
                out = self.model(torch.from_numpy(xb))
                total += self.loss(out, torch.from_numpy(yb)).item() * len(yb)
                correct += int((out.argmax(1).numpy() == yb).sum())
        return total / test.n, correct / test.n

    def weights(self):
        return [p.detach().numpy() for p in self.model.parameters()]


TWINS = {"torch": TorchTwin, "keras": KerasTwin}


class TwinCallback(Callback):
    """Trains the twin beside ``fit``: after each bareprop step, the same batch through the
    twin with the hyperparameters bareprop's step used (the first callback, so no
    schedule has moved them yet); after each epoch, the twin evaluated on ``test`` and
    the largest weight difference, as one row."""

    needs_grads = False

    def __init__(self, twin, test, on_epoch=None):
        self.twin, self.test, self.on_epoch = twin, test, on_epoch
        self.rows, self.losses = [], []
        self._sums = [0.0, 0]
        self._seconds = 0.0

    def on_epoch_begin(self, state):
        self._sums, self._seconds = [0.0, 0], 0.0

    def on_batch_end(self, state, loss, batch_size):
        xb, yb = state.batch
        groups = [{k: g[k] for k in SCHEDULED if k in g}     # what this step used
                  for g in state.optimizer.param_groups]
        t0 = time.perf_counter()
        tl = self.twin.step(xb, yb, groups)
        self._seconds += time.perf_counter() - t0
        self.losses.append(tl)
        self._sums[0] += tl * len(yb)
        self._sums[1] += len(yb)

    def on_epoch_end(self, state, logs):
        t_loss, t_acc = self.twin.evaluate(self.test)
        params = state.model.parameters()
        diff = max(float(np.max(np.abs(p.data - w)))
                   for p, w in zip(params, self.twin.weights()))
        row = {"epoch": logs["epoch"],
               "bareprop": {"train_loss": logs["train_loss"], "test_loss": logs["test_loss"],
                            "test_accuracy": logs["test_accuracy"],
                            "seconds": logs["seconds"] - self._seconds},
               self.twin.name: {"train_loss": self._sums[0] / max(self._sums[1], 1),
                                "test_loss": t_loss, "test_accuracy": t_acc,
                                "seconds": self._seconds},
               "max_abs_weight_diff": diff}
        self.rows.append(row)
        if self.on_epoch:
            self.on_epoch(row)


def compare(model, optimizer, loss_fn, train, test, epochs: int, scheduler=None,
            max_norm=None, seed: int = 0, on_epoch=None, framework: str = "torch") -> dict:
    """Run both; returns per-epoch rows and the per-batch losses of each.

    bareprop trains through ``fit`` with the twin as its first callback (TwinCallback);
    its schedule and max-norm run through the same callbacks as a train run's (a
    ReduceLROnPlateau watches the training loss: there is no validation set here); the
    twin copies lr, momentum and betas at every step.
    """
    from ..train import LRSchedule, MaxNorm, fit

    twin = TwinCallback(TWINS[framework](model, optimizer, loss_fn, max_norm), test, on_epoch)
    callbacks = [twin] + ([LRSchedule(scheduler)] if scheduler is not None else []) + \
                ([MaxNorm(max_norm)] if max_norm else [])
    history = fit(model, loss_fn, optimizer, train, epochs, test=test, callbacks=callbacks,
                  seed=seed, verbose=False)          # compare prints its own rows
    return {"framework": twin.twin.name, "epochs": twin.rows,
            "batch_loss": {"bareprop": history.batch_loss, twin.twin.name: twin.losses}}


def verdict(result: dict, dtype: str, span: str) -> tuple[str, bool]:
    """The line ``bareprop compare`` ends with, for ``compare``'s ``result`` after ``span``
    (e.g. "2 epochs"), and whether the run passes: float64 against PyTorch passes only
    as a MATCH (max |dW| < MATCH_TOL); float32 and Keras report their gap and pass."""
    diff = result["epochs"][-1]["max_abs_weight_diff"]
    if result["framework"] == "keras":
        return (f"{dtype}: max |dW| = {diff:.3e} after {span} (Keras' arithmetic differs by "
                "round-off, and by design in its Adam epsilon)"), True
    if dtype == "float64":
        if diff < MATCH_TOL:
            return "MATCH: the two runs agree to round-off", True
        return f"DIFFER: weights differ by {diff:.3e} (> {MATCH_TOL:g})", False
    return (f"float32: weights drift apart by round-off, max |dW| = {diff:.3e} after {span} "
            "(use --dtype float64 for an exact match)"), True
