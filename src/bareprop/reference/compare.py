"""Train bareprop and a framework twin (PyTorch, or Keras 3 on the torch backend) side
by side: same initial weights (copied), same batches in the same order, same dropout
masks (PyTorch), same schedule.

In float64 the PyTorch twin agrees to ~1e-10; in float32 the two drift apart by
round-off, and the per-epoch table shows how far. Keras' own update rules differ in
places (its Adam's epsilon sits outside the bias correction), which the table shows too.
"""
from __future__ import annotations

import os
import time

import numpy as np

from .. import core
from ..errors import ConfigError
from ..optim.constraints import max_norm_
from .torch_twin import _torch, torch_module, torch_optimizer


#: the hyperparameters a schedule moves, copied to the twin before each step
SCHEDULED = ("lr", "momentum", "betas")


class TorchTwin:
    """torch twin whose Dropout layers replay bareprop's masks and whose Linear outputs
    clip their gradient like ``clip_delta``."""

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


class KerasTwin:
    """A keras.Sequential of Dense/activation layers with the copied weights (kernel = W^T)."""

    name = "keras"

    def __init__(self, model, optimizer, loss_fn, max_norm=None):
        os.environ.setdefault("KERAS_BACKEND", "torch")
        try:
            import keras
        except ImportError as exc:
            raise ConfigError(f"--framework keras needs Keras 3 ({exc}): pip install "
                              "'bareprop[keras]' (Keras 3 and the PyTorch backend it runs on "
                              "here, KERAS_BACKEND=torch)") from None
        if model.clip_delta is not None or max_norm:
            raise ConfigError("--framework keras supports neither --clip-delta nor --max-norm")
        self.keras = keras
        dtype = str(model.dtype)
        keras.config.set_floatx(dtype)
        if model.input_shape is None:
            raise ConfigError("--framework keras needs a model with a known input shape")
        layers = [keras.Input(model.input_shape, dtype=dtype)]
        acts = {core.ReLU: lambda l: keras.layers.ReLU(),
                core.Sigmoid: lambda l: keras.layers.Activation("sigmoid"),
                core.Tanh: lambda l: keras.layers.Activation("tanh"),
                core.Identity: lambda l: keras.layers.Activation("linear"),
                core.Softmax: lambda l: keras.layers.Softmax(),
                core.Flatten: lambda l: keras.layers.Flatten(),
                core.LeakyReLU: lambda l: keras.layers.LeakyReLU(negative_slope=l.negative_slope),
                core.GELU: lambda l: keras.layers.Activation(
                    lambda x: keras.activations.gelu(x, approximate=l.approximate == "tanh"))}
        for layer in model.layers:
            if isinstance(layer, core.Linear):
                layers.append(keras.layers.Dense(layer.out_features,
                                                 use_bias=layer.bias is not None))
            elif type(layer) in acts:
                layers.append(acts[type(layer)](layer))
            else:
                raise ConfigError(f"--framework keras has no twin for {type(layer).__name__}; "
                                  "use --framework torch")
        self.model = keras.Sequential(layers)
        weights = []
        for layer in model.layers:
            if isinstance(layer, core.Linear):
                weights.append(layer.weight.data.T.copy())
                if layer.bias is not None:
                    weights.append(layer.bias.data.copy())
        self.model.set_weights(weights)
        if len(optimizer.param_groups) > 1:
            raise ConfigError("--framework keras has no parameter groups; use --framework torch")
        h = optimizer.param_groups[0]
        name = type(optimizer).__name__
        if name == "SGD":
            if h["weight_decay"] or h["dampening"]:
                raise ConfigError("--framework keras: Keras' SGD has no L2 weight decay or "
                                  "dampening in torch's sense; drop --weight-decay")
            opt = keras.optimizers.SGD(h["lr"], momentum=h["momentum"],
                                       nesterov=h["nesterov"])
        elif name in ("Adam", "AdamW"):
            if name == "Adam" and h["weight_decay"]:
                raise ConfigError("--framework keras: use --optimizer adamw for weight decay")
            cls = keras.optimizers.AdamW if name == "AdamW" else keras.optimizers.Adam
            kw = {"weight_decay": h["weight_decay"]} if name == "AdamW" else {}
            opt = cls(h["lr"], beta_1=h["betas"][0], beta_2=h["betas"][1],
                      epsilon=h["eps"], amsgrad=h["amsgrad"], **kw)
        else:
            raise ConfigError(f"--framework keras supports sgd, adam and adamw, not {name.lower()}")
        self.n_classes = model.layers[-1].out_features if isinstance(
            model.layers[-1], core.Linear) else None
        self.loss = keras.losses.CategoricalCrossentropy(
            from_logits=True, label_smoothing=loss_fn.label_smoothing)
        self.model.compile(optimizer=opt, loss=self.loss)
        self.opt = opt

    def _onehot(self, y):
        return np.eye(self.n_classes, dtype=self.keras.config.floatx())[y]

    def step(self, xb, yb, groups) -> float:
        hyper = groups[0]                   # one group: refused otherwise in __init__
        self.opt.learning_rate = hyper["lr"]
        if "momentum" in hyper and hasattr(self.opt, "momentum"):
            self.opt.momentum = hyper["momentum"]
        return float(self.model.train_on_batch(xb, self._onehot(yb)))

    def evaluate(self, test):
        total, correct = 0.0, 0
        for xb, yb in test.epoch(0):
            out = self.keras.ops.convert_to_numpy(self.model(xb, training=False))
            total += float(self.loss(self._onehot(yb), out)) * len(yb)
            correct += int((out.argmax(1) == yb).sum())
        return total / test.n, correct / test.n

    def weights(self):
        out = []
        for w in self.model.get_weights():
            out.append(w.T if w.ndim == 2 else w)   # back to (out, in)
        return out


