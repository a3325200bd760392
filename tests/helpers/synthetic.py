"""Small learnable IDX datasets written by the tests themselves."""
import hashlib
from dataclasses import replace
from pathlib import Path

import numpy as np

from bareprop.data import write_idx
from bareprop.data.registry import MNIST, STANDARD_FILES


def digits_like(n: int, seed: int, size: int = 28):
    """uint8 images whose class is a bright horizontal band at row 2 + 2*label, plus noise."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 10, n).astype(np.uint8)
    x = rng.integers(0, 60, size=(n, size, size)).astype(np.uint8)
    for i, label in enumerate(y):
        r = 2 + 2 * int(label)
        x[i, r:r + 2, 4:24] = 220
    return x, y


def write_dataset(folder: Path, n_train: int = 600, n_test: int = 200, gz: bool = True) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    xtr, ytr = digits_like(n_train, 1)
    xte, yte = digits_like(n_test, 2)
    arrays = {"train_images": xtr, "train_labels": ytr, "test_images": xte, "test_labels": yte}
    for role, name in STANDARD_FILES.items():
        write_idx(folder / (name if gz else name.removesuffix(".gz")), arrays[role])
    return folder


def write_mutated_dataset(folder: Path, mutate) -> Path:
    """A synthetic dataset in ``folder`` after ``mutate(arrays)`` rewrote some of its files
    (``arrays``: role -> array, as STANDARD_FILES names them; it returns the changed ones)."""
    from bareprop.data.idx import parse_idx

    write_dataset(folder)
    arrays = {role: parse_idx((folder / name).read_bytes(), name)
              for role, name in STANDARD_FILES.items()}
    for role, array in mutate(arrays).items():
        write_idx(folder / STANDARD_FILES[role], array)
    return folder


def fake_spec(tmp_path):
    """A spec whose checksums are those of small synthetic files."""
    src = write_dataset(tmp_path / "upstream")
    blobs = {name: (src / name).read_bytes() for name in STANDARD_FILES.values()}
    sha = {name: hashlib.sha256(b).hexdigest() for name, b in blobs.items()}
    return replace(MNIST, name="fake", sha256=sha), blobs
