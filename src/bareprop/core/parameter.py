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

    Assigning ``p.data = a`` checks that ``a`` has the parameter's shape and dtype
    (a float32 array in a float64 layer would otherwise compute in float32 without a
    word); ``replace(a)`` is the deliberate way to change either (``Module.astype``).
    Optimizers update ``p.data`` in place and never assign it.
    """

    __slots__ = ("_data", "grad")

    def __init__(self, data: np.ndarray):
        self._data = data
        self.grad: np.ndarray | None = None

    @property
    def data(self) -> np.ndarray:
        return self._data

    @data.setter
    def data(self, value: np.ndarray) -> None:
        value = np.asarray(value)
        old = self._data
        if value.shape != old.shape or value.dtype != old.dtype:
            raise ValueError(
                f"Parameter.data must stay {old.dtype} of shape {old.shape}, got {value.dtype} "
                f"of shape {value.shape}; cast first (a.astype({str(old.dtype)!r})), or "
                "p.replace(a) to change the parameter's shape or dtype on purpose")
        self._data = value

    def replace(self, value: np.ndarray) -> None:
        """Swap in a new array of any shape or dtype (the gradient is dropped)."""
        self._data = np.asarray(value)
        self.grad = None

    @property
    def shape(self) -> tuple[int, ...]:
        return self._data.shape

    @property
    def dtype(self) -> np.dtype:
        return self._data.dtype

    @property
    def size(self) -> int:
        return self._data.size

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
        return f"Parameter(shape={self._data.shape}, dtype={self._data.dtype})"
