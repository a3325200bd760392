"""The dataset registry (MNIST, Fashion-MNIST): file names, checksums, mirrors,
where files are looked for, and the verified download into the user cache.

Look-up order for a dataset's four files:
  1. ``data_dir`` (``--data-dir``): the files themselves, or a ``<dataset>/`` folder in it
  2. ``$BAREPROP_DATA_DIR/<dataset>/``
  3. the user cache, ``$XDG_CACHE_HOME/bareprop/<dataset>/`` (default ``~/.cache/...``)
  4. Debian's ``/usr/share/datasets/<dataset>/``
and, if none has them, a download into the cache: to a temporary name, SHA-256
checked against the upstream file, then renamed; a mismatch deletes the file and
tries the next mirror.

Files found locally are checked by content (SHA-256 of the decompressed IDX), not
by the gzip bytes: Debian recompresses Fashion-MNIST, so its .gz bytes differ from
upstream while the content is the same.
"""
from __future__ import annotations

import hashlib
import os
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import DataError, unknown_name
from .idx import MAX_IDX_BYTES, parse_idx, read_file

ROLES = ("train_images", "train_labels", "test_images", "test_labels")
SPLITS = ("train", "test")
STANDARD_FILES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    classes: tuple[str, ...]
    mirrors: tuple[str, ...]
    #: SHA-256 of each upstream .gz download
    sha256: dict[str, str]
    #: SHA-256 of each decompressed IDX file (checks local copies however compressed)
    content_sha256: dict[str, str]
    #: size in bytes of each upstream .gz download: a mirror sending more is cut off
    sizes: dict[str, int] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=lambda: dict(STANDARD_FILES))
    #: (H, W) of every image
    image_shape: tuple[int, int] = (28, 28)

    def content_size(self, role: str) -> int:
        """Bytes of the decompressed IDX file of ``role`` in the official release."""
        n = 60_000 if role.startswith("train") else 10_000
        if role.endswith("labels"):
            return 8 + n                                       # magic + 1 dim, uint8 labels
        return 16 + n * self.image_shape[0] * self.image_shape[1]  # magic + 3 dims, uint8

MNIST = DatasetSpec(
    name="mnist",
    classes=tuple(str(d) for d in range(10)),
    mirrors=(
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
        "http://yann.lecun.com/exdb/mnist/",
    ),
    sha256={
        "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
        "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
        "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
        "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
    },
    content_sha256={
        "train-images-idx3-ubyte.gz": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
        "train-labels-idx1-ubyte.gz": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
        "t10k-images-idx3-ubyte.gz": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        "t10k-labels-idx1-ubyte.gz": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
    },
    sizes={"train-images-idx3-ubyte.gz": 9_912_422, "train-labels-idx1-ubyte.gz": 28_881,
           "t10k-images-idx3-ubyte.gz": 1_648_877, "t10k-labels-idx1-ubyte.gz": 4_542},
)

FASHION_MNIST = DatasetSpec(
    name="fashion-mnist",
    classes=("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
             "Sneaker", "Bag", "Ankle boot"),
    mirrors=(
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
    ),
    sha256={
        "train-images-idx3-ubyte.gz": "08dc20ab1689590a0bcd66e874647b6ee8464e2d501b5a3f1f78831db19a3fdc",
        "train-labels-idx1-ubyte.gz": "b0197879cbda89f3dc7b894f9fd52b858e68ea4182b6947c9d8c2b67e5f18dcc",
        "t10k-images-idx3-ubyte.gz": "78dcbbfb5a27efaf1b6c1d616caca68560be8766c5bffcb2791df9273a534229",
        "t10k-labels-idx1-ubyte.gz": "42bd18137a62d5998cdeae52bf3a0676ac6b706f5cf8439b47bb5b151ae3dccf",
    },
    content_sha256={
        "train-images-idx3-ubyte.gz": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
        "train-labels-idx1-ubyte.gz": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
        "t10k-images-idx3-ubyte.gz": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
        "t10k-labels-idx1-ubyte.gz": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
    },
    sizes={"train-images-idx3-ubyte.gz": 26_421_880, "train-labels-idx1-ubyte.gz": 29_515,
           "t10k-images-idx3-ubyte.gz": 4_422_102, "t10k-labels-idx1-ubyte.gz": 5_148},
)

DATASETS = {spec.name: spec for spec in (MNIST, FASHION_MNIST)}


def get_spec(name: str) -> DatasetSpec:
    try:
        return DATASETS[name]
    except KeyError:
        raise unknown_name("dataset", name, DATASETS) from None


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


def cache_dir() -> Path:
    """``$XDG_CACHE_HOME/bareprop`` (default ``~/.cache/bareprop``)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "bareprop"


def env_dir_problem() -> str | None:
    """What is wrong with $BAREPROP_DATA_DIR (None if unset or a folder)."""
    env = os.environ.get("BAREPROP_DATA_DIR")
    if not env or Path(env).is_dir():
        return None
    state = "a file" if Path(env).exists() else "missing"
    return f"BAREPROP_DATA_DIR={env} is {state}, not a folder holding <dataset>/ folders"


def search_dirs(name: str, data_dir: str | os.PathLike | None = None) -> list[Path]:
    """Folders searched for a dataset's files, in order."""
    dirs: list[Path] = []
    if data_dir is not None:
        dirs += [Path(data_dir), Path(data_dir) / name]
    env = os.environ.get("BAREPROP_DATA_DIR")
    if env:
        dirs.append(Path(env) / name)
    dirs.append(cache_dir() / name)
    dirs.append(Path("/usr/share/datasets") / name)
    return dirs


