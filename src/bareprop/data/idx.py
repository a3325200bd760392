"""IDX files (LeCun's MNIST format): read, validate, write. Standard library + NumPy.

Layout: magic = 0x00 0x00 <dtype code> <ndim>, then ndim big-endian uint32 sizes,
then the payload, row-major, big-endian. gzip-compressed files are detected by
their magic bytes, not their name.

Not here: which files make a dataset (registry.py), or downloads (download.py).
"""
from __future__ import annotations

import gzip
import io
import os
import zlib
from pathlib import Path

import numpy as np

from ..errors import DataError

DTYPES = {0x08: np.dtype(">u1"), 0x09: np.dtype(">i1"), 0x0B: np.dtype(">i2"),
          0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}
CODES = {dt.newbyteorder("="): code for code, dt in DTYPES.items()}
# Deflate expands at most ~1032:1, so a gzip of n bytes cannot hold more than this;
# a header claiming more is refused before anything is allocated.
MAX_GZIP_RATIO = 1032
# ...but 1032:1 still lets a 10 MB gzip bomb claim 10 GB. No IDX file bareprop reads by
# default may decompress to more than this (10x MNIST's largest, 47 MB); callers that
# know the real size (datasets.py, from the registry) pass a tighter max_bytes.
MAX_IDX_BYTES = 512 * 2**20
GZIP_MAGIC = b"\x1f\x8b"


class IdxError(DataError):
    """A malformed IDX file: the message names the file and what is wrong."""


class _Source:
    """Reads the (possibly gzipped) byte stream with a bound on what it may expand to."""

    def __init__(self, raw: bytes, gzipped: bool, name: str, hasher=None):
        self.name = name
        self.hasher = hasher
        self.raw = raw
        self.gzipped = gzipped
        self.pos = 0
        self.limit = len(raw) * MAX_GZIP_RATIO + 1024 if gzipped else len(raw)
        self._d = zlib.decompressobj(wbits=31) if gzipped else None
        self._pending = raw

    def read(self, n: int) -> bytes:
        """Up to n bytes (fewer only at the end of the data)."""
        if not self.gzipped:
            out = self.raw[self.pos:self.pos + n]
            self.pos += len(out)
        else:
            try:
                out = self._d.decompress(self._pending, n)
            except zlib.error as exc:
                raise IdxError(f"{self.name}: corrupt gzip stream ({exc})") from None
            self._pending = self._d.unconsumed_tail
        if self.hasher is not None:
            self.hasher.update(out)
        return out

    def check_end(self) -> None:
        """Nothing may follow the payload, and a gzip stream must end cleanly."""
        if self.read(1):
            raise IdxError(f"{self.name}: the file is longer than its header says "
                           "(dimensions disagree with the file length)")
        if self.gzipped and not self._d.eof:
            raise IdxError(f"{self.name}: gzip stream ends early (file truncated?)")


