"""Compiled steps of the LSTM cell (float32): the gates, the cell update and their
backward for one time step in one loop each, instead of about fifteen NumPy passes.

    lstm_step(z, c_prev, c, tc, h, first)
        z (N, 4H) holds x_t W_ih^T + b + h_{t-1} W_hh^T (PyTorch's gate order i, f, g, o)
        and becomes the gates i = s(z_i), f = s(z_f), g = tanh(z_g), o = s(z_o);
        c = f c_prev + i g (c = i g at the first step: c_0 = 0), tc = tanh(c), h = o tc
    lstm_back(dh, dseq, has_seq, s, c_prev, tc, dc, dz, first)
        d = dh (+ dseq when has_seq): dL/dh_t;  dc <- dc + d o (1 - tc^2)
        dz_i = i(1 - i) dc g      dz_f = f(1 - f) dc c_prev (0 at the first step)
        dz_g = (1 - g^2) dc i     dz_o = o(1 - o) d tc;     then dc <- dc f (dc_{t-1})

The same maths as core/cells.LSTMCell, operation for operation in the backward; the
forward's transcendentals differ from NumPy's in the last bits (below). Equal to the
reference within float32 rounding, NaN and inf included (tests/fast/test_recurrent.py).

Why a home-made exponential: numba calls libm's scalar expf/tanhf (no SVML here), about
eight times slower than NumPy's vectorised loops, so a loop calling them loses to NumPy's
fifteen passes. exp32 is Cephes' expf (Cody-Waite reduction, degree-5 polynomial, the
power of two put in the exponent bits): a few multiply-adds that LLVM vectorises, within
1.5 ulp of e^x. tanh32 takes (1 - e^-2|x|) / (1 + e^-2|x|), and below |x| = 0.3, where that
difference would lose bits, tanh's odd Taylor series to x^11 (its next term is under
1e-8 relative there): within 3 ulp. sigmoid32 = 1 / (1 + e^-x). error_model="numpy":
a division by zero gives inf, as NumPy's, instead of a Python exception, whose check
would keep LLVM from vectorising the loop.
"""
from __future__ import annotations

import numba
import numpy as np
from llvmlite import ir
from numba.core import types
from numba.extending import intrinsic

# module-level functions, not a closure as kernels.py's: numba's disk cache misses every
# time for a closure that calls other jitted closures


def _jit(**options):
    """njit with numba's disk cache where it finds a writable place for it (as kernels.py)."""
    def wrap(f):
        try:
            return numba.njit(cache=True, **options)(f)
        except RuntimeError:          # "cannot cache function ...: no locator available"
            return numba.njit(**options)(f)
    return wrap


f32 = np.float32
_EXP_HI, _EXP_LO = f32(88.72283), f32(-87.33654)     # e^x's float32 range (normal)
_UNDER = f32(-103.97208)                               # below it e^x rounds to 0
# fastmath "contract" only: a * b + c may become one fused multiply-add (one rounding
# instead of two; the polynomials run about 16% faster). No other fast-math flag: NaN,
# inf and signed zeros keep their IEEE meaning, which the tests check.
_inline = _jit(inline="always", error_model="numpy", fastmath={"contract"})
_kernel = _jit(nogil=True, error_model="numpy", fastmath={"contract"})


@intrinsic
def from_bits(typingctx, bits):
    """The float32 whose bit pattern is the int32 ``bits`` (a register move)."""
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.FloatType())
    return types.float32(types.int32), codegen


