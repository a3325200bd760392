"""The numerical heart of bareprop: NumPy only, no I/O."""
from .activations import GELU, Identity, LeakyReLU, ReLU, Sigmoid, Softmax, Tanh
from .gradcheck import gradcheck
from .layers import Linear
from .losses import CrossEntropyLoss, MSELoss
from .module import Module
from .parameter import Parameter
from .sequential import Sequential

__all__ = ["GELU", "Identity", "LeakyReLU", "ReLU", "Sigmoid", "Softmax", "Tanh",
           "gradcheck", "Linear", "CrossEntropyLoss", "MSELoss", "Module", "Parameter",
           "Sequential"]
