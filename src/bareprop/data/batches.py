"""Input scaling and seeded mini-batching of uint8 image arrays.

Shuffling is a pure function of (seed, epoch): epoch e's order is the same
whether training started at epoch 0 or resumed at e, which is what makes a
resumed run bit-identical to an uninterrupted one.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError, positive_int

SCALES = ("raw", "unit", "standard")


@dataclass(frozen=True)
class Scaler:
    """x_float = a * x_uint8 + b.

    raw: a = 1, b = 0 (the notebook's 0..255); unit: a = 1/255 ([0, 1]);
    standard: a = 1/std, b = -mean/std with the training set's pixel mean/std
    (one scalar each: per-pixel std is 0 at MNIST's always-black borders).
    """

    kind: str = "unit"
    mean: float = 0.0
    std: float = 1.0

    def __post_init__(self):
        # refused here, not at use: `coefficients` would read any unknown kind as standard
        if self.kind not in SCALES:
            from ..errors import unknown_name

            raise unknown_name("scaler kind", self.kind, SCALES)

    @classmethod
    def fit(cls, kind: str, x_train: np.ndarray) -> "Scaler":
        if kind not in SCALES:
            from ..errors import unknown_name

            raise unknown_name("scale", kind, SCALES)
        if kind == "standard":
            flat = x_train.reshape(-1)
            mean = float(flat.mean(dtype=np.float64))
            std = float(flat.std(dtype=np.float64))
            return cls(kind, mean, std if std > 0 else 1.0)
        return cls(kind)

    @property
    def coefficients(self) -> tuple[float, float]:
        if self.kind == "raw":
            return 1.0, 0.0
        if self.kind == "unit":
            return 1.0 / 255.0, 0.0
        return 1.0 / self.std, -self.mean / self.std

    def apply(self, x: np.ndarray, dtype=np.float32, out: np.ndarray | None = None) -> np.ndarray:
        """Scale uint8 pixels (any shape) into float ``dtype`` (into ``out`` when given)."""
        a, b = self.coefficients
        dtype = np.dtype(dtype)
        # cast, then scale in place: the same float ops as multiply(x, a, dtype=dtype), but
        # a plain cast is SIMD where a casting multiply goes through NumPy's buffered loop
        # (~15 against ~19 us for a (128, 784) batch). The scalars are cast to dtype first:
        # a float64 scalar would upcast (NEP 50).
        if out is None:
            out = x.astype(dtype)
            if a != 1.0:
                out *= dtype.type(a)
        else:                         # computed in dtype, whatever out's own dtype
            np.multiply(x, dtype.type(a), out=out, dtype=dtype, casting="unsafe")
        if b:
            out += dtype.type(b)
        return out

    def to_dict(self) -> dict:
        return {"kind": self.kind, "mean": self.mean, "std": self.std}

    @classmethod
    def from_dict(cls, d: dict) -> "Scaler":
        """The scaler saved in a model file's metadata; ConfigError names what is wrong."""
        try:
            kind, mean, std = d["kind"], float(d["mean"]), float(d["std"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"the saved input scaler {d!r} is damaged ({exc!r})") from None
        if not (np.isfinite(mean) and np.isfinite(std) and std > 0):
            raise ConfigError(f"the saved input scaler has mean {mean} and std {std}; "
                              "std must be a positive number and both finite")
        return cls(kind, mean, std)


class Batches:
    """Mini-batches (x (B, *shape) float, y (B,) int) from images (N, *shape) and labels.

    Images keep their natural shape, (N, H, W) or (N, C, H, W): a model flattens them
    itself (bp.Flatten) if it needs to. ``scaler`` maps uint8 pixels to floats
    (Scaler); None uses x as given, only cast to ``dtype``.
    Every example is used each epoch: the last partial batch is kept unless
    ``drop_last`` (the notebook lost 96 examples per epoch to a bare except).
    With ``shuffle``, epoch e uses the permutation of ``default_rng([seed, e])``.
    """

    def __init__(self, x: np.ndarray, y: np.ndarray, batch_size: int, scaler: "Scaler | None",
                 dtype=np.float32, shuffle: bool = False, seed: int = 0,
                 drop_last: bool = False, augment=None):
        self.batch_size = positive_int("batch size", batch_size)
        if len(x) != len(y):
            raise ConfigError(f"{len(x)} inputs but {len(y)} labels")
        self.x = x                               # (N, *shape), uint8 or float, not copied
        self.y = np.asarray(y)
        self.scaler = scaler
        self.dtype = np.dtype(dtype)
        self.shuffle = shuffle
        self.seed = seed
        self.drop_last = drop_last
        self.augment = augment      # callable (x (B, *shape), rng) -> (B, *shape), or None
        self._epoch = 0

    @property
    def n(self) -> int:
        return len(self.x)

    @property
    def input_shape(self) -> tuple[int, ...]:
        """The shape of one example, e.g. (28, 28)."""
        return tuple(self.x.shape[1:])

    def _prepare(self, xb: np.ndarray) -> np.ndarray:
        if self.scaler is None:
            return xb.astype(self.dtype, copy=False)
        return self.scaler.apply(xb, self.dtype)

    def __len__(self) -> int:
        full, rest = divmod(self.n, self.batch_size)
        return full + (1 if rest and not self.drop_last else 0)

    def order(self, epoch: int) -> np.ndarray:
        if not self.shuffle:
            return np.arange(self.n)
        return np.random.default_rng([self.seed, epoch]).permutation(self.n)

    def epoch(self, epoch: int, rank: int = 0, world: int = 1):
        """Yield epoch ``epoch``'s batches; with ``world`` > 1, only rank ``rank``'s
        contiguous shard of each (``shard_bounds``; empty when the batch is smaller than
        ``world``), augmented from its own stream ``default_rng([seed, epoch, 1, rank])``
        (one process: ``[seed, epoch, 1]``, as before ranks existed)."""
        order = self.order(epoch)
        key = [self.seed, epoch, 1] + ([rank] if world > 1 else [])
        rng = np.random.default_rng(key) if self.augment else None
        bs = self.batch_size
        stop = len(self) * bs
        for start in range(0, min(stop, self.n), bs):
            idx = order[start:start + bs]                             # the global batch
            if world > 1:
                lo, hi = shard_bounds(len(idx), world, rank)
                idx = idx[lo:hi]                                      # this rank's shard
            xb = self._prepare(np.take(self.x, idx, axis=0))      # (B, *shape)
            if self.augment is not None and len(idx):
                xb = self.augment(xb, rng)
            yield xb, self.y[idx]

    def part(self, rank: int, world: int) -> "Batches":
        """Rank ``rank``'s contiguous part of the epoch-0 order, as Batches of its own
        (unshuffled, no augmentation; a view of x when this one is unshuffled): what a
        rank evaluates of a sharded evaluation."""
        lo, hi = shard_bounds(self.n, world, rank)
        if self.shuffle:
            idx = self.order(0)[lo:hi]
            x, y = np.take(self.x, idx, axis=0), self.y[idx]
        else:
            x, y = self.x[lo:hi], self.y[lo:hi]
        return Batches(x, y, self.batch_size, self.scaler, self.dtype)

    def __iter__(self):
        epoch = self._epoch
        self._epoch += 1
        return self.epoch(epoch)


def shard_bounds(n: int, world: int, rank: int) -> tuple[int, int]:
    """[lo, hi) of rank ``rank``'s part of ``n`` items split into ``world`` contiguous
    parts with np.array_split's sizes: the first n mod world parts get one more
    (n = 10, world = 3: 4, 3, 3; n = 2, world = 3: 1, 1, 0)."""
    base, extra = divmod(n, world)
    lo = rank * base + min(rank, extra)
    return lo, lo + base + (1 if rank < extra else 0)


def split(x: np.ndarray, y: np.ndarray, fraction: float, seed: int):
    """Seeded hold-out: ((x_train, y_train), (x_val, y_val)) with ``fraction`` in val."""
    if not 0.0 < fraction < 1.0:
        raise ConfigError(f"validation fraction must be in (0, 1), got {fraction}")
    n_val = max(1, int(round(len(x) * fraction)))
    order = np.random.default_rng([seed, 0x5EED]).permutation(len(x))
    val, train = np.sort(order[:n_val]), np.sort(order[n_val:])
    return (x[train], y[train]), (x[val], y[val])