@_inline
def exp32(x):
    xc = x if x < _EXP_HI else _EXP_HI                  # NaN -> _EXP_HI; replaced below
    xc = xc if xc > _EXP_LO else _EXP_LO
    n = np.floor(xc * f32(1.44269504) + f32(0.5))    # round(x / ln 2)
    r = xc - n * f32(0.693359375)                    # x - n ln 2, ln 2 in two parts
    r = r + n * f32(2.12194440e-4)
    p = f32(1.9875691500e-4)
    p = p * r + f32(1.3981999507e-3)
    p = p * r + f32(8.3334519073e-3)
    p = p * r + f32(4.1665795894e-2)
    p = p * r + f32(1.6666665459e-1)
    p = p * r + f32(5.0000001201e-1)
    p = p * r * r + r + f32(1)                       # e^r, |r| <= ln 2 / 2
    k = np.int32(n)                                  # in [-126, 128]: 2^k in two
    half = k >> 1                                    # factors, each a normal float
    y = p * from_bits((half + np.int32(127)) << 23) * \
        from_bits((k - half + np.int32(127)) << 23)
    y = f32(np.inf) if x > _EXP_HI else y
    y = f32(0) if x < _UNDER else y
    return x if x != x else y


@_inline
def sigmoid32(x):
    return f32(1) / (f32(1) + exp32(-x))


@_inline
def tanh32(x):
    a = abs(x)
    e = exp32(f32(-2) * a)                           # in (0, 1]: no overflow
    t = (f32(1) - e) / (f32(1) + e)
    a2 = a * a
    p = f32(-1382 / 155925)                          # tanh's odd Taylor coefficients
    p = p * a2 + f32(62 / 2835)
    p = p * a2 + f32(-17 / 315)
    p = p * a2 + f32(2 / 15)
    p = p * a2 + f32(-1 / 3)
    t = a + a * a2 * p if a < f32(0.3) else t
    t = -t if x < 0 else t
    return x if x != x else t


@_kernel
def lstm_step(z, c_prev, c, tc, h, first):
    n_, hsz = c.shape
    for n in range(n_):
        # one row's four gate blocks as 1-D views: unit-stride loops LLVM vectorises
        zi, zf = z[n, :hsz], z[n, hsz:2 * hsz]
        zg, zo = z[n, 2 * hsz:3 * hsz], z[n, 3 * hsz:]
        cn, tn, hn, cp = c[n], tc[n], h[n], c_prev[n]
        for j in range(hsz):
            i, f = sigmoid32(zi[j]), sigmoid32(zf[j])
            g, o = tanh32(zg[j]), sigmoid32(zo[j])
            zi[j], zf[j], zg[j], zo[j] = i, f, g, o
            cv = i * g if first else f * cp[j] + i * g
            cn[j] = cv
            t = tanh32(cv)
            tn[j] = t
            hn[j] = o * t


@_kernel
def lstm_back(dh, dseq, has_seq, s, c_prev, tc, dc, dz, first):
    n_, hsz = dc.shape
    one = f32(1)
    for n in range(n_):
        si, sf = s[n, :hsz], s[n, hsz:2 * hsz]
        sg, so = s[n, 2 * hsz:3 * hsz], s[n, 3 * hsz:]
        di, df = dz[n, :hsz], dz[n, hsz:2 * hsz]
        dg, do = dz[n, 2 * hsz:3 * hsz], dz[n, 3 * hsz:]
        dhn, dsn, cp, tn, dcn = dh[n], dseq[n], c_prev[n], tc[n], dc[n]
        for j in range(hsz):
            d = dhn[j] + dsn[j] if has_seq else dhn[j]
            i, f, g, o, t = si[j], sf[j], sg[j], so[j], tn[j]
            dcv = dcn[j] + d * ((one - t * t) * o)
            di[j] = ((one - i) * i) * (dcv * g)
            df[j] = f32(0) if first else ((one - f) * f) * (dcv * cp[j])
            dg[j] = (one - g * g) * (dcv * i)
            do[j] = ((one - o) * o) * (d * t)
            dcn[j] = dcv * f


def compile_kernels() -> dict:
    """The kernels by name, and exp32, tanh32, sigmoid32 for the accuracy tests (numba
    compiles each at its first call: kernels.py's _warm makes that happen at load)."""
    return {"lstm_step": lstm_step, "lstm_back": lstm_back, "exp32": exp32,
            "tanh32": tanh32, "sigmoid32": sigmoid32}