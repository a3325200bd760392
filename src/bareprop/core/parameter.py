"""Parameter: an array and its gradient, side by side.

Not a tensor and not an autograd node: layers write ``grad`` by hand in their
``backward``; optimizers read ``grad`` and update ``data`` in place.
"""
from __future__ import annotations

import numpy as np


class Parameter:
    """A trainable array ``data`` with its gradient ``grad`` (same shape and dtype).

    ``grad`` is ``None`` until a backward pass writes it, and again after
    ``zero_grad()`` (PyTorch's ``set_to_none=True`` default): a gradient that was
    never computed cannot be mistaken for a zero one.
    """

    __slots__ = ("data", "grad")

    def __init__(self, data: np.ndarray):
        self.data = data
        self.grad: np.ndarray | None = None

    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape

    @property
    def dtype(self) -> np.dtype:
        return self.data.dtype

    @property
    def size(self) -> int:
        return self.data.size

    def accumulate(self, g: np.ndarray) -> None:
        """grad += g (or grad = g when empty), as PyTorch accumulates ``.grad``.

        ``g`` must be a fresh array the caller will not touch again: when ``grad``
        is empty it is kept, not copied.
        """
        if self.grad is None:
            self.grad = g
        else:
            self.grad += g

    def __repr__(self) -> str:
        return f"Parameter(shape={self.data.shape}, dtype={self.data.dtype})"
