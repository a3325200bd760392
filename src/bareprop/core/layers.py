"""Linear, the fully connected layer.

Each keeps in its cache exactly what its backward needs and nothing more.
Not here: activations (activations.py) and losses (losses.py).
"""
from __future__ import annotations

import functools
import math

import numpy as np

from ..errors import ConfigError, positive_int
from . import kernels
from .init import as_generator, get_initializer
from .module import Module, flatten_hint
from .parameter import Parameter


@functools.lru_cache(maxsize=64)
def ones(n: int, dtype) -> np.ndarray:
    """A read-only (n,) vector of ones, cached per (n, dtype): ``ones(N) @ dout`` sums a
    batch's rows as one GEMV."""
    a = np.ones(n, dtype)
    a.flags.writeable = False
    return a


class Linear(Module):
    """Fully connected layer: ``y = x W^T + b``.

    Shape: x (N, in_features) -> y (N, out_features); W (out_features, in_features)
    as in the notebook and ``torch.nn.Linear``; b (out_features,).

    Backward, with dout = dL/dy (N, out):
        dW = dout^T x   (out, in)      db = sum_n dout   (out,)      dx = dout W   (N, in)
    (Sequential asks the first layer for no dx: for 784-128-10 that GEMM is about half
    the backward's FLOPs, a third of the whole step's.) Under a fused optimizer step
    (optim/fused.py) dW is never formed: the GEMM updates W, or SGD's momentum, in place.
    db is the GEMV 1^T dout: 2-3x faster than NumPy's sum over the batch axis.

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
        get_initializer(init)  # fail at construction on an unknown name
        dtype = np.dtype(dtype)
        if dtype not in (np.float32, np.float64):
            raise ConfigError(f"dtype must be float32 or float64, got {dtype}")
        self.weight = Parameter(np.zeros((self.out_features, self.in_features), dtype))
        self.bias = Parameter(np.zeros(self.out_features, dtype)) if bias else None
        self._x: np.ndarray | None = None
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

    def forward(self, x: np.ndarray, relu=None) -> np.ndarray:
        """y = x W^T + b; with ``relu`` (the ReLU layer that follows, as Sequential passes
        it), that layer's output max(y, 0), its state set for its backward: the bias add
        and the ReLU as one pass where the compiled kernels run (core/kernels.py)."""
        if x.ndim != 2 or x.shape[1] != self.in_features:
            raise ValueError(f"Linear expects input of shape (N, {self.in_features}), got "
                             f"{x.shape}{flatten_hint(x.shape[1:], (self.in_features,))}")
        w = self.weight.data
        if x.dtype != w.dtype:  # e.g. uint8 pixels or float64 data into a float32 model
            x = x.astype(w.dtype)
        self._x = x                                  # (N, in)
        out_t = w @ x.T                              # (out, N), C-ordered
        if relu is not None and self.bias is not None:
            k = kernels.get(w.dtype)
            if k is not None:
                k.bias_relu(out_t, self.bias.data)   # max(z + b, 0) in one pass
                relu._y = y = out_t.T
                return y
        if self.bias is not None:
            out_t += self.bias.data[:, None]         # broadcast along the batch
        return out_t.T if relu is None else relu.forward(out_t.T)   # (N, out), F-ordered

    #: input_grad reads W and accumulate_grads may update it (a fused optimizer step):
    #: Sequential forms dx first whenever nothing steps the layer in between
    dx_first = True

    def accumulate_grads(self, dout: np.ndarray) -> None:
        x = self._x                                  # (N, in)
        fuse = self.weight.fuse                      # W -= lr dout^T x inside the GEMM
        if fuse is None or not fuse(dout, x):
            self.weight.accumulate(dout.T @ x)       # (out, in)
        if self.bias is not None:                    # db = 1^T dout as a GEMV: ~1 us
            self.bias.accumulate(ones(len(dout), dout.dtype) @ dout)   # (out,), sum ~3 us

    def input_grad(self, dout: np.ndarray) -> np.ndarray:
        x = self._x
        if x is not None and not x.flags.c_contiguous:   # x feature-major (a Linear's y):
            return (self.weight.data.T @ dout.T).T       # dx too, (N, in) F: W^T dout^T
        return dout @ self.weight.data                   # (N, in) C-ordered, as x

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
