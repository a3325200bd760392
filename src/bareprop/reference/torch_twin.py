"""Build the PyTorch twin of a bareprop model and optimizer, with copied weights.

Used by the tests (float64, equality to ~1e-10) and by ``bareprop compare``.
"""
from __future__ import annotations

import numpy as np

from .. import core, optim


def _torch():
    try:
        import torch
    except ImportError as exc:  # pragma: no cover - exercised without torch only
        from ..errors import ConfigError

        raise ConfigError(
            "PyTorch is not installed; install it with: pip install 'bareprop[torch]'"
        ) from exc
    return torch


def torch_module(layer):
    """The torch.nn equivalent of one bareprop layer (weights copied)."""
    torch = _torch()
    nn = torch.nn
    if isinstance(layer, core.Sequential):
        return nn.Sequential(*[torch_module(child) for child in layer.layers])
    if isinstance(layer, core.Linear):
        dtype = torch.float64 if layer.weight.dtype == np.float64 else torch.float32
        t = nn.Linear(layer.in_features, layer.out_features, bias=layer.bias is not None,
                      dtype=dtype)
        with torch.no_grad():
            t.weight.copy_(torch.from_numpy(layer.weight.data.copy()))
            if layer.bias is not None:
                t.bias.copy_(torch.from_numpy(layer.bias.data.copy()))
        return t
    simple = {
        core.ReLU: lambda: nn.ReLU(inplace=layer.inplace),
        core.Sigmoid: lambda: nn.Sigmoid(),
        core.Tanh: lambda: nn.Tanh(),
        core.Identity: lambda: nn.Identity(),
        core.Softmax: lambda: nn.Softmax(dim=-1),
        core.Flatten: lambda: nn.Flatten(),
        core.LeakyReLU: lambda: nn.LeakyReLU(layer.negative_slope),
        core.GELU: lambda: nn.GELU(approximate=layer.approximate),
    }
    for cls, make in simple.items():
        if type(layer) is cls:
            return make()
    extra = _extra_modules(layer)
    if extra is not None:
        return extra
    raise TypeError(f"no PyTorch twin for {type(layer).__name__}")


def _extra_modules(layer):
    """Twins of the toolkit layers (Dropout, BatchNorm1d) when they exist."""
    torch = _torch()
    Dropout = getattr(core, "Dropout", None)
    BatchNorm1d = getattr(core, "BatchNorm1d", None)
    if Dropout is not None and isinstance(layer, Dropout):
        return torch.nn.Dropout(layer.p)
    if BatchNorm1d is not None and isinstance(layer, BatchNorm1d):
        dtype = torch.float64 if layer.weight.dtype == np.float64 else torch.float32
        t = torch.nn.BatchNorm1d(layer.num_features, eps=layer.eps, momentum=layer.momentum,
                                 dtype=dtype)
        with torch.no_grad():
            t.weight.copy_(torch.from_numpy(layer.weight.data.copy()))
            t.bias.copy_(torch.from_numpy(layer.bias.data.copy()))
            t.running_mean.copy_(torch.from_numpy(layer.running_mean.copy()))
            t.running_var.copy_(torch.from_numpy(layer.running_var.copy()))
        return t
    return None


def torch_optimizer(opt: optim.Optimizer, tmodel, model=None):
    """The torch.optim twin of a bareprop optimizer over ``tmodel``'s parameters, with
    the same parameter groups and per-group hyperparameters.

    Parameters pair up by position: ``model.parameters()`` with ``tmodel.parameters()``
    (without ``model``: the optimizer's parameters, in group order, with tmodel's).
    """
    torch = _torch()
    table = {
        optim.SGD: torch.optim.SGD,
        optim.AdamW: torch.optim.AdamW,
        optim.Adam: torch.optim.Adam,
        optim.RMSprop: torch.optim.RMSprop,
        optim.Adagrad: torch.optim.Adagrad,
    }
    cls = table.get(type(opt))
    if cls is None:
        raise TypeError(f"no PyTorch twin for optimizer {type(opt).__name__}")
    ours = list(model.parameters()) if model is not None else opt.params
    theirs = list(tmodel.parameters())
    if len(ours) != len(theirs):
        raise TypeError(f"{len(ours)} bareprop parameters but {len(theirs)} torch ones")
    twin_of = {id(p): tp for p, tp in zip(ours, theirs)}
    groups = [{**{k: v for k, v in g.items() if k != "params"},
               "params": [twin_of[id(p)] for p in g["params"]]} for g in opt.param_groups]
    topt = cls(groups, **opt.defaults)
    if cls is torch.optim.Adagrad:
        # torch fills every sum from the constructor's initial_accumulator_value, bareprop
        # from the group's: start the twin where bareprop starts
        with torch.no_grad():
            for tg in topt.param_groups:
                for tp in tg["params"]:
                    topt.state[tp]["sum"].fill_(tg["initial_accumulator_value"])
    return topt


def to_numpy(t) -> np.ndarray:
    return t.detach().cpu().numpy()
