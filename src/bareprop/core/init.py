"""Weight initialisers. Each draws from an explicit ``numpy.random.Generator``.

Every function has the signature ``init(shape, fan_in, fan_out, rng) -> float64 array``
for a weight of ``shape == (fan_out, fan_in)``; ``Linear`` casts the result to its
dtype *after* scaling (NumPy 2 promotes float32 * np.float64 to float64, and one
upcast weight would silently make every matmul float64).

Not here: global ``np.random`` state. Reproducibility comes from passing the
same seeded Generator.
"""
from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

InitFn = Callable[[tuple[int, ...], int, int, np.random.Generator], np.ndarray]


def notebook_normal(shape, fan_in, fan_out, rng):
    """N(0, std = 1/fan_in): the seed notebook's init (std 1/fan_in, not 1/sqrt(fan_in))."""
    return rng.normal(0.0, 1.0 / fan_in, size=shape)


def kaiming_normal(shape, fan_in, fan_out, rng):
    """He et al. 2015, ReLU gain, fan_in mode: N(0, std = sqrt(2 / fan_in))."""
    return rng.normal(0.0, math.sqrt(2.0 / fan_in), size=shape)


def kaiming_uniform(shape, fan_in, fan_out, rng):
    """He uniform, ReLU gain: U(-b, b), b = sqrt(6 / fan_in)."""
    bound = math.sqrt(6.0 / fan_in)
    return rng.uniform(-bound, bound, size=shape)


def xavier_normal(shape, fan_in, fan_out, rng):
    """Glorot & Bengio 2010: N(0, std = sqrt(2 / (fan_in + fan_out)))."""
    return rng.normal(0.0, math.sqrt(2.0 / (fan_in + fan_out)), size=shape)


def xavier_uniform(shape, fan_in, fan_out, rng):
    """Glorot uniform (Keras Dense default): U(-b, b), b = sqrt(6 / (fan_in + fan_out))."""
    bound = math.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-bound, bound, size=shape)


def lecun_normal(shape, fan_in, fan_out, rng):
    """Keras' lecun_normal: normal truncated at 2 std, std = sqrt(1/fan_in) / 0.87962566.

    The divisor is the std of a unit normal truncated to [-2, 2], so the
    truncated draws end up with variance exactly 1/fan_in.
    """
    std = math.sqrt(1.0 / fan_in) / 0.87962566103423978
    w = rng.normal(0.0, 1.0, size=shape)
    bad = np.abs(w) > 2.0
    while bad.any():  # resample, as truncated_normal does
        w[bad] = rng.normal(0.0, 1.0, size=int(bad.sum()))
        bad = np.abs(w) > 2.0
    return w * std


def torch_default(shape, fan_in, fan_out, rng):
    """torch.nn.Linear's default: kaiming_uniform(a=sqrt(5)) == U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
    bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
    return rng.uniform(-bound, bound, size=shape)


INITIALIZERS: dict[str, InitFn] = {
    "notebook": notebook_normal,
    "kaiming_normal": kaiming_normal,
    "kaiming_uniform": kaiming_uniform,
    "xavier_normal": xavier_normal,
    "xavier_uniform": xavier_uniform,
    "glorot_normal": xavier_normal,
    "glorot_uniform": xavier_uniform,
    "lecun_normal": lecun_normal,
    "torch": torch_default,
}


def get_initializer(init: str | InitFn) -> InitFn:
    """Look up an initialiser by name (or pass a callable through)."""
    if callable(init):
        return init
    try:
        return INITIALIZERS[init]
    except KeyError:
        from ..errors import unknown_name

        raise unknown_name("init", init, INITIALIZERS) from None


def as_generator(rng: np.random.Generator | int | None) -> np.random.Generator:
    """A Generator from a Generator, an int seed, or None (fresh OS entropy)."""
    if isinstance(rng, np.random.Generator):
        return rng
    return np.random.default_rng(rng)


def weight_dtype(dtype) -> np.dtype:
    """``dtype`` as the np.dtype a layer's weights take: float32 (the default) or float64
    (the verification dtype); ConfigError for anything else."""
    from ..errors import ConfigError

    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise ConfigError(f"dtype must be float32 or float64, got {dtype}")
    return dtype
