"""Data: IDX files, the dataset registry with verified downloads, and batching.

Depends on nothing but NumPy and the standard library.
"""
from .batches import SCALES, Batches, Scaler, split
from .datasets import DATASETS, Dataset, DatasetSpec, load
from .idx import IdxError, parse_idx, read_idx, write_idx

__all__ = ["SCALES", "Batches", "Scaler", "split", "DATASETS", "Dataset", "DatasetSpec",
           "load", "IdxError", "parse_idx", "read_idx", "write_idx"]
