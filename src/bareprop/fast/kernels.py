"""Optional compiled element-wise kernels (numba) for float32 training.

NumPy runs an element-wise stage as several whole-array passes, each a call of 1-3 us
plus a temporary: a bias add then a ReLU is two passes over (N, D); ReLU's backward
makes a mask and then multiplies; softmax cross-entropy is about ten calls on an
(N, C) array. Inside a training step those calls, not the GEMMs, are what keeps a small
MLP away from its GEMM-only bound (docs/benchmarks.md). numba compiles each
stage to one loop, one call:

    bias_relu(z^T, b):           z^T <- max(z^T + b, 0)        (D, N), in place
    relu_back(out, d, y):        out = d * [y > 0]              flat, same layout
    softmax_ce(z, y, eps, dz):   dz = (softmax(z) - q) / N,  returns L      (N, C)
                                 q = (1 - eps) onehot(y) + eps / C
    lstm_step, lstm_back:        one LSTM time step, forward and back (cellkernels.py)
    conv_epilogue(_back), ...:   bias, batch norm, ReLU and 2x2 max pool after a conv's
                                 GEMM, and their backward into its delta (convkernels.py)
    affine_sample:               augmentation's inverse map and bilinear read (augkernels.py)

Each computes what the reference code computes (core/linear.py, activations.py,
losses.py), equal within float rounding (tests/fast/test_kernels.py), NaN and inf included;
fast/linear.py and fast/loss.py call them, chosen once per training step (fast/plan.py).
They run only on float32 arrays: float64 is the verification dtype (the PyTorch twins,
the seed preset's exactness) and stays on the NumPy path, bit for bit as before.

``get(dtype)`` returns the kernels, or None for the NumPy path. BAREPROP_ACCEL picks:
"auto" (default: numba when it imports), "numpy" (never), "numba" (required: a
ConfigError when numba is missing); ``use(mode)`` sets it from code. numba is the
optional extra ``pip install 'bareprop[fast]'``; compiled code is cached on disk after
the first run (numba's ``cache=True``).
"""
from __future__ import annotations

import os
import warnings

import numpy as np

from ..errors import ConfigError

MODES = ("auto", "numpy", "numba")
_compiled = None          # the kernels once compiled; False: numba missing or failing
_choice: str | None = None   # the mode in force; None: read BAREPROP_ACCEL at the next call
_failure: str | None = None  # why an installed numba could not compile them, if it could not
_warned = False              # whether that was said (once, under "auto")


def _parse(m: str) -> str:
    m = m.strip().lower() or "auto"
    if m not in MODES:
        raise ConfigError(f"BAREPROP_ACCEL must be one of {', '.join(MODES)}, got {m!r}")
    return m


def mode() -> str:
    """The mode in force: ``use``'s, else BAREPROP_ACCEL as first read (read once: the
    environment costs ~0.5 us a look, and a step asks several times)."""
    global _choice
    if _choice is None:
        _choice = _parse(os.environ.get("BAREPROP_ACCEL", "auto"))
    return _choice


def use(m: str | None) -> str | None:
    """Set the mode for this process ("auto", "numpy" or "numba"); None reads
    BAREPROP_ACCEL again at the next call. Returns the setting it replaces."""
    global _choice
    old, _choice = _choice, (None if m is None else _parse(m))
    return old


def get(dtype):
    """The compiled kernels for arrays of ``dtype``, or None (use NumPy)."""
    if dtype != np.float32:
        return None
    m = _choice or mode()
    if m == "numpy":
        return None
    k = _compiled if _compiled is not None else _load()
    if not k:
        global _warned
        if m == "auto" and _failure and not _warned:     # said once, then NumPy quietly
            _warned = True
            warnings.warn(f"numba could not compile bareprop's kernels ({_failure}); "
                          "float32 element-wise work stays on NumPy", RuntimeWarning,
                          stacklevel=2)
        if m == "numba":
            raise ConfigError(
                f"BAREPROP_ACCEL=numba, but numba could not compile the kernels ({_failure}); "
                "unset BAREPROP_ACCEL to use NumPy alone" if _failure else
                "BAREPROP_ACCEL=numba needs numba: pip install 'bareprop[fast]' (or unset "
                "BAREPROP_ACCEL to use NumPy alone)")
        return None
    return k


def check() -> str:
    """BAREPROP_ACCEL read afresh, after refusing a bad value or a missing numba under
    "numba" (ConfigError, one line): what the CLI calls before it starts any work."""
    use(None)
    m = mode()
    if m == "numba":
        get(np.float32)
    return m


def describe() -> str:
    """What float32 element-wise work runs on here, for benchmark stamps."""
    m = mode()
    if m == "numpy":
        return "NumPy (BAREPROP_ACCEL=numpy)"
    if _load() is None:
        return f"NumPy (numba could not compile: {_failure})" if _failure else \
            "NumPy (numba not installed)"
    import numba

    return f"compiled, numba {numba.__version__} (BAREPROP_ACCEL={m})"


def available() -> bool:
    """Whether the compiled kernels can run here (whatever BAREPROP_ACCEL says)."""
    return _load() is not None


def compiled():
    """The compiled kernels whatever BAREPROP_ACCEL says (benchmarks compare both paths),
    or None where numba is missing or cannot compile them."""
    return _load()


def _load():
    global _compiled, _failure
    if _compiled is None:
        try:
            import numba
        except ImportError:
            _compiled = False
            return None
        except Exception as exc:   # noqa: BLE001 - llvmlite's OSError/RuntimeError at import
            _failure, _compiled = f"numba failed to import: {exc!r}", False
            return None
        try:
            k = _compile(numba)
            _warm(k)        # compile now, so a numba that cannot fails here, not mid-step
        except Exception as exc:   # noqa: BLE001 - any failure means: use NumPy
            _failure = f"numba {numba.__version__}: {exc!r}"
            k = False
        _compiled = k
    return _compiled or None


