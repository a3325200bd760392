"""The numerical heart of bareprop: NumPy only, no I/O (with the optional extra ``fast``,
numba-compiled element-wise kernels for float32 training: core/kernels.py)."""
from .activations import GELU, Identity, LeakyReLU, ReLU, Sigmoid, Softmax, Tanh
from .gradcheck import gradcheck
from .conv import Conv2d
from .layers import Linear
from .losses import CrossEntropyLoss, MSELoss
from .module import Module
from .parameter import Parameter
from .registry import LAYERS, build_layer, layer_spec, register_layer
from .pooling import AvgPool2d, GlobalAvgPool2d, MaxPool2d
from .regularization import BatchNorm1d, BatchNorm2d, Dropout, Dropout2d
from .sequential import Sequential
from .shape import Flatten

for _cls in (Linear, GELU, Identity, LeakyReLU, ReLU, Sigmoid, Softmax, Tanh, Dropout,
             BatchNorm1d, Flatten, Sequential, Conv2d, MaxPool2d, AvgPool2d, GlobalAvgPool2d,
             BatchNorm2d, Dropout2d):
    register_layer(_cls)

__all__ = ["GELU", "Identity", "LeakyReLU", "ReLU", "Sigmoid", "Softmax", "Tanh",
           "gradcheck", "Linear", "CrossEntropyLoss", "MSELoss", "Module", "Parameter",
           "Sequential", "BatchNorm1d", "Dropout", "Flatten", "LAYERS", "build_layer",
           "layer_spec", "register_layer", "Conv2d", "MaxPool2d", "AvgPool2d",
           "GlobalAvgPool2d", "BatchNorm2d", "Dropout2d"]
