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
from ..errors import ModelFileError
from ..runs.layout import CHECKPOINT

FORMAT = "bareprop-checkpoint"
VERSION = 1
META_FIELDS = ("format", "version", "bareprop_version", "state")


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


def _join(obj, arrays: dict, used: set, path, where="state"):
    if isinstance(obj, dict):
        if "__array__" in obj:
            key = obj["__array__"]
            if set(obj) != {"__array__"} or not isinstance(key, str) or key not in arrays:
                raise ModelFileError(f"{path}: checkpoint field {where} names no array of the "
                                     "file; the checkpoint is damaged")
            used.add(key)
            return arrays[key]
        return {k: _join(v, arrays, used, path, f"{where}.{k}") for k, v in obj.items()}
    if isinstance(obj, list):
        return [_join(v, arrays, used, path, f"{where}[{i}]") for i, v in enumerate(obj)]
    return obj


def save_checkpoint(path, state: dict) -> None:
    """Write ``state`` (nested dicts/lists of JSON values and arrays) atomically."""
    from .. import __version__

    arrays: dict[str, np.ndarray] = {}
    meta = {"format": FORMAT, "version": VERSION, "bareprop_version": __version__,
            "state": _split(state, "", arrays)}
    write_archive(path, meta, arrays)


def load_checkpoint(path) -> dict:
    """The state saved by ``save_checkpoint`` (``path`` or ``path/checkpoint.npz``).

    ModelFileError, one line naming the field, for a checkpoint of a newer format (with
    the bareprop version that wrote it), unknown or missing top-level fields, and
    references to arrays the file does not hold (or arrays nothing refers to)."""
    from .. import __version__

    meta, arrays = read_archive(path, CHECKPOINT, FORMAT, VERSION, "checkpoint",
                                newer_ok=True)
    if meta["version"] != VERSION:
        raise ModelFileError(
            f"{path}: written by a newer bareprop ({meta.get('bareprop_version', 'unknown')}, "
            f"checkpoint format {meta['version']}); this bareprop {__version__} reads format "
            f"{VERSION}: upgrade bareprop to resume it")
    for key in meta:
        if key not in META_FIELDS:
            raise ModelFileError(f"{path}: checkpoint field {key!r} is unknown; the checkpoint "
                                 "is damaged or not from this bareprop")
    if "state" not in meta:
        raise ModelFileError(f"{path}: checkpoint field 'state' is missing; the checkpoint "
                             "is damaged")
    used: set = set()
    state = _join(meta["state"], arrays, used, path)
    extra = sorted(set(arrays) - used)
    if extra:
        raise ModelFileError(f"{path}: checkpoint array {extra[0]!r} is unknown (nothing "
                             "refers to it); the checkpoint is damaged")
    return state
