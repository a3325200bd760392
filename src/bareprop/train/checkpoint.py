"""Training checkpoints: everything needed to continue a run bit-identically.

A checkpoint is one ``.npz`` (read with allow_pickle=False) holding every array
of the training state and a JSON ``__meta__`` for the rest: format and version,
completed epoch, config, architecture, optimizer/scheduler/callback state and
the History. RNG state needs no bytes of its own: shuffling, dropout masks and
augmentation are drawn from generators seeded by (seed, epoch), so the seed and
the epoch number restore them exactly. Written atomically (temp file + rename).
"""
from __future__ import annotations


import numpy as np

from ..archive import read_archive, write_archive

FORMAT = "bareprop-checkpoint"
VERSION = 1


def _split(obj, prefix: str, arrays: dict):
    """JSON-able copy of ``obj`` with each ndarray moved into ``arrays``."""
    if isinstance(obj, np.ndarray):
        key = f"a{len(arrays)}:{prefix}"
        arrays[key] = obj
        return {"__array__": key}
    if isinstance(obj, dict):
        return {str(k): _split(v, f"{prefix}/{k}", arrays) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_split(v, f"{prefix}/{i}", arrays) for i, v in enumerate(obj)]
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


def _join(obj, arrays: dict):
    if isinstance(obj, dict):
        if set(obj) == {"__array__"}:
            return arrays[obj["__array__"]]
        return {k: _join(v, arrays) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_join(v, arrays) for v in obj]
    return obj


def save_checkpoint(path, state: dict) -> None:
    """Write ``state`` (nested dicts/lists of JSON values and arrays) atomically."""
    arrays: dict[str, np.ndarray] = {}
    meta = {"format": FORMAT, "version": VERSION, "state": _split(state, "", arrays)}
    write_archive(path, meta, arrays)


def load_checkpoint(path) -> dict:
    """The state saved by ``save_checkpoint`` (``path`` or ``path/checkpoint.npz``)."""
    meta, arrays = read_archive(path, "checkpoint.npz", FORMAT, VERSION, "checkpoint")
    return _join(meta["state"], arrays)
