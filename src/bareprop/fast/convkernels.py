"""Compiled epilogues of a convolution (float32): what follows the GEMM of a Conv2d, in
one pass forward and one back (three each with batch norm in training) instead of five
to fifteen NumPy passes over the block's largest activations.

    conv_epilogue(z, cb, has_bias, bn, mu, inv, gamma, beta, relu, pool, y, code)
        z (N, O, OH, OW): the GEMM's output (any strides: a view of the conv's buffer);
        v = z + cb (the conv's bias);  with bn: v = ((v - mu) inv) gamma + beta, per
        channel, in BatchNorm2d's order of operations (core/norm.py);
        r = max(v, 0) with relu (NaN stays NaN, as np.maximum);
        pool=False: y (N, O, OH, OW) = r;
        pool=True:  the 2x2 stride-2 max pool of r: y (N, O, OH//2, OW//2), and per
        window one byte ``code`` of what its backward needs (below).
    channel_sums(z, cb, has_bias, mu, centred, out)
        out[o] = sum of v (centred=False) or of (v - mu)^2 (True) over n, h, w: batch
        norm's mean and biased variance, two-pass as BatchNorm2d, summed in float64.
    conv_epilogue_back(dy, code, y, relu, pool, d)
        dL/d(v after batch norm, before the ReLU) into d (N, O, OH, OW) (any strides: a
        view of the conv's delta buffer); without batch norm that is dL/dz.
    bn_back_sums(d, z, cb, has_bias, mu, inv, out)
        out[0, o] = sum d (dbeta), out[1, o] = sum d xh (dgamma), xh = (v - mu) inv.
    bn_back_dx(d, z, cb, has_bias, mu, inv, c1, k, c2)
        d <- xh c1 + d k - c2 in place: BatchNorm2d.input_grad's formula with its
        per-channel constants, dL/dz.

The pool is MaxPool2d's separable 2x2 maximum (core/pooling.py), operation for
operation: each row's max m = max(r0, r1) with h = [r1 > r0], then the window's max of
the two rows' maxima with v = [m1 > m0] (the first maximal tap wins ties, NaN
propagates). Its backward routes as _route does, with the same arithmetic:
    dm1 = dy v,  dm0 = dy - dm1,  then per row  dr1 = dm h,  dr0 = dm - dr1
(so an infinite dy gives the same NaNs as the reference), and the ReLU's backward
multiplies by [r > 0] as core/activations.ReLU. Pixels of an odd last row or column,
which no window reads, get 0.

code, per window: bit 0 h of the top row, bit 1 h of the bottom row, bit 2 v, bits
3..6 [r > 0] of its four pixels (row-major): one byte instead of the ReLU's output and
the pool's index arrays.
"""
from __future__ import annotations

import numpy as np

from .cellkernels import _jit

_kernel = _jit(nogil=True, error_model="numpy")
f32 = np.float32


@_jit(inline="always", error_model="numpy")
def _max(a, b):
    """np.maximum(a, b): NaN if either is NaN, else the larger."""
    if a != a:
        return a
    if b != b:
        return b
    return a if a >= b else b


@_jit(inline="always", error_model="numpy")
def _pre(z, cb, has_bias, bn, mu, inv, g, be):
    """The value entering the ReLU: z + cb, then batch norm's (v - mu) inv g + be."""
    v = z + cb if has_bias else z
    if bn:
        v = (v - mu) * inv
        v = v * g
        v = v + be
    return v


