"""Sequential: layers applied in order; backward runs them in reverse.

Also the home of the notebook's ``clip_delta`` (element-wise clipping of the
back-propagated deltas) and of Keras-style ``summary()``.
"""
from __future__ import annotations

import numpy as np

from ..errors import ConfigError
from .layers import Linear
from .module import Module


class Sequential(Module):
    """A chain of modules: ``forward`` in order, ``backward`` in reverse.

    clip_delta: None, or c > 0 to clip, as the seed notebook did, every delta
        (the gradient w.r.t. each Linear layer's output: the output delta
        softmax - onehot and each hidden delta) element-wise to [-c, c], right
        before that Linear's backward uses it. The notebook's deltas are per
        example; ours carry the mean loss's 1/N, so the bound applied is c / N.

    >>> import bareprop as bp
    >>> net = bp.Sequential(bp.Linear(784, 128, rng=0), bp.ReLU(), bp.Linear(128, 10, rng=1))
    >>> net.num_parameters()
    101770
    """

    def __init__(self, *layers: Module, clip_delta: float | None = None):
        for i, layer in enumerate(layers):
            if not isinstance(layer, Module):
                raise TypeError(f"Sequential takes Modules, got {type(layer).__name__} at {i}")
            setattr(self, str(i), layer)  # registered as "0", "1", ... like torch
        self.layers = list(layers)
        if clip_delta is not None and not clip_delta > 0:
            raise ConfigError(f"clip_delta must be positive or None, got {clip_delta}")
        self.clip_delta = clip_delta

    def __len__(self):
        return len(self.layers)

    def __getitem__(self, i):
        return self.layers[i]

    def forward(self, x: np.ndarray) -> np.ndarray:
        for layer in self.layers:
            x = layer.forward(x)
        return x

    def backward(self, dout: np.ndarray, input_grad: bool = False,
                 on_grad=None) -> np.ndarray | None:
        """Back-propagate dL/d(output) through every layer, filling each ``p.grad``.

        Returns dL/dx when ``input_grad`` is True; otherwise the first Linear skips
        its dx product (for 784-128-10 that is a third of the backward FLOPs).
        ``on_grad(layer)`` is passed to each Linear (see ``Linear.backward``).
        """
        c = self.clip_delta
        for i in range(len(self.layers) - 1, -1, -1):
            layer = self.layers[i]
            if isinstance(layer, Linear):
                if c is not None:
                    bound = c / dout.shape[0]       # per-example delta c, mean loss 1/N
                    dout = np.clip(dout, -bound, bound)
                dout = layer.backward(dout, need_dx=input_grad or i > 0, on_grad=on_grad)
            else:
                dout = layer.backward(dout)
        return dout

    def output_features(self, in_features):
        for layer in self.layers:
            in_features = layer.output_features(in_features)
        return in_features

    @property
    def dtype(self) -> np.dtype:
        params = self.parameters()
        return params[0].dtype if params else np.dtype(np.float32)

    def summary(self, print_fn=print) -> str:
        """Keras-style table: each layer, its output shape and parameter count, and totals."""
        rows = [("Layer (type)", "Output Shape", "Param #")]
        width = None
        for i, layer in enumerate(self.layers):
            width = layer.output_features(width)
            shape = f"(None, {width})" if width is not None else "?"
            rows.append((f"{i} {type(layer).__name__}", shape, f"{layer.num_parameters():,}"))
        w0 = max(len(r[0]) for r in rows) + 2
        w1 = max(len(r[1]) for r in rows) + 2
        rule = "=" * (w0 + w1 + max(len(r[2]) for r in rows))
        lines = [f"{rows[0][0]:<{w0}}{rows[0][1]:<{w1}}{rows[0][2]}", rule]
        lines += [f"{a:<{w0}}{b:<{w1}}{c}" for a, b, c in rows[1:]]
        total = self.num_parameters()
        lines += [rule, f"Total params: {total:,}", f"Trainable params: {total:,}",
                  f"dtype: {self.dtype}"]
        text = "\n".join(lines)
        if print_fn is not None:
            print_fn(text)
        return text

    def extra_repr(self):
        inner = ",\n  ".join(repr(layer) for layer in self.layers)
        clip = f",\n  clip_delta={self.clip_delta}" if self.clip_delta is not None else ""
        return f"\n  {inner}{clip}\n"
