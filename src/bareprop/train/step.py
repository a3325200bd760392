"""One training step, written once: zero_grad -> forward -> loss -> backward -> [hook] -> step.

``fit``, ``compare``, the benchmark and the test twins all step through ``TrainStep``,
so a change here (a gradient hook, a fused update) reaches every one of them.

grad_hook(model, optimizer) runs between backward and the optimizer step, with
every ``p.grad`` filled: where gradient clipping goes, and where data-parallel
training sums gradients across processes.
update_order "notebook" replaces backward + step by the seed notebook's order: each
layer with parameters is stepped right after its gradients are known and the delta
below it uses the updated weights (core/notebook.py); no single point exists there
between backward and step, so it takes no grad_hook.

Fast paths (fast/plan.py) are chosen once, here, when the step is built: the step runs
the plan's chain (the model's own modules, some behind fused units) and loss. With
``fuse`` and nothing reading the gradients between backward and step (no grad_hook, the
standard order), SGD's step is applied to each large enough Linear weight inside its
weight-gradient GEMM: no dW array, fewer passes over the weights; those parameters'
``grad`` then stays None. ``fuse=False`` keeps every gradient. The weights equal the
reference step's within float rounding; float64 runs the reference path exactly.
"""
from __future__ import annotations

from ..core.notebook import UpdateAsYouGo
from ..errors import ConfigError
from ..fast import plan

UPDATE_ORDERS = ("standard", "notebook")


class TrainStep:
    """``step(x, y) -> (loss, logits)``: one optimizer step of ``model`` on a batch.

    An empty batch with a grad_hook (a data-parallel rank whose shard is empty) skips
    forward and backward but still runs the hook and the step: (0.0, None).

    on_loss(loss), if given, sees the batch loss before backward (fit stops a
    diverging run there, before a NaN reaches the weights).
    """

    def __init__(self, model, loss_fn, optimizer, *, update_order: str = "standard",
                 grad_hook=None, on_loss=None, fuse: bool = True):
        if update_order not in UPDATE_ORDERS:
            raise ConfigError(f"update_order must be 'standard' or 'notebook', got "
                              f"{update_order!r}")
        if update_order == "notebook" and grad_hook is not None:
            raise ConfigError("update_order 'notebook' steps each layer during backward; "
                              "a grad_hook needs update_order 'standard'")
        self.model, self.loss_fn, self.optimizer = model, loss_fn, optimizer
        self.grad_hook, self.on_loss = grad_hook, on_loss
        self.layer_hook = (UpdateAsYouGo(optimizer, getattr(model, "clip_delta", None))
                           if update_order == "notebook" else None)
        self._fuse = fuse and grad_hook is None and self.layer_hook is None
        self.plan = self._plan()

    def _plan(self):
        return plan(self.model, self.loss_fn, self.optimizer, fuse_updates=self._fuse,
                    layer_hooks=self.layer_hook is not None)

    def __call__(self, x, y):
        model, optimizer = self.model, self.optimizer
        if not self.plan.is_current():     # a layer swapped in since: plan it anew
            self.plan = self._plan()
        net, loss_fn = self.plan.net, self.plan.loss
        if len(y) == 0 and self.grad_hook is not None:
            # a data-parallel rank whose shard of this batch is empty: nothing to compute,
            # but it joins the hook's allreduce (with zero gradients) and takes the step
            optimizer.zero_grad()
            self.grad_hook(model, optimizer)
            optimizer.step()
            return 0.0, None
        with self.plan.held():           # conv blocks: the batch split over BLAS's threads
            logits = net(x)                                  # forward   (B, C)
            loss = loss_fn(logits, y)                        # loss
            if self.on_loss is not None:
                self.on_loss(loss)
            optimizer.zero_grad()
            if self.layer_hook is not None:                  # backward + per-layer update
                net.backward(loss_fn.backward(), layer_hook=self.layer_hook)
                return loss, logits
            net.backward(loss_fn.backward())  # fills every p.grad (a fused one: steps it)
        if self.grad_hook is not None:
            self.grad_hook(model, optimizer)
        optimizer.step()                                     # update (the fused: skipped)
        return loss, logits


def train_step(model, loss_fn, optimizer, x, y, **kwargs):
    """One step (see TrainStep); returns (loss, logits)."""
    return TrainStep(model, loss_fn, optimizer, **kwargs)(x, y)