def _warm(k) -> None:
    """Run each kernel once on tiny arrays of every layout the layers pass (numba compiles
    one specialisation per layout): (D, N) C for bias_relu, flat views for relu_back,
    C- and F-ordered logits for softmax_ce."""
    z = np.zeros((2, 3), np.float32)
    k.bias_relu(z, np.zeros(2, np.float32))
    k.relu_back(np.empty(6, np.float32), z.ravel(), z.ravel())
    y = np.zeros(2, np.intp)
    for logits in (z, np.asfortranarray(z)):
        k.softmax_ce(logits, y, 0.0, np.empty((2, 3), np.float32))
    # the LSTM's steps on (N, H) = (2, 3) rows of (T, N, ...) arrays; dseq a strided view
    # (a sequence output's gradient, one direction's columns) or the carry itself
    gates, state = np.zeros((2, 12), np.float32), np.zeros((2, 3), np.float32)
    k.lstm_step(gates, state, state.copy(), state.copy(), state.copy(), True)
    for dseq in (state, np.zeros((2, 6), np.float32)[:, :3]):
        k.lstm_back(state, dseq, True, gates, state, state, state.copy(), gates.copy(), True)
    # the conv epilogues on a (1, 2, 2, 3) buffer of which 2 columns are outputs, either
    # axis order; dy and y C-ordered (the block makes them so)
    full, b = np.zeros((1, 2, 2, 3), np.float32), np.ones(2, np.float32)
    y, code = np.empty((1, 2, 1, 1), np.float32), np.empty((1, 2, 1, 1), np.uint8)
    sums, sums2 = np.empty(2), np.empty((2, 2))
    for pool, avg, out, c in ((True, False, y, code), (True, True, y, code),
                              (False, False, np.empty((1, 2, 2, 2), np.float32), code[:0])):
        k.conv_epilogue(full, True, 2, b, b, b, b, b, True, pool, avg, out, c, 0, 1)
        k.conv_epilogue_back(out, c, out, True, pool, avg, full, True, 2, 0, 1)
    k.channel_sums(full, True, 2, b, b, True, sums, 0, 1)
    k.bn_back_sums(full, full, True, 2, b, b, b, sums2, 0, 1)
    k.bn_back_dx(full, full, True, 2, b, b, b, b, b, b, 0, 1)
    cols, planes = np.zeros((1, 2, 2, 1, 4), np.float32), np.zeros((1, 1, 3, 3), np.float32)
    k.im2col_exact(planes, cols, 0, 1)
    k.col2im_exact(cols, planes, 0, 1)
    one = np.ones(1, np.float32)          # augmentation: one 2x2 image, mirrored, a field
    k.affine_sample(np.zeros((1, 2, 2), np.float32), one, one * 0, np.zeros((2, 1), np.float32),
                    np.ones(1, bool), np.zeros((2, 1, 4), np.float32),
                    np.empty((1, 4), np.float32))


def _compile(numba):
    def jit(f):
        # nogil: release the GIL inside the loops, as NumPy's own loops do. Compiled once
        # and cached on disk, where numba finds a writable place for it (beside this file,
        # or its per-user cache); otherwise compiled in each process (~1 s)
        try:
            return numba.njit(cache=True, nogil=True)(f)
        except RuntimeError:          # "cannot cache function ...: no locator available"
            return numba.njit(nogil=True)(f)

    @jit
    def bias_relu(z, b):
        for i in range(z.shape[0]):
            bi = b[i]
            for n in range(z.shape[1]):
                v = z[i, n] + bi
                z[i, n] = np.float32(0) if v < 0 else v   # NaN stays NaN, as np.maximum's

    @jit
    def relu_back(out, d, y):
        for i in range(out.shape[0]):
            # d * 0 (not 0) where y <= 0: a NaN or inf gradient stays NaN, as NumPy's
            out[i] = d[i] if y[i] > 0 else d[i] * np.float32(0)

    @jit
    def softmax_ce(z, y, eps, dz):
        n_, c_ = z.shape
        inv_n = 1.0 / n_
        off = eps * inv_n / c_                    # eps / (C N)
        total = 0.0
        for n in range(n_):
            m = z[n, 0]                           # shift by the row's max: exp <= 1
            for c in range(1, c_):
                if z[n, c] > m:
                    m = z[n, c]
            s = 0.0
            for c in range(c_):
                e = np.exp(z[n, c] - m)
                dz[n, c] = e
                s += e
            log_s = np.log(s)
            # -log p_y = log s - (z_y - m); with smoothing, eps mean_c -log p_c too (only
            # then: 0 * inf would make a -inf logit's finite loss NaN)
            total += (1 - eps) * (log_s - (z[n, y[n]] - m))
            if eps:
                shifted = 0.0
                for c in range(c_):
                    shifted += z[n, c] - m
                total += eps * (log_s - shifted / c_)
            r = inv_n / s
            for c in range(c_):
                dz[n, c] = dz[n, c] * r - off
            dz[n, y[n]] -= (1 - eps) * inv_n
        return total * inv_n

    class Kernels:
        """The compiled stages (see the module docstring)."""
    k = Kernels()
    k.bias_relu, k.relu_back, k.softmax_ce = bias_relu, relu_back, softmax_ce
    from . import augkernels, cellkernels, convkernels

    # the LSTM's steps, conv epilogues, augmentation's sampling
    for more in (cellkernels, convkernels, augkernels):
        for name, fn in more.compile_kernels().items():
            setattr(k, name, fn)
    return k
