"""The one dispatch point of the fast paths: which of a model's layers a training step
runs through a fast unit, decided once, when the step is built.

``plan(model, loss_fn, optimizer, fuse_updates)`` returns a Plan: ``net``, the chain the
step runs forward and backward (the model's own modules, with fast units from
fast/linear.py in place of some), and ``loss``. The rules, in order of the chain:

  Linear then ReLU      FastLinear(linear, relu): bias add + ReLU in one compiled pass,
                        the ReLU's backward in one more (not under a layer hook: hooks
                        see each layer's own delta)
  Linear                FastLinearStep when its weight's SGD step can be fused into the
                        weight-gradient GEMM (fuse_updates, fast/sgd.py)
  ReLU                  FastReLU: its backward compiled
  Conv2d then BatchNorm2d, ReLU, a 2x2 stride-2 MaxPool2d or AvgPool2d (each optional,
  in that order)
                        FastConvBlock: what follows the conv's GEMM in one compiled
                        pass (three with batch norm in training), the backward likewise,
                        written into the conv's delta layout (conv.py; not under a
                        layer hook)
  LSTM                  FastRecurrent(lstm, FastLSTMCell): each time step's gates and
                        cell update in one compiled loop, forward and back (recurrent.py)
  CrossEntropyLoss      FastCrossEntropy: loss and gradient in one compiled call

Only where the model is float32 and the mode allows (BAREPROP_ACCEL, BAREPROP_FUSED):
float64 is the verification dtype and always runs the reference path, bit for bit. A
layer class or forward replaced by a user (a subclass, a profiler's wrapper) is left to
run as written: only the exact reference classes are planned. A model that is not a
Sequential runs as it is.

New fast paths join here as one more rule.
"""
from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass, field

import numpy as np

from ..core import CrossEntropyLoss, Sequential
from ..core.activations import Activation, ReLU
from ..core.dropout import Dropout
from ..core.flatten import Flatten
from ..core.conv import Conv2d
from ..core.linear import Linear
from ..core.norm import BatchNorm1d, BatchNorm2d
from ..core.parameter import Parameter
from ..core.pooling import AvgPool2d, GlobalAvgPool2d, MaxPool2d
from ..core.recurrent import LSTM
from . import convsplit, kernels
from .conv import FastConvBlock
from .linear import FastLinear, FastLinearStep, FastReLU
from .loss import FastCrossEntropy
from .recurrent import FastRecurrent, fast_cell
from .sgd import fused_sgd


@dataclass
class Plan:
    """What a training step runs: ``net`` (forward, backward), ``loss`` (forward,
    backward), the parameters whose step backward applies (``fused``: their grad stays
    None and the optimizer's step skips them), and the layer lists it was made from."""

    net: object
    loss: object
    fused: list = field(default_factory=list)
    made_from: list = field(default_factory=list)     # [(Sequential, its layers then)]
    conv_blocks: bool = False         # FastConvBlocks do the net's heavy work (_conv_net)

    def held(self):
        """The context a step runs in: for a convnet, BLAS held at one thread and its
        threads given to the blocks (convsplit.hold); otherwise nothing."""
        return convsplit.hold(np.float32) if self.conv_blocks else nullcontext()

    def is_current(self) -> bool:
        """Whether every Sequential planned still holds the layers it held (a layer
        swapped into a model after its step was built calls for a new plan)."""
        for seq, layers in self.made_from:     # tuples compare item by item, in C
            if tuple(seq.layers) != layers:
                return False
        return True


#: the reference forwards the fast units stand in for, as this module found them: a class
#: whose forward was replaced since (a profiler's wrapper, a mock) is run as it is
_REFERENCE = {Linear: Linear.forward, ReLU: ReLU.forward, LSTM: LSTM.forward,
              Conv2d: Conv2d.forward, MaxPool2d: MaxPool2d.forward,
              BatchNorm2d: BatchNorm2d.forward, AvgPool2d: AvgPool2d.forward}


def _exact(layer, cls) -> bool:
    """``layer`` is an instance of exactly ``cls`` whose forward nobody replaced, on the
    instance or on the class."""
    return (type(layer) is cls and "forward" not in vars(layer)
            and cls.forward is _REFERENCE[cls])