@_kernel
def conv_epilogue(z, cb, has_bias, bn, mu, inv, gamma, beta, relu, pool, y, code):
    n_, o_, oh, ow = z.shape
    zero = f32(0)
    for n in range(n_):
        for o in range(o_):
            b = cb[o] if has_bias else zero
            m, s, g, e = (mu[o], inv[o], gamma[o], beta[o]) if bn else (zero, zero, zero, zero)
            zp, yp = z[n, o], y[n, o]
            if not pool:
                for i in range(oh):
                    for j in range(ow):
                        v = _pre(zp[i, j], b, has_bias, bn, m, s, g, e)
                        yp[i, j] = _max(v, zero) if relu else v
                continue
            cp = code[n, o]
            for p in range(oh // 2):
                top, bot = zp[2 * p], zp[2 * p + 1]
                for q in range(ow // 2):
                    r00 = _pre(top[2 * q], b, has_bias, bn, m, s, g, e)
                    r01 = _pre(top[2 * q + 1], b, has_bias, bn, m, s, g, e)
                    r10 = _pre(bot[2 * q], b, has_bias, bn, m, s, g, e)
                    r11 = _pre(bot[2 * q + 1], b, has_bias, bn, m, s, g, e)
                    if relu:
                        r00, r01 = _max(r00, zero), _max(r01, zero)
                        r10, r11 = _max(r10, zero), _max(r11, zero)
                    m0, m1 = _max(r00, r01), _max(r10, r11)
                    h0, h1 = r01 > r00, r11 > r10
                    v = m1 > m0
                    yp[p, q] = _max(m0, m1)
                    cp[p, q] = (np.uint8(h0) | np.uint8(h1) << 1 | np.uint8(v) << 2
                                | np.uint8(r00 > 0) << 3 | np.uint8(r01 > 0) << 4
                                | np.uint8(r10 > 0) << 5 | np.uint8(r11 > 0) << 6)


@_jit(inline="always", error_model="numpy")
def _bit(c, k):
    return f32((c >> k) & 1)


@_kernel
def conv_epilogue_back(dy, code, y, relu, pool, d):
    n_, o_, oh, ow = d.shape
    for n in range(n_):
        for o in range(o_):
            dp, gp = d[n, o], dy[n, o]
            if not pool:
                yp = y[n, o]
                for i in range(oh):
                    for j in range(ow):
                        g = gp[i, j]
                        dp[i, j] = g * f32(yp[i, j] > 0) if relu else g
                continue
            cp = code[n, o]
            ph, pw = oh // 2, ow // 2
            for p in range(ph):
                top, bot = dp[2 * p], dp[2 * p + 1]
                for q in range(pw):
                    c, g = cp[p, q], gp[p, q]
                    m1 = g * _bit(c, 2)
                    m0 = g - m1
                    r01 = m0 * _bit(c, 0)
                    r00 = m0 - r01
                    r11 = m1 * _bit(c, 1)
                    r10 = m1 - r11
                    if relu:
                        r00, r01 = r00 * _bit(c, 3), r01 * _bit(c, 4)
                        r10, r11 = r10 * _bit(c, 5), r11 * _bit(c, 6)
                    top[2 * q], top[2 * q + 1] = r00, r01
                    bot[2 * q], bot[2 * q + 1] = r10, r11
                for j in range(2 * pw, ow):                  # odd last column: no window
                    top[j] = f32(0)
                    bot[j] = f32(0)
            for i in range(2 * ph, oh):                      # odd last row: no window
                for j in range(ow):
                    dp[i, j] = f32(0)


@_kernel
def channel_sums(z, cb, has_bias, mu, centred, out):
    n_, o_, oh, ow = z.shape
    for o in range(o_):
        b, m, acc = (cb[o] if has_bias else f32(0)), mu[o], 0.0
        for n in range(n_):
            zp = z[n, o]
            for i in range(oh):
                for j in range(ow):
                    v = zp[i, j] + b if has_bias else zp[i, j]
                    if centred:
                        c = np.float64(v - m)              # BatchNorm2d's xh = x - mu
                        acc += c * c
                    else:
                        acc += np.float64(v)
        out[o] = acc


@_jit(inline="always", error_model="numpy")
def _xh(z, b, has_bias, m, s):
    v = z + b if has_bias else z
    return (v - m) * s


@_kernel
def bn_back_sums(d, z, cb, has_bias, mu, inv, out):
    n_, o_, oh, ow = d.shape
    for o in range(o_):
        b, m, s = (cb[o] if has_bias else f32(0)), mu[o], inv[o]
        db, dg = 0.0, 0.0
        for n in range(n_):
            dp, zp = d[n, o], z[n, o]
            for i in range(oh):
                for j in range(ow):
                    g = dp[i, j]
                    db += np.float64(g)
                    dg += np.float64(g * _xh(zp[i, j], b, has_bias, m, s))
        out[0, o], out[1, o] = db, dg


@_kernel
def bn_back_dx(d, z, cb, has_bias, mu, inv, c1, k, c2):
    n_, o_, oh, ow = d.shape
    for n in range(n_):
        for o in range(o_):
            b, m, s = (cb[o] if has_bias else f32(0)), mu[o], inv[o]
            a1, ak, a2 = c1[o], k[o], c2[o]
            dp, zp = d[n, o], z[n, o]
            for i in range(oh):
                for j in range(ow):
                    t = _xh(zp[i, j], b, has_bias, m, s) * a1
                    t = t + dp[i, j] * ak
                    dp[i, j] = t - a2


def compile_kernels() -> dict:
    """The kernels by name (numba compiles each at its first call: kernels.py's _warm
    makes that happen at load)."""
    return {"conv_epilogue": conv_epilogue, "conv_epilogue_back": conv_epilogue_back,
            "channel_sums": channel_sums, "bn_back_sums": bn_back_sums,
            "bn_back_dx": bn_back_dx}