def parse_idx(raw: bytes, name: str = "<bytes>", hasher=None,
              max_bytes: int = MAX_IDX_BYTES) -> np.ndarray:
    """Parse IDX bytes (gzip or plain) into an array of the file's dtype, native order.

    ``hasher`` (a hashlib object), if given, is fed the decompressed IDX content, so
    a content checksum costs no second decompression. ``max_bytes`` bounds the
    decompressed size: a header claiming more is refused before decompressing, and
    the stream is only ever decompressed up to what the header claims (plus one byte
    to see that it ends there), so a gzip bomb costs neither time nor memory.
    Raises IdxError for anything that is not a complete, consistent IDX file.
    """
    gzipped = raw[:2] == GZIP_MAGIC
    if not raw:
        raise IdxError(f"{name}: the file is empty")
    if name.endswith(".gz") and not gzipped:
        raise IdxError(f"{name}: named .gz but does not hold gzip data "
                       "(re-download it, or drop the .gz suffix if it is plain IDX)")
    src = _Source(raw, gzipped, name, hasher)
    head = src.read(4)
    if len(head) < 4:
        raise IdxError(f"{name}: truncated header ({len(head)} of 4 magic bytes)")
    if head[0] != 0 or head[1] != 0:
        raise IdxError(f"{name}: wrong magic number 0x{head.hex()} "
                       "(an IDX file starts with two zero bytes)")
    code, ndim = head[2], head[3]
    if code not in DTYPES:
        raise IdxError(f"{name}: unknown IDX dtype code 0x{code:02x} "
                       f"(valid: {', '.join(f'0x{c:02x}' for c in DTYPES)})")
    if ndim == 0:
        raise IdxError(f"{name}: header declares zero dimensions")
    dims_raw = src.read(4 * ndim)
    if len(dims_raw) < 4 * ndim:
        raise IdxError(f"{name}: truncated header (needs {ndim} dimension sizes)")
    dims = tuple(int(d) for d in np.frombuffer(dims_raw, ">u4"))
    dtype = DTYPES[code]
    payload_len = int(np.prod(dims, dtype=object)) * dtype.itemsize
    if payload_len > max_bytes:
        raise IdxError(f"{name}: header claims dimensions {dims} ({payload_len:,} bytes), "
                       f"more than the {max_bytes:,} bytes allowed for this file")
    if payload_len > src.limit:
        raise IdxError(f"{name}: header claims dimensions {dims} ({payload_len:,} bytes), "
                       f"more than a {len(raw):,}-byte file can hold")
    payload = src.read(payload_len)
    if len(payload) < payload_len:
        raise IdxError(f"{name}: truncated payload: {len(payload):,} of {payload_len:,} bytes "
                       f"for dimensions {dims}")
    src.check_end()
    array = np.frombuffer(payload, dtype).reshape(dims)
    if dtype.itemsize > 1:
        array = array.astype(dtype.newbyteorder("="))
    return array


def read_file(path: Path, max_bytes: int = MAX_IDX_BYTES) -> bytes:
    """The bytes of an IDX file, refused unread when it is larger than an IDX file of
    ``max_bytes`` content could be (gzip adds well under 1% to incompressible data)."""
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size > max_bytes + max_bytes // 100 + 2048:
                raise IdxError(f"{path}: {size:,} bytes, larger than an IDX file bareprop "
                               f"reads here may be ({max_bytes:,} bytes of content)")
            return f.read()
    except FileNotFoundError:
        raise IdxError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise IdxError(f"{path}: is a directory, expected an IDX file") from None
    except OSError as exc:
        raise IdxError(f"{path}: cannot read ({exc.strerror})") from None


def read_idx(path: str | os.PathLike, max_bytes: int = MAX_IDX_BYTES) -> np.ndarray:
    """Read an IDX file (``.gz`` or plain) of at most ``max_bytes`` decompressed."""
    path = Path(path)      # read_file names a directory or missing file in one line
    return parse_idx(read_file(path, max_bytes), str(path), max_bytes=max_bytes)


def idx_bytes(array: np.ndarray, compress: bool = False) -> bytes:
    """The IDX encoding of ``array`` (optionally gzipped)."""
    array = np.asarray(array)
    native = array.dtype.newbyteorder("=")
    if native not in CODES:
        raise ValueError(f"IDX cannot store dtype {array.dtype}; use one of "
                         f"{', '.join(str(d) for d in CODES)}")
    if array.ndim == 0 or array.ndim > 255:
        raise ValueError(f"IDX stores 1 to 255 dimensions, got {array.ndim}")
    code = CODES[native]
    header = bytes([0, 0, code, array.ndim]) + np.array(array.shape, ">u4").tobytes()
    body = header + np.ascontiguousarray(array, DTYPES[code]).tobytes()
    if compress:
        buf = io.BytesIO()
        with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0) as f:
            f.write(body)
        return buf.getvalue()
    return body


def write_idx(path: str | os.PathLike, array: np.ndarray, compress: bool | None = None) -> None:
    """Write ``array`` as IDX; gzip when ``compress`` is True or the name ends in .gz."""
    path = Path(path)
    if compress is None:
        compress = path.suffix == ".gz"
    from ..archive import atomic_write  # the one writer: no planted name is written through

    atomic_write(path, idx_bytes(array, compress))