def plan(model, loss_fn, optimizer=None, *, fuse_updates: bool = False,
         layer_hooks: bool = False) -> Plan:
    """The Plan for a training step of ``model`` and ``loss_fn`` (see the module
    docstring). ``optimizer`` with ``fuse_updates``: whose SGD steps may be fused into
    backward (only when nothing reads the gradients between backward and step).
    ``layer_hooks``: a hook runs around each layer (delta clipping, the notebook's
    order), so no two layers are fused into one unit."""
    if not isinstance(model, Sequential) or getattr(model, "dtype", None) != np.float32:
        return Plan(model, loss_fn)
    compiled = kernels.get(np.float32) is not None
    shared = _shared(model) if fuse_updates else set()
    fused = []

    def step_for(linear):
        if not fuse_updates or optimizer is None:
            return None
        p = linear.weight
        if id(p) in shared or p.data.ctypes.data in shared:
            return None            # a shared weight is stepped once, unfused
        rule = fused_sgd(optimizer, p)
        if rule is not None:
            fused.append(p)
        return rule

    hooks = layer_hooks or model.clip_delta is not None

    made_from, blocks = [], []

    def units(seq: Sequential):
        layers, out, i = seq.layers, [], 0
        made_from.append((seq, tuple(layers)))
        while i < len(layers):
            layer = layers[i]
            if type(layer) is Sequential:
                out.append(_chain(layer, units(layer)))
                i += 1
                continue
            if _exact(layer, Linear):
                nxt = layers[i + 1] if i + 1 < len(layers) else None
                relu = nxt if compiled and not hooks and _exact(nxt, ReLU) else None
                step = step_for(layer)
                if step is not None:
                    out.append(FastLinearStep(layer, relu, step))
                elif relu is not None:
                    out.append(FastLinear(layer, relu))
                else:
                    out.append(layer)
                i += 2 if relu is not None else 1
                continue
            if compiled and not hooks and _exact(layer, Conv2d):
                block = _conv_block(layers, i)
                if block is not None:
                    out.append(block)
                    blocks.append(block)
                    i += len(block.stands_for())
                    continue
            cell = fast_cell(layer) if compiled and _exact(layer, LSTM) else None
            if cell is not None:
                out.append(FastRecurrent(layer, cell))
            else:
                out.append(FastReLU(layer) if compiled and _exact(layer, ReLU) else layer)
            i += 1
        return out

    net = _chain(model, units(model))
    loss = FastCrossEntropy(loss_fn) if compiled and type(loss_fn) is CrossEntropyLoss \
        else loss_fn
    return Plan(net, loss, fused, made_from, _conv_net(net, blocks))


def inference_plan(model) -> Plan:
    """The Plan of a forward of ``model`` outside training: its ``net`` has the fast units
    (in the model's mode: eval for them); ``held()`` splits its conv blocks' batches."""
    return plan(model, None)


def inference_net(model):
    """The chain a forward of ``model`` runs outside training (evaluate, predict_proba):
    the plan's, with its fast units (in the model's mode: eval for them), or the model."""
    return inference_plan(model).net


#: units that are cheap beside conv blocks, or a convnet's small Linear head: with BLAS
#: held at one thread for a step (convsplit.hold) they lose little
_LIGHT = (Activation, FastReLU, Flatten, Dropout, BatchNorm1d, MaxPool2d, AvgPool2d,
          GlobalAvgPool2d, Linear, FastLinear, FastLinearStep)


def _conv_net(net, blocks: list) -> bool:
    """Whether a step of ``net`` should split its conv blocks' batches (hold BLAS at one
    thread): it has blocks and nothing else that leans on BLAS's threads (an unfused
    Conv2d, an LSTM, attention: the `vit` preset's encoder would then run its GEMMs on
    one core)."""
    units = net.layers if isinstance(net, Sequential) else [net]
    return bool(blocks) and all(isinstance(u, (FastConvBlock,) + _LIGHT) for u in units)


def _conv_block(layers, i: int):
    """FastConvBlock for the Conv2d at layers[i] and the BatchNorm2d, ReLU and 2x2
    stride-2 max or average pool right after it (each optional, in that order), or None
    when none follows."""
    j, bn, relu, pool = i + 1, None, None, None
    if j < len(layers) and _exact(layers[j], BatchNorm2d):
        bn, j = layers[j], j + 1
    if j < len(layers) and _exact(layers[j], ReLU):
        relu, j = layers[j], j + 1
    if (j < len(layers) and (_exact(layers[j], MaxPool2d) or _exact(layers[j], AvgPool2d))
            and layers[j].kernel_size == (2, 2) and layers[j].stride == (2, 2)):
        pool = layers[j]
    if bn is None and relu is None and pool is None:
        return None
    return FastConvBlock(layers[i], bn, relu, pool)


def _chain(model: Sequential, units: list):
    """``model`` itself when no unit replaced a layer, else a Sequential of the units
    with the model's delta clipping (the same modules: same parameters and state)."""
    if len(units) == len(model.layers) and all(u is m for u, m in zip(units, model.layers)):
        return model
    return Sequential(*units, clip_delta=model.clip_delta)


def _shared(model) -> set:
    """ids and data addresses of Parameters that more than one module holds (tied weights),
    or that share one array: their gradient is a sum over uses, which a step fused into
    one use's GEMM would get wrong."""
    seen, shared = set(), set()
    for m in model.modules():
        for v in vars(m).values():
            if isinstance(v, Parameter):
                for key in (id(v), v.data.ctypes.data):
                    (shared if key in seen else seen).add(key)
    return shared
