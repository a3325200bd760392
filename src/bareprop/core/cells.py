"""The recurrent cells' maths: one direction of one layer, run over all T steps forward,
then back through time (BPTT), as PyTorch's torch.nn.RNN, LSTM and GRU compute it.

Each cell works time-major on arrays the layer hands it:

    xp      (T, N, G H)   the input projections x_t W_ih^T + b of every step, computed by
                          the layer in one GEMM; the cell overwrites them in place with
                          what backward needs (the activated gates)
    w_hh    (G H, H)      the recurrent weights (G gates: RNN 1, LSTM 4, GRU 3)
    order   the steps in the order this direction reads them: 0..T-1 forward,
            T-1..0 for the reverse direction of a bidirectional layer
    buf     (name, shape) -> an array: scratch the layer keeps between training steps

``forward`` returns the cache (a dict; ``cache["h"]`` (T, N, H) is every step's hidden
state), ``backward`` the gradients w.r.t. the gate pre-activations: ``dzx`` (T, N, G H),
the delta of the input projection (dW_ih = dzx^T x, db_ih = sum dzx, dx = dzx W_ih) and
``dzh`` (T, N, G H), the delta of the recurrent product (dW_hh = dzh^T h_prev, db_hh =
sum dzh); they are one array except in the GRU, whose reset gate sits inside the
recurrent product. The layer turns them into weight gradients with one GEMM each over
all steps (core/recurrent.py).

One recurrent GEMM per step is the part that cannot be batched; everything else that
does not depend on the recurrence (the gates' local derivatives) is computed for all
steps at once before the backward loop, and the per-step element-wise work runs in
place on preallocated arrays. The initial states h_0 (and c_0) are zero, so the first
step's recurrent GEMM is skipped. Derivations: docs/backprop.md, "Recurrent networks".

Not here: parameters, stacking layers and directions, layouts (core/recurrent.py).
"""
from __future__ import annotations

import numpy as np


def sigmoid_(a: np.ndarray) -> np.ndarray:
    """a <- 1 / (1 + e^-a) in place, in four passes without a temporary. e^-a overflows
    to inf for a < -88 (float32) and the result is then the correct 0: callers run it
    under ``np.errstate(over="ignore")``. (A third faster than (1 + tanh(a/2)) / 2, whose
    tanh NumPy computes slowly, and accurate to the last bit for very negative a too.)"""
    np.negative(a, out=a)
    np.exp(a, out=a)
    a += 1
    np.reciprocal(a, out=a)
    return a


def _steps(order):
    """(t, prev) for each step in reading order: prev is the step read before it (whose
    state is h_{t-1}), None for the first."""
    order = list(order)
    return list(zip(order, [None] + order[:-1]))


def _carry(dh_last, shape, buf):
    """The gradient carried into the last step read: dL/dh_T from a final-state output,
    else zero (a sequence output adds its per-step gradients in the loop)."""
    carry = buf("carry", shape)
    if dh_last is None:
        carry.fill(0)
    else:
        carry[...] = dh_last
    return carry


def _dh(dh_seq, t, carry, out):
    """dL/dh_t: the output's own gradient at step t (a sequence output) plus the one
    carried back from step t+1."""
    if dh_seq is None:
        return carry
    np.add(dh_seq[t], carry, out=out)
    return out


class RNNCell:
    """h_t = act(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh), act = tanh or relu.

    Backward, with dh_t = dL/dh_t from the output and from step t+1:
        da_t = dh_t * act'(a_t)   (tanh: 1 - h_t^2; relu: [h_t > 0])
        dh_{t-1} += da_t W_hh
    """

    gates = 1
    fold_bias = True            # b_hh joins b_ih in the input projection

    def __init__(self, nonlinearity: str = "tanh"):
        self.relu = nonlinearity == "relu"

    def forward(self, xp, w_hh, b_hh, order, buf):
        n, h = xp.shape[1:]
        tmp = buf("tmp", (n, h))
        for t, prev in _steps(order):
            a = xp[t]                                        # (N, H): becomes h_t
            if prev is not None:
                np.matmul(xp[prev], w_hh.T, out=tmp)         # h_{t-1} W_hh^T
                a += tmp
            if self.relu:
                np.maximum(a, 0, out=a)
            else:
                np.tanh(a, out=a)
        return {"h": xp}

    def backward(self, dh_seq, dh_last, cache, w_hh, order, buf):
        h = cache["h"]                                       # (T, N, H)
        dz = buf("dz", h.shape)
        if self.relu:
            np.greater(h, 0, out=dz)                         # act'(a) = [h > 0]
        else:
            np.multiply(h, h, out=dz)
            np.subtract(1, dz, out=dz)                       # act'(a) = 1 - h^2
        carry = _carry(dh_last, h.shape[1:], buf)
        dh_buf = buf("dh", h.shape[1:])
        for t, prev in reversed(_steps(order)):
            dz[t] *= _dh(dh_seq, t, carry, dh_buf)            # da_t = dh_t act'(a_t)
            if prev is not None:
                np.matmul(dz[t], w_hh, out=carry)            # dh_{t-1} = da_t W_hh
        return dz, dz


