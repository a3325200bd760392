"""NumPy's own BLAS, called through its CBLAS entry points with ctypes.

NumPy's matmul cannot accumulate into its output (``C = alpha A B + beta C``) and has no
axpy; BLAS has both. We call the very library NumPy's wheels bundle (OpenBLAS, in
``numpy.libs``) rather than a second BLAS: two OpenBLAS thread pools in one process
(SciPy brings its own) spin against each other on a 2-core machine, which measured an
epoch 20x slower (docs/benchmarks.md). Where that library or its symbols cannot be
found (a NumPy built against MKL, Accelerate, a system BLAS), ``load`` returns None and
the optimizers keep their plain NumPy path.

Row-major CBLAS, as NumPy's C-contiguous arrays are:
    gemm(alpha, a, b, beta, c):  c (M, N) <- alpha a b + beta c,  a (M, K), b (K, N)
                                 (a, b and c may be *row-strided*: unit-stride rows a
                                 leading dimension apart, such as a block of columns of a
                                 C-ordered matrix; a and b may also be the transpose of
                                 one, passed with the Trans flag; no copy in either case)
    axpy(alpha, x, y):           y <- alpha x + y   (same size, contiguous)
    scal(alpha, x):              x <- alpha x
    threads() / set_threads(n):  OpenBLAS's thread count (None / no-op where unknown)
"""
from __future__ import annotations

import ctypes
import glob
import os

import numpy as np

_ROW_MAJOR, _NO_TRANS, _TRANS = 101, 111, 112
#: (symbol prefix, suffix, integer type) of the CBLAS builds NumPy's wheels have shipped
_FLAVOURS = (("scipy_", "64_", ctypes.c_int64), ("scipy_", "", ctypes.c_int32),
             ("", "64_", ctypes.c_int64), ("", "", ctypes.c_int32))
_cache: dict = {}


def _library():
    """The BLAS shared library NumPy's wheel loaded, or None."""
    folder = os.path.join(os.path.dirname(os.path.dirname(np.__file__)), "numpy.libs")
    for path in sorted(glob.glob(os.path.join(folder, "*openblas*.so*"))):
        try:
            return ctypes.CDLL(path)      # already loaded by NumPy: the same handle
        except OSError:
            continue
    return None


class Cblas:
    """The three routines for one dtype (float32: s*, float64: d*)."""

    def __init__(self, lib, prefix: str, suffix: str, int_t, dtype):
        p = "s" if dtype == np.float32 else "d"
        real = ctypes.c_float if dtype == np.float32 else ctypes.c_double
        ptr, enum = ctypes.c_void_p, ctypes.c_int
        self.dtype = np.dtype(dtype)

        def fn(name, *args):
            f = getattr(lib, f"{prefix}cblas_{p}{name}{suffix}")
            f.argtypes, f.restype = list(args), None
            return f
        self._gemm = fn("gemm", enum, enum, enum, int_t, int_t, int_t, real, ptr, int_t, ptr,
                        int_t, real, ptr, int_t)
        self._axpy = fn("axpy", int_t, real, ptr, int_t, ptr, int_t)
        self._scal = fn("scal", int_t, real, ptr, int_t)
        self._threads = _thread_calls(lib, prefix, suffix)

    def writable(self, a) -> bool:
        """Whether these routines may write ``a``: an ndarray of this dtype, C-contiguous
        and writable (a wrong dtype would have BLAS write doubles into floats)."""
        return isinstance(a, np.ndarray) and a.dtype == self.dtype and \
            a.flags.c_contiguous and a.flags.writeable

    def _out(self, a, what: str) -> None:
        """An array BLAS writes into must be ``writable``, or no call is made."""
        if not self.writable(a):
            raise ValueError(f"{what}: the output must be a writable C-contiguous {self.dtype} "
                             f"array, got {a.dtype} (contiguous {a.flags.c_contiguous}, "
                             f"writable {a.flags.writeable})")

    def _rows(self, a):
        """The leading dimension of a 2-D array of this dtype whose rows are unit-stride
        and lie at least a row's length apart (a C-contiguous one, or a block of its
        columns), else None."""
        if a.ndim != 2 or a.dtype != self.dtype:
            return None
        if a.flags.c_contiguous:
            return max(1, a.shape[1])
        item = a.itemsize
        if a.strides[1] == item and a.strides[0] % item == 0 and \
                a.strides[0] // item >= max(1, a.shape[1]):
            return a.strides[0] // item
        return None

    def _operand(self, a):
        """(array, trans flag, leading dimension) of a 2-D GEMM operand: a row-strided one
        (C-contiguous included) as it is, the transpose of one with Trans; anything
        else, or another dtype, is copied first."""
        ld = self._rows(a)
        if ld is not None:
            return a, _NO_TRANS, ld
        ld = self._rows(a.T) if a.dtype == self.dtype else None
        if ld is not None and not a.flags.c_contiguous:
            return a, _TRANS, ld
        a = np.ascontiguousarray(a, self.dtype)
        return a, _NO_TRANS, max(1, a.shape[1])

    def gemm(self, alpha, a, b, beta, c) -> None:
        """c <- alpha a b + beta c, with c written in place: writable, C-contiguous or
        row-strided (a block of a C-ordered matrix's columns)."""
        ldc = self._rows(c) if isinstance(c, np.ndarray) and c.flags.writeable else None
        if ldc is None:
            self._out(c, "gemm")
        if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[0] or \
                c.shape != (a.shape[0], b.shape[1]):
            raise ValueError(f"gemm: shapes {a.shape} x {b.shape} -> {c.shape}")
        (m, k), n = a.shape, b.shape[1]
        a, ta, lda = self._operand(a)
        b, tb, ldb = self._operand(b)
        self._gemm(_ROW_MAJOR, ta, tb, m, n, k, alpha, a.ctypes.data, lda,
                   b.ctypes.data, ldb, beta, c.ctypes.data, ldc or max(1, n))

    def axpy(self, alpha, x, y) -> None:
        x = np.ascontiguousarray(x, self.dtype)
        self._out(y, "axpy")
        if x.size != y.size:
            raise ValueError(f"axpy: sizes {x.size} and {y.size}")
        self._axpy(y.size, alpha, x.ctypes.data, 1, y.ctypes.data, 1)

    def scal(self, alpha, x) -> None:
        self._out(x, "scal")
        self._scal(x.size, alpha, x.ctypes.data, 1)

    def threads(self) -> int | None:
        """The threads this BLAS runs a call on now (OpenBLAS's count), None if unknown."""
        return int(self._threads[0]()) if self._threads else None

    def set_threads(self, n: int) -> None:
        """Set that count for the whole process (a no-op where it is unknown)."""
        if self._threads:
            self._threads[1](int(n))


def _thread_calls(lib, prefix: str, suffix: str):
    """(get, set) of OpenBLAS's thread count under this flavour's names, or None."""
    try:
        get = getattr(lib, f"{prefix}openblas_get_num_threads{suffix}")
        put = getattr(lib, f"{prefix}openblas_set_num_threads{suffix}")
    except AttributeError:
        return None
    get.argtypes, get.restype = [], ctypes.c_int
    put.argtypes, put.restype = [ctypes.c_int], None
    return get, put


def load(dtype):
    """Cblas for float32/float64 over NumPy's own BLAS, or None where it is not found."""
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        return None
    if dtype not in _cache:
        lib, found = _library(), None
        for prefix, suffix, int_t in _FLAVOURS if lib is not None else ():
            try:
                found = Cblas(lib, prefix, suffix, int_t, dtype)
                break
            except AttributeError:
                continue
        _cache[dtype] = found
    return _cache[dtype]
