"""Compiled epilogues of a convolution (float32): what follows the GEMM of a Conv2d, in
one pass forward and one back (three each with batch norm in training) instead of five
to fifteen NumPy passes over the block's largest activations.

    Every kernel takes a last pair (n0, n1): it works on examples n0..n1-1 only, so that
    threads can share a batch (fast/convsplit.py), each on its own examples.

    conv_epilogue(z, bf, ow, cb, mu, inv, gamma, beta, relu, pool, avg, y, code, n0, n1)
        z: the GEMM's output buffer, (N, O, OH, W) when bf, else (O, N, OH, W), C-ordered,
        of which columns [0, OW) are outputs; v = z + cb (the conv's bias), then batch
        norm's v = ((v - mu) inv) gamma + beta per channel, in BatchNorm2d's order of
        operations (core/norm.py; without batch norm mu = beta = 0, inv = gamma = 1);
        r = max(v, 0) with relu (NaN stays NaN, as np.maximum);
        no pool: y (N, O, OH, OW) = r;
        pool:    the 2x2 stride-2 max pool of r: y (N, O, OH//2, OW//2), and per window
                 one byte ``code`` of what its backward needs (below);
        pool and avg: the 2x2 stride-2 average, (((r00 + r01) + r10) + r11) / 4 as
                 AvgPool2d sums its taps, and the ReLU's bits in ``code``.
    channel_sums(z, bf, ow, cb, mu, centred, out, n0, n1)
        out[o] = sum of v (centred=False) or of (v - mu)^2 (True) over n, h, w: batch
        norm's mean and biased variance, two-pass as BatchNorm2d, summed in float64.
    conv_epilogue_back(dy, code, y, relu, pool, avg, d, bf, ow, n0, n1)
        dL/d(v after batch norm, before the ReLU) into the conv's delta buffer d (laid
        out as z); without batch norm that is dL/dz.
    bn_back_sums(d, z, bf, ow, cb, mu, inv, out, n0, n1)
        out[0, o] = sum d (dbeta), out[1, o] = sum d xh (dgamma), xh = (v - mu) inv.
    bn_back_dx(d, z, bf, ow, cb, mu, inv, c1, k, c2, n0, n1)
        d <- xh c1 + d k - c2 in place: BatchNorm2d.input_grad's formula with its
        per-channel constants, dL/dz.
    im2col_exact(xp, cols, n0, n1), col2im_exact(dcols, dxp, n0, n1)
        stride-1 columns without the shifted rows' garbage outputs, and their adjoint
        (colkernels.py, with their versions compiled for one layer's sizes).

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
from .colkernels import col2im_exact, for_sizes, im2col_exact

_kernel = _jit(nogil=True, error_model="numpy")
# sums over a channel: each row summed in float32 with "reassoc", which lets LLVM keep
# partial sums in vector lanes (one accumulator is a chain of dependent adds, a few
# cycles each), and the rows' sums added in float64.
_sums = _jit(nogil=True, error_model="numpy", fastmath={"reassoc"})
f32 = np.float32


@_jit(inline="always", error_model="numpy")
def _max(a, b):
    """np.maximum(a, b): NaN if either is NaN, else the larger. Written as a plain
    ``b > a`` choice (one maxss) and then the NaN cases, which are predictable: the form
    ``b if (b > a) | (b != b) else a`` compiled to a branch on b > a, which random data
    mispredicts half the time (it made the pooling loop 3-5x slower)."""
    m = b if b > a else a
    m = a if a != a else m
    return b if b != b else m


@_jit(inline="always", error_model="numpy")
def _pre(z, b, m, s, g, e):
    """The value entering the ReLU: ((z + b - m) s) g + e, BatchNorm2d's order of
    operations after the conv's bias add. Without batch norm m = e = 0 and s = g = 1, and
    without a bias b = 0: adding 0 and multiplying by 1 are exact (NaN and inf included),
    so one branch-free formula serves every block."""
    v = z + b
    v = (v - m) * s
    v = v * g
    return v + e


@_jit(inline="always", error_model="numpy")
def _plane(a, bf, n, o):
    """Example n's map o of a conv buffer: (N, O, ...) when bf, else (O, N, ...)."""
    return a[n, o] if bf else a[o, n]