def _find_in(folder: Path, filename: str) -> Path | None:
    """The file as named, or its uncompressed twin (name without .gz)."""
    for candidate in (folder / filename, folder / filename.removesuffix(".gz")):
        if candidate.is_file():
            return candidate
        if candidate.is_dir():
            raise DataError(f"{candidate} is a directory where the IDX file {filename} should "
                            "be; remove it or point --data-dir elsewhere")
    return None


def locate(spec: DatasetSpec, data_dir=None, roles=ROLES) -> dict[str, Path] | None:
    """Paths of the files of ``roles`` (default all four) from the first folder that
    holds all of them."""
    for folder in search_dirs(spec.name, data_dir):
        found = {role: _find_in(folder, spec.files[role]) for role in roles}
        if all(found.values()):
            return found  # type: ignore[return-value]
    return None


def _progress(total: int | None, desc: str):
    """A tqdm bar when tqdm is installed and stderr is a terminal, else a few plain lines."""
    try:
        if not sys.stderr.isatty():
            raise ImportError  # no \r redraws into logs and files
        from tqdm import tqdm

        return tqdm(total=total, unit="B", unit_scale=True, desc=desc, leave=False)
    except ImportError:
        class Plain:
            def __init__(self):
                self.n, self.shown = 0, -1

            def update(self, k):
                self.n += k
                if total:
                    pct = 100 * self.n // total
                    if pct // 25 != self.shown // 25:
                        self.shown = pct
                        print(f"{desc}: {pct}%", file=sys.stderr)

            def close(self):
                pass

        return Plain()


# A mirror may send this much more than the file's known size (headers aside, nothing
# should differ; the margin only spares a recompressed copy a few bytes longer).
SIZE_MARGIN = 1.01
# The whole download of a dataset must finish within this many seconds: a per-read
# timeout alone lets a mirror that drips one byte at a time hold bareprop forever.
DOWNLOAD_TIME_LIMIT = 900.0


def download_file(url: str, dest: Path, sha256: str, timeout: float = 30.0,
                  progress: bool = True, max_bytes: int | None = None,
                  deadline: float | None = None) -> None:
    """Download ``url`` to a temporary beside ``dest``; verify SHA-256; then rename.

    ``max_bytes``: refuse a response that declares or sends more. ``deadline``: a
    ``time.monotonic()`` by which the file must be complete. On any failure the partial
    file is removed and DataError raised: a file under the final name is always
    complete and verified.
    """
    from ..archive import temp_beside   # an unplantable name, like every file bareprop writes

    part = None
    digest = hashlib.sha256()
    deadline = deadline if deadline is not None else time.monotonic() + DOWNLOAD_TIME_LIMIT
    try:
        fd, part = temp_beside(dest, ".part")
        part = Path(part)
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as resp:
            length = resp.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            if max_bytes is not None and total is not None and total > max_bytes:
                raise DataError(f"{url}: the server announces {total:,} bytes, more than the "
                                f"{max_bytes:,} this file has; refused")
            bar = _progress(total, dest.name) if progress else None
            received = 0
            while True:
                # read1: at most one socket read, so the deadline is checked between
                # reads even when a mirror sends a byte at a time
                chunk = resp.read1(1 << 16)
                if not chunk:
                    break
                out.write(chunk)
                digest.update(chunk)
                received += len(chunk)
                if bar:
                    bar.update(len(chunk))
                if max_bytes is not None and received > max_bytes:
                    raise DataError(f"{url}: sent more than the {max_bytes:,} bytes this file "
                                    "has; refused")
                if time.monotonic() > deadline:
                    raise DataError(f"{url}: too slow, the download did not finish within "
                                    f"its time limit ({received:,} bytes received)")
            if bar:
                bar.close()
            if total is not None and received != total:
                raise DataError(f"{url}: connection closed after {received} of {total} bytes")
        if digest.hexdigest() != sha256:
            raise DataError(f"{url}: SHA-256 mismatch (got {digest.hexdigest()[:16]}..., "
                            f"expected {sha256[:16]}...)")
        os.replace(part, dest)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise DataError(f"{url}: {reason}") from None
    finally:
        if part is not None and part.exists():
            part.unlink()


def download(spec: DatasetSpec, folder: Path | None = None, mirrors=None,
             progress: bool = True, timeout: float = 30.0, roles=ROLES,
             time_limit: float = DOWNLOAD_TIME_LIMIT) -> Path:
    """Fetch every missing file of ``roles`` (default all four) of ``spec`` into
    ``folder`` (default: the cache), all within ``time_limit`` seconds, each file no
    larger than its known size."""
    folder = folder or cache_dir() / spec.name
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"cannot create the data cache {folder}: {exc.strerror}; "
                        "set XDG_CACHE_HOME or pass --data-dir") from None
    mirrors = tuple(mirrors) if mirrors is not None else spec.mirrors
    deadline = time.monotonic() + time_limit
    for role in roles:
        filename = spec.files[role]
        if (folder / filename).is_file():
            continue
        known = spec.sizes.get(filename)
        cap = int(known * SIZE_MARGIN) + 1024 if known else None
        failures = []
        for mirror in mirrors:
            try:
                download_file(mirror + filename, folder / filename, spec.sha256[filename],
                              timeout=timeout, progress=progress, max_bytes=cap,
                              deadline=deadline)
                break
            except DataError as exc:
                failures.append(str(exc))
        else:
            env = env_dir_problem()
            raise DataError(
                f"could not download {spec.name} file {filename}; tried: "
                + "; ".join(failures)
                + f". Put the four files ({', '.join(spec.files.values())}) in {folder} "
                + "or point --data-dir / BAREPROP_DATA_DIR at a folder holding them"
                + (f" ({env})" if env else "")
            )
    return folder


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