class LSTMCell:
    """Gates (i, f, g, o), PyTorch's order, from z = x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh:
        i = s(z_i)   f = s(z_f)   g = tanh(z_g)   o = s(z_o)        (s: the sigmoid)
        c_t = f c_{t-1} + i g          h_t = o tanh(c_t)

    Backward, with dh_t from the output and step t+1, dc_t from step t+1:
        dc_t += dh_t o (1 - tanh^2 c_t)
        dz_i = dc_t g i (1 - i)       dz_f = dc_t c_{t-1} f (1 - f)
        dz_g = dc_t i (1 - g^2)       dz_o = dh_t tanh(c_t) o (1 - o)
        dc_{t-1} = dc_t f             dh_{t-1} = dz W_hh
    """

    gates = 4
    fold_bias = True

    @np.errstate(over="ignore")                      # e^-z = inf is the sigmoid's 0
    def forward(self, xp, w_hh, b_hh, order, buf):
        n, g4 = xp.shape[1:]
        h = g4 // 4
        shape = xp.shape[:2] + (h,)
        c, tc, hs = buf("c", shape), buf("tanh_c", shape), buf("h", shape)
        tmp, ig = buf("tmp", (n, g4)), buf("ig", (n, h))
        for t, prev in _steps(order):
            z = xp[t]                                        # (N, 4H): becomes the gates
            if prev is not None:
                np.matmul(hs[prev], w_hh.T, out=tmp)
                z += tmp
            sigmoid_(z[:, :2 * h])                           # i, f
            np.tanh(z[:, 2 * h:3 * h], out=z[:, 2 * h:3 * h])  # g
            sigmoid_(z[:, 3 * h:])                           # o
            i, f, g, o = z[:, :h], z[:, h:2 * h], z[:, 2 * h:3 * h], z[:, 3 * h:]
            if prev is None:                                 # c_0 = 0
                np.multiply(i, g, out=c[t])
            else:
                np.multiply(f, c[prev], out=c[t])
                np.multiply(i, g, out=ig)
                c[t] += ig                                   # c_t = f c_{t-1} + i g
            np.tanh(c[t], out=tc[t])
            np.multiply(o, tc[t], out=hs[t])                 # h_t = o tanh(c_t)
        return {"gates": xp, "c": c, "tanh_c": tc, "h": hs}

    def backward(self, dh_seq, dh_last, cache, w_hh, order, buf):
        s, c, tc = cache["gates"], cache["c"], cache["tanh_c"]   # (T,N,4H), (T,N,H) x2
        h = c.shape[2]
        g = s[..., 2 * h:3 * h]
        # the local derivatives of every step at once: s(1 - s) for i, f, o, 1 - g^2 for g
        dz = buf("dz", s.shape)
        np.subtract(1, s, out=dz)
        dz *= s
        np.multiply(g, g, out=dz[..., 2 * h:3 * h])
        np.subtract(1, dz[..., 2 * h:3 * h], out=dz[..., 2 * h:3 * h])
        a = buf("o_dtanh", c.shape)                          # o (1 - tanh^2 c): dh -> dc
        np.multiply(tc, tc, out=a)
        np.subtract(1, a, out=a)
        a *= s[..., 3 * h:]
        n = c.shape[1]
        carry = _carry(dh_last, (n, h), buf)
        dc = buf("dc", (n, h))
        dc.fill(0)
        # "dh_o", not forward's "tmp" (N, 4H): one name, one shape, or each step reallocates
        dh_buf, tmp, dgate = buf("dh", (n, h)), buf("dh_o", (n, h)), buf("dgate", (n, 4 * h))
        for t, prev in reversed(_steps(order)):
            dh = _dh(dh_seq, t, carry, dh_buf)
            np.multiply(dh, a[t], out=tmp)
            dc += tmp                                        # dc_t += dh o (1 - tanh^2 c)
            st = s[t]
            np.multiply(dc, st[:, 2 * h:3 * h], out=dgate[:, :h])             # di = dc g
            if prev is None:
                dgate[:, h:2 * h] = 0                                          # c_0 = 0
            else:
                np.multiply(dc, c[prev], out=dgate[:, h:2 * h])                # df = dc c_{t-1}
            np.multiply(dc, st[:, :h], out=dgate[:, 2 * h:3 * h])             # dg = dc i
            np.multiply(dh, tc[t], out=dgate[:, 3 * h:])                       # do = dh tanh c
            dz[t] *= dgate                                   # through the gates' derivatives
            if prev is not None:
                dc *= st[:, h:2 * h]                         # dc_{t-1} = dc_t f
                np.matmul(dz[t], w_hh, out=carry)            # dh_{t-1} = dz W_hh
        return dz, dz


