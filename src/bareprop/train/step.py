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

fuse: where nothing reads the gradients between backward and step (no grad_hook, the
standard order), an optimizer that can (SGD, through NumPy's own BLAS) applies its step to each
large enough Linear weight inside the weight-gradient GEMM (optim/fused.py): no dW array, fewer passes
over the weights. Those parameters' ``grad`` then stays None; ``fuse=False`` keeps every
gradient. The weights equal the unfused step's within float rounding.
"""
from __future__ import annotations

from ..core.notebook import UpdateAsYouGo
from ..errors import ConfigError

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
        self.fused = []                  # (parameter, its fused rule)
        if fuse and grad_hook is None and self.layer_hook is None:
            rules = getattr(optimizer, "fused_rule", None)
            shared = _shared(model)
            for p in (getattr(optimizer, "params", None) or []) if rules else []:
                if id(p) in shared or p.data.ctypes.data in shared:
                    continue             # a shared one is stepped once, unfused
                rule = rules(p)
                if rule is not None:
                    self.fused.append((p, rule))

    def __call__(self, x, y):
        model, loss_fn, optimizer = self.model, self.loss_fn, self.optimizer
        if len(y) == 0 and self.grad_hook is not None:
            # a data-parallel rank whose shard of this batch is empty: nothing to compute,
            # but it joins the hook's allreduce (with zero gradients) and takes the step
            optimizer.zero_grad()
            self.grad_hook(model, optimizer)
            optimizer.step()
            return 0.0, None
        logits = model(x)                                    # forward   (B, C)
        loss = loss_fn(logits, y)                            # loss
        if self.on_loss is not None:
            self.on_loss(loss)
        optimizer.zero_grad()
        if self.layer_hook is not None:                      # backward + per-layer update
            model.backward(loss_fn.backward(), layer_hook=self.layer_hook)
            return loss, logits
        if self.fused:                                       # backward may step, too
            for p, rule in self.fused:
                p.fuse = rule
            try:
                model.backward(loss_fn.backward())
            finally:
                for p, _ in self.fused:
                    p.fuse = None
            optimizer.step()                                 # what was not fused
            return loss, logits
        model.backward(loss_fn.backward())                   # backward: fills every p.grad
        if self.grad_hook is not None:
            self.grad_hook(model, optimizer)
        optimizer.step()                                     # update
        return loss, logits


def _shared(model) -> set:
    """ids and data addresses of Parameters that more than one module holds (tied weights),
    or that share one array: their gradient is a sum over uses, which a step fused into
    one use's GEMM would get wrong."""
    from ..core.parameter import Parameter

    seen, shared = set(), set()
    for m in getattr(model, "modules", lambda: [model])():
        for v in vars(m).values():
            if isinstance(v, Parameter):
                for key in (id(v), v.data.ctypes.data):
                    (shared if key in seen else seen).add(key)
    return shared


def train_step(model, loss_fn, optimizer, x, y, **kwargs):
    """One step (see TrainStep); returns (loss, logits)."""
    return TrainStep(model, loss_fn, optimizer, **kwargs)(x, y)
