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


def torch_module(layer, replay_masks: bool = False):
    """The torch.nn equivalent of one bareprop layer (weights and buffers copied).

    A Sequential maps child by child, so parameter order and ``state_dict`` indices
    line up (``0.weight`` is layer 0's weight on both sides). Dropout layers become
    ``nn.Dropout``/``nn.Dropout2d`` with torch's own random masks, or, with
    ``replay_masks``, a module that multiplies by the mask bareprop's layer drew in its
    last forward (a twin must run bareprop's step first).
    """
    torch = _torch()
    nn = torch.nn
    if isinstance(layer, core.Sequential):
        return nn.Sequential(*[torch_module(child, replay_masks) for child in layer.layers])
    if isinstance(layer, core.Linear):
        t = nn.Linear(layer.in_features, layer.out_features, bias=layer.bias is not None,
                      dtype=_dtype(layer.weight))
        return _copy_params(t, layer)
    if isinstance(layer, core.Conv2d):
        # padding "same"/"valid" or a pair, read by torch alike ("same" with an even
        # kernel puts the extra pixel at the bottom/right on both sides)
        t = nn.Conv2d(layer.in_channels, layer.out_channels, layer.kernel_size,
                      stride=layer.stride, padding=layer.padding, bias=layer.bias is not None,
                      dtype=_dtype(layer.weight))
        return _copy_params(t, layer)
    if isinstance(layer, core.Dropout):
        if replay_masks:
            return _mask_replay()(layer)
        return (nn.Dropout2d if isinstance(layer, core.Dropout2d) else nn.Dropout)(layer.p)
    if isinstance(layer, (core.BatchNorm1d, core.BatchNorm2d)):
        cls = nn.BatchNorm2d if isinstance(layer, core.BatchNorm2d) else nn.BatchNorm1d
        t = cls(layer.num_features, eps=layer.eps, momentum=layer.momentum,
                dtype=_dtype(layer.weight))
        _copy_params(t, layer)
        with torch.no_grad():
            t.running_mean.copy_(torch.from_numpy(layer.running_mean.copy()))
            t.running_var.copy_(torch.from_numpy(layer.running_var.copy()))
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
        # pools have no padding, and floor the output size, as torch's defaults do
        core.MaxPool2d: lambda: nn.MaxPool2d(layer.kernel_size, layer.stride),
        core.AvgPool2d: lambda: nn.AvgPool2d(layer.kernel_size, layer.stride),
        # (N, C, H, W) -> (N, C, 1, 1) -> (N, C); no parameters, so indices stay aligned
        core.GlobalAvgPool2d: lambda: nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten()),
    }
    for cls, make in simple.items():
        if type(layer) is cls:
            return make()
    raise TypeError(f"no PyTorch twin for {type(layer).__name__}")


def _dtype(param):
    torch = _torch()
    return torch.float64 if param.dtype == np.float64 else torch.float32


def _copy_params(t, layer):
    """Copy ``layer``'s weight and bias (if any) into torch module ``t``; returns ``t``."""
    torch = _torch()
    with torch.no_grad():
        t.weight.copy_(torch.from_numpy(layer.weight.data.copy()))
        if layer.bias is not None:
            t.bias.copy_(torch.from_numpy(layer.bias.data.copy()))
    return t


_MASK_REPLAY = None


def _mask_replay():
    """The MaskReplay class (defined on first use: torch is imported lazily)."""
    global _MASK_REPLAY
    if _MASK_REPLAY is None:
        torch = _torch()

        class MaskReplay(torch.nn.Module):
            """x * the mask (already scaled by 1/(1-p)) that the bareprop Dropout drew in
            its last forward: (N, D) for Dropout, (N, C, 1, 1) for Dropout2d."""

            def __init__(self, layer):
                super().__init__()
                self.layer = layer

            def forward(self, x):
                mask = self.layer._mask
                return x if (not self.training or mask is None) else x * torch.from_numpy(mask)

        _MASK_REPLAY = MaskReplay
    return _MASK_REPLAY


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