class GRUCell:
    """Gates (r, z, n), PyTorch's order, the reset gate inside the recurrent product:
        r = s(x W_ir^T + b_ir + h W_hr^T + b_hr)      z = s(x W_iz^T + b_iz + h W_hz^T + b_hz)
        n = tanh(x W_in^T + b_in + r * (h W_hn^T + b_hn))
        h_t = (1 - z) n + z h_{t-1}

    Backward, with dh_t from the output and step t+1, and gh_n = h_{t-1} W_hn^T + b_hn:
        da_n = dh_t (1 - z) (1 - n^2)         (the pre-activation of n)
        da_r = da_n gh_n r (1 - r)            da_z = dh_t (h_{t-1} - n) z (1 - z)
        dzx = (da_r, da_z, da_n)              dzh = (da_r, da_z, da_n r)
        dh_{t-1} = dh_t z + dzh W_hh
    """

    gates = 3
    fold_bias = False           # b_hn sits inside r * (...): it cannot join b_in

    @np.errstate(over="ignore")                      # e^-z = inf is the sigmoid's 0
    def forward(self, xp, w_hh, b_hh, order, buf):
        n, g3 = xp.shape[1:]
        h = g3 // 3
        shape = xp.shape[:2] + (h,)
        hs, ghn = buf("h", shape), buf("gh_n", shape)
        tmp, rg = buf("tmp", (n, g3)), buf("rg", (n, h))
        for t, prev in _steps(order):
            x = xp[t]                                        # (N, 3H): becomes r, z, n
            if prev is None:                                 # h_0 = 0: h W_hh^T = 0
                tmp[...] = 0 if b_hh is None else b_hh
            else:
                np.matmul(hs[prev], w_hh.T, out=tmp)         # (N, 3H)
                if b_hh is not None:
                    tmp += b_hh
            x[:, :2 * h] += tmp[:, :2 * h]
            sigmoid_(x[:, :2 * h])                           # r, z
            r, z, nt = x[:, :h], x[:, h:2 * h], x[:, 2 * h:]
            ghn[t] = tmp[:, 2 * h:]
            np.multiply(r, ghn[t], out=rg)
            nt += rg
            np.tanh(nt, out=nt)                              # n
            if prev is None:                                 # h_1 = (1 - z) n
                np.multiply(z, nt, out=rg)
                np.subtract(nt, rg, out=hs[t])
            else:                                            # h_t = n + z (h_{t-1} - n)
                np.subtract(hs[prev], nt, out=rg)
                rg *= z
                np.add(nt, rg, out=hs[t])
        return {"gates": xp, "gh_n": ghn, "h": hs}

    def backward(self, dh_seq, dh_last, cache, w_hh, order, buf):
        s, ghn, hs = cache["gates"], cache["gh_n"], cache["h"]
        h = hs.shape[2]
        r, z, nt = s[..., :h], s[..., h:2 * h], s[..., 2 * h:]
        # every step at once: s(1 - s) for r and z, (1 - z)(1 - n^2) for n, and h_{t-1} - n
        dzx = buf("dzx", s.shape)
        np.subtract(1, s, out=dzx)
        dzx[..., :2 * h] *= s[..., :2 * h]
        dn = dzx[..., 2 * h:]
        np.multiply(nt, nt, out=dn)
        np.subtract(1, dn, out=dn)
        omz = buf("one_minus_z", hs.shape)
        np.subtract(1, z, out=omz)
        dn *= omz
        hm = buf("h_prev_minus_n", hs.shape)
        steps = _steps(order)
        for t, prev in steps:
            if prev is None:
                np.negative(nt[t], out=hm[t])
            else:
                np.subtract(hs[prev], nt[t], out=hm[t])
        dzh = buf("dzh", s.shape)
        n = hs.shape[1]
        carry = _carry(dh_last, (n, h), buf)
        dh_buf = buf("dh", (n, h))
        for t, prev in reversed(steps):
            dh = _dh(dh_seq, t, carry, dh_buf)
            u = dzx[t]
            u[:, 2 * h:] *= dh                               # da_n
            u[:, :h] *= u[:, 2 * h:]
            u[:, :h] *= ghn[t]                               # da_r
            u[:, h:2 * h] *= dh
            u[:, h:2 * h] *= hm[t]                           # da_z
            dzh[t, :, :2 * h] = u[:, :2 * h]
            np.multiply(u[:, 2 * h:], r[t], out=dzh[t, :, 2 * h:])   # da_n r
            if prev is not None:
                carry_direct = np.multiply(dh, z[t], out=buf("dh_z", (n, h)))
                np.matmul(dzh[t], w_hh, out=carry)
                carry += carry_direct                        # dh_{t-1} = dh z + dzh W_hh
        return dzx, dzh


CELLS = {"RNN": RNNCell, "LSTM": LSTMCell, "GRU": GRUCell}
