"""Conv2d: 2-D cross-correlation over (N, C, H, W) images, as torch.nn.Conv2d.

Written as one GEMM per pass over an im2col matrix, built as im2col.py explains (shifted
rows at stride 1, strided copies otherwise), so the forward, dW and dcols are each one
large GEMM and the row order (c, i, j) is torch's weight layout.

Scratch buffers (padded input, columns, the GEMMs' outputs, the zero-tailed delta) are
kept per layer and reused while the batch shape stays the same, so a training step
allocates only what it returns: a fresh 20 MB array every step costs its page faults
every step (large allocations go back to the OS when freed). In eval mode large batches
run in chunks, so inference memory is bounded.
"""
from __future__ import annotations

import math

import numpy as np

from ..errors import ConfigError, positive_int
from .catalog import Arch, Arg, register_layer, width, with_bias
from .im2col import Shifted, outputs_view, shift_copy
from .image import as_pair, check_image_shape, image_input_error, padding_arg
from .init import as_generator, get_initializer, weight_dtype
from .module import Module
from .parameter import Parameter
from .scratch import EvalScratch, equal_chunks
from .threads import over_batch

# inference chunks: at most this many bytes of im2col columns and GEMM output at a time
_EVAL_COLS_BYTES = 32 << 20


def _conv_params(s):
    o, c = width(s, "out_channels"), width(s, "in_channels")
    kh, kw = as_pair("kernel_size", s.get("kernel_size"))
    return with_bias(s, {"weight": (o, c, kh, kw)}, o)


def _conv_onnx(g, m, x):
    top, bottom, left, right = m.pads()
    return g.node("Conv", [x, *g.params("weight", "bias")], kernel_shape=list(m.kernel_size),
                  strides=list(m.stride), pads=[top, left, bottom, right])


def _conv_keras(k, m, shape):
    """ZeroPadding2D with bareprop's exact pads ("same" with an even kernel), then Conv2D."""
    top, bottom, left, right = m.pads()
    pad = [k.layers.ZeroPadding2D(((top, bottom), (left, right)))] if any(m.pads()) else []
    return pad + [k.layers.Conv2D(m.out_channels, m.kernel_size, strides=m.stride,
                                  padding="valid", use_bias=m.bias is not None)]


@register_layer(
    arch=Arch("conv", Arg("out_channels", "int"), Arg("kernel_size", "pair"),
              Arg("stride", "pair", 1), Arg("padding", "padding", 0), Arg("bias", "bool", True),
              Arg("init", "word", None), aliases=("conv2d",),
              sizes=lambda shape: {"in_channels": check_image_shape("Conv2d", None, shape)[0]}),
    params=_conv_params, onnx=_conv_onnx, keras=_conv_keras,
    # padding "same"/"valid" or a pair, read by torch alike ("same" with an even kernel
    # puts the extra pixel at the bottom/right on both sides)
    torch=lambda t, m: t.nn.Conv2d(m.in_channels, m.out_channels, m.kernel_size,
                                   stride=m.stride, padding=m.padding, bias=m.bias is not None))
