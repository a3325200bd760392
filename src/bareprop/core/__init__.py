"""The numerical heart of bareprop: NumPy only, no I/O."""
from .activations import GELU, Identity, LeakyReLU, ReLU, Sigmoid, Softmax, Tanh
from .gradcheck import gradcheck
from .layers import Linear
from .losses import CrossEntropyLoss, MSELoss
from .module import Module
from .parameter import Parameter
from .registry import LAYERS, build_layer, layer_spec, register_layer
from .regularization import BatchNorm1d, Dropout
from .sequential import Sequential
from .shape import Flatten

for _cls in (Linear, GELU, Identity, LeakyReLU, ReLU, Sigmoid, Softmax, Tanh, Dropout,
             BatchNorm1d, Flatten, Sequential):
    register_layer(_cls)

__all__ = ["GELU", "Identity", "LeakyReLU", "ReLU", "Sigmoid", "Softmax", "Tanh",
           "gradcheck", "Linear", "CrossEntropyLoss", "MSELoss", "Module", "Parameter",
           "Sequential", "BatchNorm1d", "Dropout", "Flatten", "LAYERS", "build_layer",
           "layer_spec", "register_layer"]
