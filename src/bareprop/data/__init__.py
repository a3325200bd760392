"""Data: IDX files, the dataset registry (registry.py), where its files are looked for
(locate.py), their verified download (download.py), loading (datasets.py), and batching.

Depends on nothing but NumPy and the standard library.
"""
from .batches import SCALES, Batches, Scaler, split
from .datasets import Dataset, load
from .idx import IdxError, parse_idx, read_idx, write_idx
from .registry import DATASETS, DatasetSpec

__all__ = ["SCALES", "Batches", "Scaler", "split", "DATASETS", "Dataset", "DatasetSpec",
           "load", "IdxError", "parse_idx", "read_idx", "write_idx"]