class Conv2d(Module):
    """2-D convolution (cross-correlation, as every framework computes it):

        y[n, o, p, q] = b[o] + sum_{c, i, j} W[o, c, i, j] x_pad[n, c, s_h p + i, s_w q + j]

    Shape: x (N, C, H, W) -> y (N, O, OH, OW), OH = (H + pad_top + pad_bottom - kh) // s_h + 1
    (and likewise OW); W (O, C, kh, kw) and b (O,) as ``torch.nn.Conv2d``.

    As a matrix product over the im2col matrix X_col (C kh kw, N OH OW), with
    W_m = W.reshape(O, C kh kw) and dY the delta in (O, N OH OW) layout:
        forward  Y = W_m X_col + b
        dW_m = dY X_col^T       db = sum over (n, p, q) of dY       dX_col = W_m^T dY
    and dx = col2im(dX_col): every column entry adds back into the input pixel it was
    copied from (the adjoint of the copy). Derivation: docs/backprop.md.

    padding: an int, a pair, or "same" (stride 1 only; output size = input size, with the
    extra pixel of an even kernel at the bottom/right, as PyTorch) or "valid" (= 0).
    init: a name from ``bareprop.core.init`` with fan_in = C kh kw, fan_out = O kh kw
    (default "torch": U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weight and bias, PyTorch's own);
    None draws nothing (weights at zero: to be loaded from a file, or shapes alone).

    >>> import numpy as np, bareprop as bp
    >>> conv = bp.Conv2d(1, 8, 3, padding="same", rng=0)
    >>> conv(np.zeros((2, 1, 28, 28), np.float32)).shape
    (2, 8, 28, 28)
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0,
                 bias: bool = True, init="torch", rng=None, dtype=np.float32):
        self.in_channels = positive_int("in_channels", in_channels)
        self.out_channels = positive_int("out_channels", out_channels)
        self.kernel_size = as_pair("kernel_size", kernel_size)
        self.stride = as_pair("stride", stride)
        self.padding = padding_arg(padding, self.stride)
        self.init = init
        if init is not None:
            get_initializer(init)
        dtype = weight_dtype(dtype)
        kh, kw = self.kernel_size
        self.weight = Parameter(np.zeros((self.out_channels, self.in_channels, kh, kw), dtype))
        self.bias = Parameter(np.zeros(self.out_channels, dtype)) if bias else None
        self._ws: dict[str, np.ndarray] = {}
        self._eval_ws = EvalScratch()             # eval mode's, lent to one thread at a time
        self._cache = self._delta_of = None   # (dout, its delta in the columns' layout)
        if init is not None:          # None: the weights come from a file, or only shapes
            self.reset_parameters(as_generator(rng))

    # -- construction -------------------------------------------------------------
    def reset_parameters(self, rng: np.random.Generator) -> None:
        dtype = self.weight.data.dtype
        kh, kw = self.kernel_size
        fan_in, fan_out = self.in_channels * kh * kw, self.out_channels * kh * kw
        shape = self.weight.shape
        w = get_initializer(self.init)(shape, fan_in, fan_out, rng)
        self.weight.replace(np.ascontiguousarray(np.reshape(w, shape), dtype=dtype))
        if self.bias is not None:
            if self.init == "torch":
                bound = 1.0 / math.sqrt(fan_in)
                self.bias.replace(rng.uniform(-bound, bound, self.out_channels).astype(dtype))
            else:
                self.bias.replace(np.zeros(self.out_channels, dtype))

    def pads(self) -> tuple[int, int, int, int]:
        """(top, bottom, left, right) zero padding."""
        if self.padding == "valid":
            return 0, 0, 0, 0
        if self.padding == "same":
            (kh, kw) = self.kernel_size
            return (kh - 1) // 2, kh // 2, (kw - 1) // 2, kw // 2
        ph, pw = self.padding
        return ph, ph, pw, pw

    def geometry(self, in_shape) -> tuple[int, int, int, int, int]:
        """(C, Hp, Wp, OH, OW) for one example of ``in_shape``: channels, padded size, output
        size; ConfigError naming the layer when the input cannot work."""
        c, h, w = check_image_shape(self.short_name(), self.in_channels, in_shape)
        pt, pb, pl, pr = self.pads()
        (kh, kw), (sh, sw) = self.kernel_size, self.stride
        hp, wp = h + pt + pb, w + pl + pr
        if hp < kh or wp < kw:
            raise ConfigError(f"{self.short_name()}: the {kh}x{kw} kernel is larger than its "
                              f"padded input {hp}x{wp} (input {h}x{w}); use a smaller kernel, "
                              f"padding, or fewer pooling layers before it")
        return c, hp, wp, (hp - kh) // sh + 1, (wp - kw) // sw + 1

    def positions(self, in_shape) -> int:
        """Output positions the columns hold per example: OH*Wp for stride 1 (the
        shifted rows' garbage columns included), else OH*OW."""
        _, _, wp, oh, ow = self.geometry(in_shape)
        return oh * wp if self.stride == (1, 1) else oh * ow

    #: its output is a new array nobody else keeps: a ReLU after it may work in place
    fresh_output = True

    def scratch(self, in_shape) -> dict[str, int]:
        """Values of each scratch array one training example costs this layer, all kept
        between steps: the padded input, the im2col columns (the stride-1 layout's bound)
        and their gradient, the GEMM output and the delta in its layout, the per-example
        dW. For the model-file checks (each array) and memory estimates (their sum)."""
        c, hp, wp, _, _ = self.geometry(in_shape)
        q, k = self.positions(in_shape), c * self.kernel_size[0] * self.kernel_size[1]
        o = self.out_channels
        return {"padded input": c * hp * wp, "im2col columns": k * q,
                "column gradient": k * q, "GEMM output": o * q, "delta": o * q,
                "per-example dW": o * k}

    def output_shape(self, in_shape):
        _, _, _, oh, ow = self.geometry(in_shape)
        return (self.out_channels, oh, ow)

    def short_name(self):
        k = self.kernel_size
        k = k[0] if k[0] == k[1] else k
        return f"Conv2d({self.in_channels}, {self.out_channels}, {k})"

    # -- scratch ------------------------------------------------------------------
    def _buffer(self, name: str, shape: tuple[int, ...], dtype) -> np.ndarray:
        """A zero-filled scratch array kept across calls of the same shape (callers write only
        what varies: borders stay zero); in eval mode, kept only while lent (scratch.py)."""
        ws = self._ws if self.training else self._eval_ws.arrays()
        if ws is None:
            return np.zeros(shape, dtype)
        buf = ws.get(name)
        if buf is None or buf.shape != shape or buf.dtype != dtype:
            buf = ws[name] = np.zeros(shape, dtype)
        return buf

    def _padded(self, x: np.ndarray) -> np.ndarray:
        pt, pb, pl, pr = self.pads()
        if not (pt or pb or pl or pr):
            return x
        n, c, h, w = x.shape
        xp = self._buffer("xp", (n, c, h + pt + pb, w + pl + pr), x.dtype)
        xp[:, :, pt:pt + h, pl:pl + w] = x               # borders stay zero
        return xp

    # -- forward ------------------------------------------------------------------
    def forward(self, x):
        x = self.prepare(x)
        if not (self.training or self.keep_for_backward):
            return self.forward_chunked(x, lambda part: self._forward(part)[0])
        y, self._cache = self._forward(x)
        return y

    def prepare(self, x):
        """A forward's start: x checked (one-line errors) and in the weights' dtype; the
        last backward's state dropped."""
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(image_input_error(self.short_name(), self.in_channels, x.shape))
        self.output_shape(x.shape[1:])                   # kernel vs input size, one line
        w = self.weight.data
        if x.dtype != w.dtype:
            x = x.astype(w.dtype)
        self._delta_of = None
        if not (self.training or self.keep_for_backward):
            self._cache = None
        return x

    def forward_chunked(self, x, run):
        """Eval mode: ``run(part)`` on batch chunks with bounded column memory, the
        outputs concatenated; the scratch kept (EvalScratch) while this thread has it."""
        kh, kw = self.kernel_size         # columns and GEMM output: both scale with it
        per_example = (self.in_channels * kh * kw + self.out_channels) * \
            self.positions(x.shape[1:])
        step = max(1, _EVAL_COLS_BYTES // (per_example * x.dtype.itemsize))
        with self._eval_ws.lent():
            ys = [run(x[lo:hi])[first:] for lo, hi, first in equal_chunks(x.shape[0], step)]
        return ys[0] if len(ys) == 1 else np.concatenate(ys)

    def _batch_major(self, k: int) -> bool:
        """Lay the columns out per example, (N, CKK, q), and run one small GEMM per
        example (numpy's stacked matmul), rather than one (CKK, N*q) GEMM: for a short
        reduction (CKK = 9 for a 3x3 kernel on one channel) the big GEMM is memory-bound
        and its (O, N, ...) output costs a transpose; per example the output lands in
        (N, O, ...) order. Per example won for the first layer of the benchmark CNN
        (CKK = 9), the single GEMM for its second (CKK = 288): docs/benchmarks.md."""
        return self.stride == (1, 1) and k < 64

    def _forward(self, x):
        full, batch, ow, cache = self._gemm(x)
        yv = outputs_view(full, batch, ow)
        n, o, oh, ow = yv.shape
        y = np.empty((n, o, oh, ow), x.dtype)                               # (N, O, OH, OW)
        b = self.bias

        def emit(s):                     # drop the garbage columns, transpose, add the bias
            if b is not None:
                np.add(yv[s], b.data[:, None, None], out=y[s])
            else:
                np.copyto(y[s], yv[s])
        over_batch(emit, n, y.size)
        return y, cache

    def shifted(self, xp) -> Shifted:
        """The stride-1 GEMM's operands and buffers for the padded batch ``xp``."""
        kh, kw = self.kernel_size
        wm = self.weight.data.reshape(self.out_channels, -1)               # (O, CKK)
        buffer = lambda name, shape: self._buffer(name, shape, xp.dtype)   # noqa: E731
        return Shifted(xp, wm, (kh, kw), buffer, self._batch_major(wm.shape[1]))

    @staticmethod
    def cache_of(x, g: Shifted):
        """The backward's cache after the stride-1 forward ``g`` of ``x``."""
        return (x.shape, g.cols, g.planes.shape[2] // g.wp, g.wp, g.oh, g.ow, g.batch)

    def _gemm(self, x):
        """The convolution without its bias: (full, batch, OW, the backward's cache).
        ``full``: the GEMM's C-ordered output buffer, (N, O, OH, W) when ``batch`` else
        (O, N, OH, W), W >= OW; outputs_view(full, batch, OW) is y without the bias.
        Fused epilogues (fast/conv.py) read it row by row; _forward adds the bias."""
        n = x.shape[0]
        xp = self._padded(x)
        _, c, hp, wp = xp.shape
        (kh, kw), (sh, sw) = self.kernel_size, self.stride
        oh, ow = (hp - kh) // sh + 1, (wp - kw) // sw + 1
        k, o = c * kh * kw, self.out_channels
        wm = self.weight.data.reshape(o, k)                                 # (O, CKK)
        if (sh, sw) == (1, 1):
            # shifted rows: columns of tap (i, j) = flat planes shifted by i*wp + j
            g = self.shifted(xp)
            over_batch(g.columns, n, g.cols.size)
            if g.batch:
                g.product(slice(0, n))
            else:
                g.gemm_rows()
            return g.output(), g.batch, ow, self.cache_of(x, g)
        cols = self._buffer("cols", (c, kh, kw, n, oh, ow), x.dtype)
        xt = xp.transpose(1, 0, 2, 3)                                        # (C, N, Hp, Wp)

        def im2col(s):
            for i in range(kh):
                for j in range(kw):
                    cols[:, i, j, s] = xt[:, s, i:i + sh * oh:sh, j:j + sw * ow:sw]
        over_batch(im2col, n, cols.size)
        full = np.matmul(wm, cols.reshape(k, -1),
                         out=self._buffer("full", (o, n * oh * ow), x.dtype))
        return full.reshape(o, n, oh, ow), False, ow, (x.shape, cols, hp, wp, oh, ow, False)

    # -- backward -----------------------------------------------------------------
    def delta_buffer(self, dtype):
        """(d, batch): the delta's scratch buffer for the last forward, laid out as
        _gemm's ``full`` and zero in the columns from OW on. Fill outputs_view(d, batch,
        OW) with dL/dy and hand d to keep_delta (or let _delta do both)."""
        shape, cols, hp, wp, oh, ow, batch = self._cache
        n, o = shape[0], self.out_channels
        if batch:
            return self._buffer("delta", (n, o, oh, wp), dtype), True   # [..., ow:] stay 0
        if self.stride == (1, 1):
            return self._buffer("delta", (o, n, oh, wp), dtype), False
        return np.empty((o, n, oh, ow), dtype), False

    def keep_delta(self, dout, d) -> None:
        """Use ``d`` (delta_buffer's, filled by a fused epilogue) as dout's delta."""
        n, o = self._cache[0][0], self.out_channels
        self._delta_of = (dout, d.reshape(n, o, -1) if self._cache[-1] else d.reshape(o, -1))

    def _delta_for(self, dout):
        kept = self._delta_of
        return kept[1] if kept is not None and kept[0] is dout else self._delta(dout)

    def _delta(self, dout):
        """dout (N, O, OH, OW) in the columns' layout (see delta_buffer): (N, O, q)
        batch-major, else (O, N*positions)."""
        d, batch = self.delta_buffer(dout.dtype)
        dv = outputs_view(d, batch, self._cache[5])

        def copy(s):
            dv[s] = dout[s]
        over_batch(copy, dout.shape[0], dout.size)
        n, o = dout.shape[:2]
        return d.reshape(n, o, -1) if batch else d.reshape(o, -1)

    def accumulate_grads(self, dout):
        if self._cache is None:
            raise RuntimeError(f"{self.short_name()}: backward needs a forward in training mode")
        cols = self._cache[1]
        d = self._delta_for(dout)
        self._delta_of = (dout, d)                              # input_grad reuses it
        if d.ndim == 3:                                         # batch-major (N, O, q)
            n, o, q = d.shape
            per = self._buffer("dw", (n, o, cols[0].size // q), d.dtype)        # (N, O, CKK)
            dw = np.matmul(d, cols.reshape(n, -1, q).transpose(0, 2, 1), out=per).sum(axis=0)
            db = d.sum(axis=(0, 2))
        else:                                                   # (O, N*positions)
            dw = d @ cols.reshape(-1, d.shape[1]).T
            db = d.sum(axis=1)
        self.weight.accumulate(dw.reshape(self.weight.shape))   # (O, C, kh, kw)
        if self.bias is not None:
            self.bias.accumulate(db)                            # (O,); garbage columns are 0

    def input_grad(self, dout):
        if self._cache is None:
            raise RuntimeError(f"{self.short_name()}: backward needs a forward in training mode")
        shape, cols, hp, wp, oh, ow, _ = self._cache
        n, c, h, w = shape
        (kh, kw), (sh, sw) = self.kernel_size, self.stride
        d = self._delta_for(dout)
        self._delta_of = None
        k = c * kh * kw
        wmt = self.weight.data.reshape(-1, k).T                # (CKK, O)
        pt, _, pl, _ = self.pads()
        if d.ndim == 3:                                         # batch-major
            dcols = np.matmul(wmt, d, out=self._buffer("dcols", (n, k, d.shape[2]), d.dtype))
            dcols = dcols.reshape(n, c, kh, kw, -1)                         # (N, C, kh, kw, q)
            dxp = np.zeros((n, c, hp * wp), dout.dtype)
            p = (oh - 1) * wp + ow
            over_batch(lambda s: shift_copy(dcols[s], dxp[s], wp, p, add=True), n, dcols.size)
            return dxp.reshape(n, c, hp, wp)[:, :, pt:pt + h, pl:pl + w]
        dcols = np.matmul(wmt, d, out=self._buffer("dcols", (k, d.shape[1]), d.dtype))
        dxp = np.zeros((c, n, hp, wp), dout.dtype)             # (C, N, Hp, Wp)
        if (sh, sw) == (1, 1):
            p = (oh - 1) * wp + ow
            flat = dxp.reshape(c, n, hp * wp).transpose(1, 0, 2)           # (N, C, Hp*Wp)
            dc = dcols.reshape(c, kh, kw, n, oh * wp).transpose(3, 0, 1, 2, 4)

            def col2im(s):
                shift_copy(dc[s], flat[s], wp, p, add=True)
        else:
            dc = dcols.reshape(c, kh, kw, n, oh, ow)

            def col2im(s):
                for i in range(kh):
                    for j in range(kw):
                        dxp[:, s, i:i + sh * oh:sh, j:j + sw * ow:sw] += dc[:, i, j, s]
        over_batch(col2im, n, dcols.size)
        return dxp.transpose(1, 0, 2, 3)[:, :, pt:pt + h, pl:pl + w]   # (N, C, H, W) view

    # -- description --------------------------------------------------------------
    def spec(self):
        pad = self.padding if isinstance(self.padding, str) else list(self.padding)
        return {"in_channels": self.in_channels, "out_channels": self.out_channels,
                "kernel_size": list(self.kernel_size), "stride": list(self.stride),
                "padding": pad, "bias": self.bias is not None}

    def extra_repr(self):
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding!r}, "
                f"bias={self.bias is not None}, init={self.init!r}")
