"""The numerical heart of bareprop: the reference maths, NumPy only, no I/O.

Every layer declares itself once, beside its class (core/catalog.py); this package's
layer names (``core.Linear`` ...) and bareprop's public ones come from that catalog.
Not here: fast paths (fast/), training (train/).
"""
from . import activations, conv, dropout, flatten, linear, norm, pooling  # noqa: F401 (register)
from . import recurrent, sequence  # noqa: F401 (register)
from . import attention, layernorm, tokens, transformer  # noqa: F401 (register)
from .catalog import LAYERS, build_layer, info, layer_spec, public_layers, register_layer
from .gradcheck import gradcheck
from .losses import CrossEntropyLoss, MSELoss
from .module import Module
from .parameter import Parameter
from .sequential import Sequential, Step, walk

globals().update(public_layers())

__all__ = [*public_layers(), "gradcheck", "CrossEntropyLoss", "MSELoss", "Module",
           "Parameter", "LAYERS", "build_layer", "info", "layer_spec", "register_layer",
           "walk", "Step"]
