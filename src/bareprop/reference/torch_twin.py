"""Build the PyTorch twin of a bareprop model and optimizer, with copied weights.

Used by the tests (float64, equality to ~1e-10) and by ``bareprop compare``.
"""
from __future__ import annotations

import numpy as np

from .. import core, optim
from . import torch_recurrent


def _torch():
    try:
        import torch
    except ImportError as exc:  # pragma: no cover - exercised without torch only
        from ..errors import ConfigError

        raise ConfigError(
            "PyTorch is not installed; install it with: pip install 'bareprop[torch]'"
        ) from exc
    return torch


class _Twins:
    """What a layer's ``torch`` declaration builds its twin from (core/catalog.py):
    ``nn`` (torch.nn), and ``replay(layer)``: a module replaying the mask a bareprop
    Dropout drew, or None when masks are not replayed; ``recurrent(layer)``: the twin of
    an RNN, LSTM, GRU or Cols (reference/torch_recurrent.py)."""

    recurrent = staticmethod(torch_recurrent.twin)

    def attention(self, layer):
        """The twin of an attention, transformer or token layer (reference/torch_attention.py)."""
        from . import torch_attention

        return torch_attention.twin(self, layer)

    def __init__(self, nn, replay_masks: bool):
        self.nn, self.replay_masks = nn, replay_masks

    def replay(self, layer):
        return _mask_replay()(layer) if self.replay_masks else None


def torch_module(layer, replay_masks: bool = False):
    """The torch.nn equivalent of one bareprop layer (weights and buffers copied), as its
    catalog entry declares it.

    A Sequential maps child by child, so parameter order and ``state_dict`` indices
    line up (``0.weight`` is layer 0's weight on both sides). Dropout layers become
    ``nn.Dropout``/``nn.Dropout2d`` with torch's own random masks, or, with
    ``replay_masks``, a module that multiplies by the mask bareprop's layer drew in its
    last forward (a twin must run bareprop's step first). The weights are copied with
    ``load_state_dict`` of the names bareprop gives them, strictly: a twin whose names or
    shapes differ from PyTorch's is refused here.
    """
    torch = _torch()
    nn = torch.nn
    if isinstance(layer, core.Sequential):
        return nn.Sequential(*[torch_module(child, replay_masks) for child in layer.layers])
    entry = core.info(layer)
    if entry is None or entry.torch is None:
        raise TypeError(f"no PyTorch twin for {type(layer).__name__}")
    t = entry.torch(_Twins(nn, replay_masks), layer)
    state = layer.state_dict()
    if state:
        dtype = torch.float64 if next(iter(state.values())).dtype == np.float64 \
            else torch.float32
        t.to(dtype)
        from ..interop.weights import torch_state_dict

        t.load_state_dict({k: torch.from_numpy(np.array(v))
                           for k, v in torch_state_dict(layer).items()})
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
                mask = self.layer.mask
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