TWINS = {"torch": TorchTwin, "keras": KerasTwin}


def compare(model, optimizer, loss_fn, train, test, epochs: int, scheduler=None,
            max_norm=None, seed: int = 0, on_epoch=None, framework: str = "torch") -> dict:
    """Run both; returns per-epoch rows and the per-batch losses of each.

    bareprop's schedule and max-norm run through the same callbacks as ``fit`` (a
    ReduceLROnPlateau watches the training loss); the twin copies lr and momentum.
    """
    from ..train import History, LRSchedule, MaxNorm
    from ..train.loop import TrainState, _reseed, evaluate

    from ..train.step import TrainStep

    twin = TWINS[framework](model, optimizer, loss_fn, max_norm)
    step = TrainStep(model, loss_fn, optimizer)
    params = model.parameters()
    callbacks = ([LRSchedule(scheduler)] if scheduler is not None else []) + \
                ([MaxNorm(max_norm)] if max_norm else [])
    state = TrainState(model, optimizer, History(), epochs, len(train))
    for cb in callbacks:
        cb.on_train_begin(state)
    rows, bp_losses, t_losses = [], [], []
    for epoch in range(epochs):
        model.train()
        _reseed(model, seed, epoch)
        t_bp = t_t = 0.0
        sums = np.zeros(2)
        n = 0
        for xb, yb in train.epoch(epoch):
            t0 = time.perf_counter()
            groups = [{k: g[k] for k in SCHEDULED if k in g}  # what this step uses
                      for g in optimizer.param_groups]
            loss, _ = step(xb, yb)
            for cb in callbacks:                              # max-norm, per-batch schedule
                cb.on_batch_end(state, loss, len(yb))
            t1 = time.perf_counter()
            tl = twin.step(xb, yb, groups)
            t2 = time.perf_counter()
            t_bp += t1 - t0
            t_t += t2 - t1
            bp_losses.append(loss)
            t_losses.append(tl)
            sums += (loss * len(yb), tl * len(yb))
            n += len(yb)
        for cb in callbacks:                                  # per-epoch schedule
            cb.on_epoch_end(state, {"train_loss": sums[0] / n})
        r = evaluate(model, loss_fn, test)
        t_loss, t_acc = twin.evaluate(test)
        diff = max(float(np.max(np.abs(p.data - w))) for p, w in zip(params, twin.weights()))
        row = {"epoch": epoch + 1,
               "bareprop": {"train_loss": sums[0] / n, "test_loss": r.loss,
                            "test_accuracy": r.accuracy, "seconds": t_bp},
               twin.name: {"train_loss": sums[1] / n, "test_loss": t_loss,
                           "test_accuracy": t_acc, "seconds": t_t},
               "max_abs_weight_diff": diff}
        rows.append(row)
        if on_epoch:
            on_epoch(row)
    return {"framework": twin.name, "epochs": rows,
            "batch_loss": {"bareprop": bp_losses, twin.name: t_losses}}
