"""Loading a registered dataset (MNIST, Fashion-MNIST): find its files (locate.py),
download them into the cache when none are found (download.py), then read, check and
return them as a Dataset.

Files are checked by content (SHA-256 of the decompressed IDX), not by the gzip
bytes: Debian recompresses Fashion-MNIST, so its .gz bytes differ from upstream
while the content is the same.
"""
from __future__ import annotations

import hashlib
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DataError
from .download import download
from .idx import MAX_IDX_BYTES, parse_idx, read_file
from .locate import env_dir_problem, locate, not_a_folder, search_dirs
from .registry import ROLES, SPLITS, DatasetSpec, get_spec


@dataclass
class Dataset:
    """A loaded dataset: uint8 images (N, 28, 28), int64 labels (N,), and class names.

    A split not asked for (``load(..., splits=("test",))``) is None."""

    name: str
    x_train: np.ndarray | None
    y_train: np.ndarray | None
    x_test: np.ndarray
    y_test: np.ndarray
    classes: tuple[str, ...]
    source: Path | None = None


def _load_file(path: Path, spec: DatasetSpec, role: str, verify: bool) -> np.ndarray:
    filename = spec.files[role]
    # verified: nothing larger than the official content can match its checksum;
    # unverified (the user's own files): the general IDX bound
    max_bytes = spec.content_size(role) if verify else MAX_IDX_BYTES
    raw = read_file(path, max_bytes)
    hasher = hashlib.sha256() if verify else None
    try:
        array = parse_idx(raw, str(path), hasher, max_bytes=max_bytes)
    except DataError as exc:
        hint = " (or pass --no-verify to read a larger file of your own)" if verify else ""
        raise DataError(f"{exc}{hint}") from None
    if verify and hasher.hexdigest() != spec.content_sha256[filename]:
        raise DataError(f"{path}: content differs from the official {spec.name} file "
                        f"(SHA-256 {hasher.hexdigest()[:16]}...); delete it to re-download, "
                        "or pass --no-verify to use it anyway")
    return array


def validate_pair(images: np.ndarray, labels: np.ndarray, where: str, n_classes: int,
                  image_shape: tuple[int, int] | None = None) -> np.ndarray:
    """Images (N, H, W) uint8 with N >= 1 (and (H, W) == ``image_shape`` when given),
    integer labels (N,) in 0..n_classes-1; returns the labels as int64, or DataError.

    Checked once at load time, so the batching hot path can trust the arrays."""
    if images.ndim != 3 or images.dtype != np.uint8:
        raise DataError(f"{where} images must be uint8 with 3 dimensions (N, H, W), "
                        f"got {images.dtype} {images.shape}")
    if len(images) == 0:
        raise DataError(f"{where} set is empty (0 images); point --data-dir at complete files")
    if image_shape is not None and images.shape[1:] != tuple(image_shape):
        raise DataError(f"{where} images are {images.shape[1]}x{images.shape[2]} pixels, "
                        f"expected {image_shape[0]}x{image_shape[1]}; these are not this "
                        "dataset's files")
    if labels.ndim != 1:
        raise DataError(f"{where} labels must have 1 dimension, got shape {labels.shape}")
    if labels.dtype.kind not in "iu":
        raise DataError(f"{where} labels must be integers, got {labels.dtype} "
                        "(an IDX file of float labels); write them as uint8")
    if len(images) != len(labels):
        raise DataError(f"{where}: {len(images)} images but {len(labels)} labels")
    low, high = int(labels.min()), int(labels.max())
    if low < 0 or high >= n_classes:
        raise DataError(f"{where} labels must lie in 0..{n_classes - 1}, "
                        f"found {low if low < 0 else high}")
    return labels.astype(np.int64)


def load(name: str = "mnist", data_dir=None, download_missing: bool = True,
         verify: bool = True, mirrors=None, progress: bool = True,
         splits=SPLITS) -> Dataset:
    """Load a registered dataset, downloading it into the cache when not found.

    ``splits``: which of "train" and "test" to read (``evaluate`` needs only "test",
    and skips reading, checking and downloading the 47 MB training images); the
    others are None in the Dataset.

    >>> ds = load("mnist")                          # doctest: +SKIP
    >>> ds.x_train.shape, ds.x_train.dtype
    ((60000, 28, 28), dtype('uint8'))
    """
    spec = get_spec(name)
    splits = tuple(splits)
    if not splits or set(splits) - set(SPLITS):
        raise ValueError(f"splits must be a non-empty subset of {SPLITS}, got {splits}")
    roles = [r for r in ROLES if r.split("_")[0] in splits]
    state = not_a_folder(data_dir) if data_dir is not None else None
    if state is not None:                                     # a typo: not looked elsewhere
        raise DataError(f"--data-dir {data_dir} is {state}, not a folder; give the folder "
                        f"holding {name}/ (or its IDX files), or leave --data-dir out to use "
                        "BAREPROP_DATA_DIR or the download cache")
    env = env_dir_problem()
    if env:  # a typo in the variable: say so, then look elsewhere as usual
        print(f"bareprop: warning: {env}; looking in the other places", file=sys.stderr)
    paths = locate(spec, data_dir, roles)
    if paths is None:
        if not download_missing:
            raise DataError(
                f"{name} files not found (looked in {', '.join(map(str, search_dirs(name, data_dir)))}); "
                f"put {', '.join(spec.files.values())} in one of them or set BAREPROP_DATA_DIR"
                + (f" ({env})" if env else "")
            )
        folder = download(spec, mirrors=mirrors, progress=progress, roles=roles)
        paths = {role: folder / spec.files[role] for role in roles}
    arrays = {role: _load_file(paths[role], spec, role, verify) for role in roles}
    out = {}
    for split in splits:
        out[f"x_{split}"] = arrays[f"{split}_images"]
        out[f"y_{split}"] = validate_pair(arrays[f"{split}_images"], arrays[f"{split}_labels"],
                                          f"{name} {split}", len(spec.classes),
                                          spec.image_shape)
    return Dataset(name, out.get("x_train"), out.get("y_train"), out.get("x_test"),
                   out.get("y_test"), spec.classes, paths[roles[0]].parent)
