"""The numerical heart of bareprop: NumPy only, no I/O."""
from .activations import GELU, Identity, LeakyReLU, ReLU, Sigmoid, Softmax, Tanh
from .gradcheck import gradcheck
from .layers import Linear
from .losses import CrossEntropyLoss, MSELoss
from .module import Module
from .parameter import Parameter
from .regularization import BatchNorm1d, Dropout
from .sequential import Sequential

#: every layer class by name, for rebuilding saved models
LAYER_TYPES = {cls.__name__: cls for cls in (Linear, GELU, Identity, LeakyReLU, ReLU, Sigmoid,
                                             Softmax, Tanh, Dropout, BatchNorm1d)}

__all__ = ["GELU", "Identity", "LeakyReLU", "ReLU", "Sigmoid", "Softmax", "Tanh",
           "gradcheck", "Linear", "CrossEntropyLoss", "MSELoss", "Module", "Parameter",
           "Sequential", "BatchNorm1d", "Dropout"]
