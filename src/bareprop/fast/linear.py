"""Fast units for a training step: a Linear (optionally with the ReLU after it) and a ReLU,
computing exactly the reference layers' maths (core/linear.py, core/activations.py) with
the compiled kernels (fast/kernels.py) and an SGD step fused into the weight-gradient GEMM
(fast/sgd.py).

A unit holds the reference layers it stands for (so their Parameters, modes and state
dicts are the model's own) and keeps its own cache; it never writes another module's
fields. The plan (fast/plan.py) puts units in place of those layers in the chain a
training step runs; the model itself is unchanged and stays the reference.

    FastLinear(linear, relu)   y = max(x W^T + b, 0): the bias add and the ReLU in one
                               compiled pass over z^T; backward dz = dout [y > 0] in one
                               pass, then the Linear's grads and dx from dz
    FastLinearStep(..., step)  the same, with W's SGD step applied inside dW's GEMM:
                               dx is formed first, with the weights the forward used
    FastReLU(relu)             the ReLU, its backward in one compiled pass

Each unit checks, per call, what the kernels need (float32, matching layouts) and falls
back to the reference formula otherwise, so the results equal the reference path within
float32 rounding whatever arrives (tests/fast/test_kernels.py, tests/fast/test_fused.py).
"""
from __future__ import annotations

import numpy as np

from ..core.linear import affine_t, bias_grad, input_grad, weight_grad
from ..core.module import Module
from . import kernels


def _same_layout(a, b) -> bool:
    """Both C- or both F-contiguous with one shape: their K-order ravels line up."""
    if a.shape != b.shape:
        return False
    return ((a.flags.c_contiguous and b.flags.c_contiguous)
            or (a.flags.f_contiguous and b.flags.f_contiguous))


def relu_back(dout: np.ndarray, y: np.ndarray) -> np.ndarray:
    """dx = dout * [y > 0], in one compiled pass where it can run (float32, one layout),
    else NumPy's (core/activations.ReLU's formula)."""
    k = kernels.get(dout.dtype)
    if k is not None and y.dtype == dout.dtype and _same_layout(dout, y):
        dx = np.empty_like(dout)                  # dout's layout: ravel(order="K") views
        k.relu_back(dx.ravel(order="K"), dout.ravel(order="K"), y.ravel(order="K"))
        return dx
    return dout * (y > 0)


class _Unit(Module):
    """A module standing for reference layers: shapes, spec and repr are theirs."""

    def output_shape(self, in_shape):
        for layer in self.stands_for():
            in_shape = layer.output_shape(in_shape)
        return in_shape

    def stands_for(self) -> list[Module]:  # pragma: no cover - abstract
        raise NotImplementedError

    def extra_repr(self):
        return ", ".join(repr(m) for m in self.stands_for())


class FastReLU(_Unit):
    """ReLU with a compiled backward (see the module docstring)."""

    def __init__(self, relu):
        self.relu = relu

    def stands_for(self):
        return [self.relu]

    def forward(self, x):
        self._y = y = self.relu.forward(x)
        return y

    def input_grad(self, dout):
        return relu_back(dout, self._y)


class FastLinear(_Unit):
    """A Linear, and the ReLU after it when ``relu`` is given (see the module docstring)."""

    def __init__(self, linear, relu=None):
        self.linear, self.relu = linear, relu
        self._x = self._y = None
        self._dz = None                     # (dout, dz): the ReLU's backward, made once

    def stands_for(self):
        return [self.linear] + ([self.relu] if self.relu is not None else [])

    def forward(self, x):
        lin = self.linear
        x = lin.check_input(x)
        self._x = x                                          # (N, in)
        w, b = lin.weight.data, lin.bias
        out_t = affine_t(x, w)                               # (out, N), C-ordered
        k = kernels.get(w.dtype) if self.relu is not None and b is not None else None
        if k is not None:
            k.bias_relu(out_t, b.data)                       # max(z + b, 0) in one pass
            y = out_t.T
        else:
            if b is not None:
                out_t += b.data[:, None]
            y = out_t.T                                      # (N, out), F-ordered
            if self.relu is not None:
                y = np.maximum(y, 0, out=y)
        self._y = y
        self._dz = None
        return y

    def _delta(self, dout):
        """dz = dL/d(the Linear's output): dout through the ReLU's mask, if any."""
        if self.relu is None:
            return dout
        if self._dz is None or self._dz[0] is not dout:
            self._dz = (dout, relu_back(dout, self._y))
        return self._dz[1]

    def accumulate_grads(self, dout):
        dz, lin = self._delta(dout), self.linear
        lin.weight.accumulate(weight_grad(dz, self._x))      # (out, in)
        if lin.bias is not None:
            lin.bias.accumulate(bias_grad(dz))               # (out,)

    def input_grad(self, dout):
        return input_grad(self._delta(dout), self.linear.weight.data, self._x)


class FastLinearStep(FastLinear):
    """FastLinear whose weight takes its SGD step inside dW's GEMM (``step``: a
    fast.sgd.FusedSGD). Its backward is one call, dx first: the step changes W."""

    def __init__(self, linear, relu, step):
        super().__init__(linear, relu)
        self.step = step

    def backward(self, dout, need_dx: bool = True):
        dz = self._delta(dout)
        lin = self.linear
        dx = input_grad(dz, lin.weight.data, self._x) if need_dx else None
        if not self.step(dz, self._x):                       # declined: the unfused path
            lin.weight.accumulate(weight_grad(dz, self._x))
        if lin.bias is not None:
            lin.bias.accumulate(bias_grad(dz))
        self._dz = None
        return dx
