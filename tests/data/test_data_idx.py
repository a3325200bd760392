"""IDX reader/writer: round trips, every malformed-file case, and fuzzing."""
import gzip
import struct

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bareprop.data import IdxError, parse_idx, read_idx, write_idx
from bareprop.data.idx import idx_bytes
from bareprop.errors import DataError


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
@pytest.mark.parametrize("gz", [False, True])
def test_round_trip(tmp_path, dtype, gz):
    a = (np.arange(2 * 3 * 5) - 7).reshape(2, 3, 5).astype(dtype)
    if dtype == np.uint8:
        a = np.arange(30, dtype=np.uint8).reshape(2, 3, 5)
    path = tmp_path / ("a.idx.gz" if gz else "a.idx")
    write_idx(path, a)
    b = read_idx(path)
    assert b.dtype == a.dtype and b.shape == a.shape
    np.testing.assert_array_equal(a, b)


def test_header_layout_is_big_endian():
    raw = idx_bytes(np.zeros((3, 2), np.uint8))
    assert raw[:4] == b"\x00\x00\x08\x02"
    assert struct.unpack(">II", raw[4:12]) == (3, 2)
    assert len(raw) == 12 + 6


GOOD = idx_bytes(np.arange(24, dtype=np.uint8).reshape(2, 3, 4))


@pytest.mark.parametrize("raw,match", [
    (b"", "empty"),
    (b"\x00\x00", "truncated header"),
    (b"\x01\x00\x08\x01" + b"\x00\x00\x00\x01" + b"x", "wrong magic"),
    (b"\x00\x00\x07\x01" + b"\x00\x00\x00\x01" + b"x", "dtype code 0x07"),
    (b"\x00\x00\x08\x03" + b"\x00\x00\x00\x02", "truncated header"),
    (b"\x00\x00\x08\x00", "zero dimensions"),
    (GOOD[:-3], "truncated payload"),
    (GOOD + b"\x00", "longer than its header"),
    (b"\x00\x00\x08\x01" + struct.pack(">I", 10**9) + b"x", "more than"),
])
def test_malformed_plain(raw, match):
    with pytest.raises(IdxError, match=match):
        parse_idx(raw, "f.idx")


def test_malformed_gzip_cases():
    gz = gzip.compress(GOOD)
    with pytest.raises(IdxError, match="not hold gzip"):
        parse_idx(GOOD, "x-idx3-ubyte.gz")
    corrupt = bytearray(gz)
    corrupt[15:25] = b"\xff" * 10
    with pytest.raises(IdxError):
        parse_idx(bytes(corrupt), "c.gz")
    with pytest.raises(IdxError, match="truncated|ends early"):
        parse_idx(gz[:-10], "t.gz")
    # the gzip holds a header claiming 10^12 images: refused before allocating
    huge = gzip.compress(b"\x00\x00\x08\x03" + struct.pack(">III", 10**6, 10**3, 10**3) + b"ab")
    with pytest.raises(IdxError, match="more than"):
        parse_idx(huge, "huge.gz")
    # a truncated payload inside an intact gzip stream
    with pytest.raises(IdxError, match="truncated payload"):
        parse_idx(gzip.compress(GOOD[:-5]), "short.gz")


def test_paths_that_are_not_files(tmp_path):
    with pytest.raises(IdxError, match="directory"):
        read_idx(tmp_path)
    with pytest.raises(IdxError, match="no such file"):
        read_idx(tmp_path / "missing.idx")
    (tmp_path / "empty.gz").write_bytes(b"")
    with pytest.raises(IdxError, match="empty"):
        read_idx(tmp_path / "empty.gz")
    assert issubclass(IdxError, DataError)


def test_writer_refuses_unsupported_dtype(tmp_path):
    with pytest.raises(ValueError, match="IDX cannot store"):
        write_idx(tmp_path / "a.idx", np.zeros(3, np.complex64))


def _valid_or_idx_error(raw: bytes, name: str) -> None:
    try:
        out = parse_idx(raw, name)
    except IdxError:
        return
    assert isinstance(out, np.ndarray)
    assert out.nbytes <= max(len(raw), 1) * 1032 + 1024


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=64))
def test_fuzz_arbitrary_bytes(raw):
    _valid_or_idx_error(raw, "fuzz.idx")
    _valid_or_idx_error(raw, "fuzz.gz")


@settings(max_examples=300, deadline=None)
@given(st.sampled_from([GOOD, gzip.compress(GOOD)]),
       st.lists(st.tuples(st.integers(0, 200), st.integers(0, 255)), max_size=4),
       st.integers(0, 80))
def test_fuzz_mutations_of_valid_files(base, edits, cut):
    raw = bytearray(base)
    for pos, value in edits:
        if raw:
            raw[pos % len(raw)] = value
    raw = bytes(raw[: max(len(raw) - cut, 0)]) if cut % 3 == 0 else bytes(raw)
    _valid_or_idx_error(raw, "mut.idx")
    _valid_or_idx_error(raw, "mut.gz")
