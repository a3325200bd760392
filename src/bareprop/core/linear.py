"""Linear, the fully connected layer, and its maths as functions (the layer holds the
state, the functions the formulas: fast/ reuses them around its compiled kernels).

Not here: activations (activations.py), losses (losses.py), the fused Linear + ReLU
and the update fused into the weight-gradient GEMM (fast/).
"""
from __future__ import annotations

import functools
import math

import numpy as np

from ..errors import positive_int
from .catalog import Arch, Arg, flat_features, register_layer, width, with_bias
from .init import as_generator, get_initializer, weight_dtype
from .module import Module, flatten_hint
from .parameter import Parameter


@functools.lru_cache(maxsize=64)
def ones(n: int, dtype) -> np.ndarray:
    """A read-only (n,) vector of ones, cached per (n, dtype): ``ones(N) @ dout`` sums a
    batch's rows as one GEMV."""
    a = np.ones(n, dtype)
    a.flags.writeable = False
    return a


def affine_t(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """z^T = W x^T (out, N), C-ordered, for x (N, in) and W (out, in): the bias is added
    by the caller (in place, or fused with what follows)."""
    return w @ x.T


def weight_grad(dz: np.ndarray, x: np.ndarray) -> np.ndarray:
    """dW = dz^T x (out, in), for dz (N, out) and x (N, in)."""
    return dz.T @ x


def bias_grad(dz: np.ndarray) -> np.ndarray:
    """db = 1^T dz (out,): the batch sum as a GEMV (2-3x faster than ``dz.sum(0)``)."""
    return ones(len(dz), dz.dtype) @ dz


def input_grad(dz: np.ndarray, w: np.ndarray, x: np.ndarray | None) -> np.ndarray:
    """dx = dz W (N, in), in x's layout: a feature-major x (a Linear's output, F-ordered)
    gets dx computed as (W^T dz^T)^T, so a Linear below takes it without a copy."""
    if x is not None and not x.flags.c_contiguous:
        return (w.T @ dz.T).T
    return dz @ w


def _linear_params(s):
    i, o = width(s, "in_features"), width(s, "out_features")
    return with_bias(s, {"weight": (o, i)}, o)


@register_layer(
    arch=Arch("linear", Arg("out_features", "int"), Arg("bias", "bool", True),
              Arg("init", "word", None), aliases=("dense",),
              sizes=lambda shape: {"in_features": flat_features(shape)}),
    params=_linear_params,
    onnx=lambda g, m, x: g.node("Gemm", [x, *g.params("weight", "bias")], transB=1),
    torch=lambda t, m: t.nn.Linear(m.in_features, m.out_features, bias=m.bias is not None),
    keras=lambda k, m, shape: [k.layers.Dense(m.out_features, use_bias=m.bias is not None)])
class Linear(Module):
    """Fully connected layer: ``y = x W^T + b``.

    Shape: x (N, in_features) -> y (N, out_features); W (out_features, in_features)
    as in the notebook and ``torch.nn.Linear``; b (out_features,).

    Backward, with dout = dL/dy (N, out):
        dW = dout^T x   (out, in)      db = sum_n dout   (out,)      dx = dout W   (N, in)
    (Sequential asks the first layer for no dx: for 784-128-10 that GEMM is about half
    the backward's FLOPs, a third of the whole step's.) In a training step whose SGD
    update is fused into this GEMM (fast/linear.py) dW is never formed: the GEMM updates
    W, or SGD's momentum, in place.

    Layout: y is computed as its transpose y^T = W x^T (out, N), C-ordered, and returned
    as the (N, out) view of it, which is F-ordered; dx likewise as (W^T dout^T)^T. The
    same values (db's GEMV sums in another order: equal within rounding), but BLAS runs
    these GEMMs 2-20% faster with the long dimension first (measured on AMD EPYC and
    Intel Xeon, docs/benchmarks.md), and a Linear after a Linear then gets its input as
    a C-ordered x^T with nothing copied. dx takes x's layout (a C-ordered x from Flatten
    gets a C-ordered dx, which Flatten reshapes without a copy). NumPy treats the
    F-ordered arrays like any other; ``np.ascontiguousarray`` makes one C-ordered.

    Initialisation: ``init`` names an initialiser from ``bareprop.core.init``
    (default ``"torch"``, torch.nn.Linear's own); biases are zero except under
    ``"torch"``, which draws them from U(-1/sqrt(in), 1/sqrt(in)) as PyTorch does.
    ``init=None`` draws nothing and leaves W and b at zero (lazily allocated, untouched):
    for a model whose weights are loaded from a file, or built for its shapes alone.

    >>> import numpy as np, bareprop as bp
    >>> layer = bp.Linear(3, 2, rng=0)
    >>> layer(np.ones((4, 3), np.float32)).shape
    (4, 2)
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True,
                 init="torch", rng=None, dtype=np.float32):
        self.in_features = positive_int("in_features", in_features)
        self.out_features = positive_int("out_features", out_features)
        self.init = init
        if init is not None:
            get_initializer(init)  # fail at construction on an unknown name
        dtype = weight_dtype(dtype)
        self.weight = Parameter(np.zeros((self.out_features, self.in_features), dtype))
        self.bias = Parameter(np.zeros(self.out_features, dtype)) if bias else None
        self._x: np.ndarray | None = None
        if init is not None:          # None: the weights come from a file, or only shapes
            self.reset_parameters(as_generator(rng))

    def reset_parameters(self, rng: np.random.Generator) -> None:
        """Draw W (and b under the torch init) from ``rng``; other biases are zero."""
        dtype = self.weight.data.dtype
        shape = (self.out_features, self.in_features)
        w = get_initializer(self.init)(shape, self.in_features, self.out_features, rng)
        self.weight.replace(np.ascontiguousarray(w, dtype=dtype))  # cast after scaling
        if self.bias is not None:
            if self.init == "torch":
                bound = 1.0 / math.sqrt(self.in_features)
                self.bias.replace(rng.uniform(-bound, bound, self.out_features).astype(dtype))
            else:
                self.bias.replace(np.zeros(self.out_features, dtype))

    #: its output is a new array nobody else keeps: a ReLU after it may work in place
    fresh_output = True

    def forward(self, x: np.ndarray) -> np.ndarray:
        """y = x W^T + b, computed as z^T = W x^T (+ b along the batch) and returned as
        its (N, out) view, F-ordered."""
        x = self.check_input(x)
        self._x = x                                  # (N, in)
        out_t = affine_t(x, self.weight.data)        # (out, N), C-ordered
        if self.bias is not None:
            out_t += self.bias.data[:, None]         # broadcast along the batch
        return out_t.T                               # (N, out), F-ordered

    def check_input(self, x: np.ndarray) -> np.ndarray:
        """x as (N, in) in the weight's dtype (uint8 pixels, float64 data into a float32
        model are cast), or ValueError naming the shape it expects."""
        if x.ndim != 2 or x.shape[1] != self.in_features:
            raise ValueError(f"Linear expects input of shape (N, {self.in_features}), got "
                             f"{x.shape}{flatten_hint(x.shape[1:], (self.in_features,))}")
        w = self.weight.data
        return x if x.dtype == w.dtype else x.astype(w.dtype)

    def accumulate_grads(self, dout: np.ndarray) -> None:
        self.weight.accumulate(weight_grad(dout, self._x))       # (out, in)
        if self.bias is not None:
            self.bias.accumulate(bias_grad(dout))                # (out,)

    def input_grad(self, dout: np.ndarray) -> np.ndarray:
        return input_grad(dout, self.weight.data, self._x)       # (N, in), x's layout

    def output_shape(self, in_shape):
        self.check_input_shape(in_shape)
        return (self.out_features,)

    def input_shape_hint(self):
        return (self.in_features,)

    def short_name(self):
        return f"Linear({self.in_features}, {self.out_features})"

    def spec(self):
        return {"in_features": self.in_features, "out_features": self.out_features,
                "bias": self.bias is not None}

    def extra_repr(self) -> str:
        return (f"{self.in_features}, {self.out_features}, bias={self.bias is not None}, "
                f"init={self.init!r}")