@_kernel
def conv_epilogue(z, bf, ow, cb, mu, inv, gamma, beta, relu, pool, avg, y, code, n0, n1):
    """z: the GEMM's buffer, C-ordered (N, O, OH, W >= OW) when bf else (O, N, OH, W);
    its columns from ow on are not outputs. Rows are unit-stride 1-D arrays here, so
    LLVM vectorises the loops (a strided view would not be)."""
    o_ = y.shape[1]
    oh = z.shape[2]
    lo = f32(0) if relu else f32(-np.inf)       # max(v, -inf) = v, NaN too
    keep_all = not relu                         # no ReLU: every mask bit 1, dy * 1 exact
    pw = ow // 2
    quarter = f32(0.25)                         # AvgPool2d's 1 / (kh kw), in float32
    t0, t1 = np.empty(2 * pw, z.dtype), np.empty(2 * pw, z.dtype)
    for n in range(n0, n1):
        for o in range(o_):
            b, m, s, g, e = cb[o], mu[o], inv[o], gamma[o], beta[o]
            zp, yp = _plane(z, bf, n, o), y[n, o]
            if not pool:
                for i in range(oh):
                    zr, yr = zp[i], yp[i]
                    for j in range(ow):
                        yr[j] = _max(_pre(zr[j], b, m, s, g, e), lo)
                continue
            cp = code[n, o]
            for p in range(oh // 2):
                top, bot, yr, cr = zp[2 * p], zp[2 * p + 1], yp[p], cp[p]
                # two simple loops LLVM vectorises: the rows' values into t0, t1, then
                # the windows from them (one loop doing both ran scalar, its selects
                # turned into branches that random data mispredicts: 5-10x slower)
                for j in range(2 * pw):
                    t0[j] = _max(_pre(top[j], b, m, s, g, e), lo)
                    t1[j] = _max(_pre(bot[j], b, m, s, g, e), lo)
                if avg:                           # AvgPool2d's order: taps summed row-major
                    for q in range(pw):
                        r00, r01 = t0[2 * q], t0[2 * q + 1]
                        r10, r11 = t1[2 * q], t1[2 * q + 1]
                        yr[q] = (((r00 + r01) + r10) + r11) * quarter
                        cr[q] = _mask_bits(r00, r01, r10, r11, keep_all)
                    continue
                for q in range(pw):
                    r00, r01, r10, r11 = t0[2 * q], t0[2 * q + 1], t1[2 * q], t1[2 * q + 1]
                    m0, m1 = _max(r00, r01), _max(r10, r11)
                    yr[q] = _max(m0, m1)
                    cr[q] = (np.uint8(r01 > r00) | np.uint8(r11 > r10) << 1
                             | np.uint8(m1 > m0) << 2
                             | _mask_bits(r00, r01, r10, r11, keep_all))


@_jit(inline="always", error_model="numpy")
def _mask_bits(r00, r01, r10, r11, keep_all):
    """Bits 3..6: the ReLU's [r > 0] of a window's four pixels (all 1 without a ReLU)."""
    return (np.uint8((r00 > 0) | keep_all) << 3 | np.uint8((r01 > 0) | keep_all) << 4
            | np.uint8((r10 > 0) | keep_all) << 5 | np.uint8((r11 > 0) | keep_all) << 6)


@_jit(inline="always", error_model="numpy")
def _bit(c, k):
    return f32((c >> k) & 1)


@_kernel
def conv_epilogue_back(dy, code, y, relu, pool, avg, d, bf, ow, n0, n1):
    """d: the conv's delta buffer, laid out as conv_epilogue's z; dy, y, code C-ordered."""
    o_ = dy.shape[1]
    oh = d.shape[2]
    keep_all = not relu
    zero, quarter = f32(0), f32(0.25)
    for n in range(n0, n1):
        for o in range(o_):
            dp, gp = _plane(d, bf, n, o), dy[n, o]
            if not pool:
                yp = y[n, o]
                for i in range(oh):
                    dr, gr, yr = dp[i], gp[i], yp[i]
                    for j in range(ow):
                        dr[j] = gr[j] * f32((yr[j] > 0) | keep_all)
                continue
            cp = code[n, o]
            ph, pw = oh // 2, ow // 2
            for p in range(ph):
                top, bot, cr, gr = dp[2 * p], dp[2 * p + 1], cp[p], gp[p]
                if avg:                           # each pixel dy / 4, then the ReLU's mask
                    for q in range(pw):
                        c, share = cr[q], gr[q] * quarter
                        top[2 * q] = share * _bit(c, 3)
                        top[2 * q + 1] = share * _bit(c, 4)
                        bot[2 * q] = share * _bit(c, 5)
                        bot[2 * q + 1] = share * _bit(c, 6)
                for q in range(0 if avg else pw):
                    c, g = cr[q], gr[q]
                    m1 = g * _bit(c, 2)
                    m0 = g - m1
                    r01 = m0 * _bit(c, 0)
                    r00 = m0 - r01
                    r11 = m1 * _bit(c, 1)
                    r10 = m1 - r11
                    top[2 * q] = r00 * _bit(c, 3)
                    top[2 * q + 1] = r01 * _bit(c, 4)
                    bot[2 * q] = r10 * _bit(c, 5)
                    bot[2 * q + 1] = r11 * _bit(c, 6)
                for j in range(2 * pw, ow):                  # odd last column: no window
                    top[j] = zero
                    bot[j] = zero
            for i in range(2 * ph, oh):                      # odd last row: no window
                dr = dp[i]
                for j in range(ow):
                    dr[j] = zero


@_sums
def channel_sums(z, bf, ow, cb, mu, centred, out, n0, n1):
    o_ = z.shape[1] if bf else z.shape[0]
    oh = z.shape[2]
    for o in range(o_):
        b, m, acc = cb[o], mu[o], 0.0
        for n in range(n0, n1):
            zp = _plane(z, bf, n, o)
            for i in range(oh):
                zr, row = zp[i], f32(0)      # a row's sum in float32 lanes, rows in float64
                if centred:
                    for j in range(ow):
                        c = (zr[j] + b) - m            # BatchNorm2d's xh = x - mu
                        row += c * c
                else:
                    for j in range(ow):
                        row += zr[j] + b
                acc += np.float64(row)
        out[o] = acc


@_jit(inline="always", error_model="numpy")
def _xh(z, b, m, s):
    v = z + b
    return (v - m) * s


@_sums
def bn_back_sums(d, z, bf, ow, cb, mu, inv, out, n0, n1):
    o_ = z.shape[1] if bf else z.shape[0]
    oh = z.shape[2]
    for o in range(o_):
        b, m, s = cb[o], mu[o], inv[o]
        db, dg = 0.0, 0.0
        for n in range(n0, n1):
            dp, zp = _plane(d, bf, n, o), _plane(z, bf, n, o)
            for i in range(oh):
                dr, zr = dp[i], zp[i]
                rb, rg = f32(0), f32(0)              # per row in float32, rows in float64
                for j in range(ow):
                    g = dr[j]
                    rb += g
                    rg += g * _xh(zr[j], b, m, s)
                db += np.float64(rb)
                dg += np.float64(rg)
        out[0, o], out[1, o] = db, dg


@_kernel
def bn_back_dx(d, z, bf, ow, cb, mu, inv, c1, k, c2, n0, n1):
    o_ = z.shape[1] if bf else z.shape[0]
    oh = z.shape[2]
    for n in range(n0, n1):
        for o in range(o_):
            b, m, s = cb[o], mu[o], inv[o]
            a1, ak, a2 = c1[o], k[o], c2[o]
            dp, zp = _plane(d, bf, n, o), _plane(z, bf, n, o)
            for i in range(oh):
                dr, zr = dp[i], zp[i]
                for j in range(ow):
                    t = _xh(zr[j], b, m, s) * a1
                    t = t + dr[j] * ak
                    dr[j] = t - a2


def compile_kernels() -> dict:
    """The kernels by name (numba compiles each at its first call: kernels.py's _warm
    makes that happen at load)."""
    return {"conv_epilogue": conv_epilogue, "conv_epilogue_back": conv_epilogue_back,
            "channel_sums": channel_sums, "bn_back_sums": bn_back_sums,
            "bn_back_dx": bn_back_dx,
            "im2col_exact": im2col_exact, "col2im_exact": col2im_exact,   # colkernels.py
            "exact_copies": for_sizes}

