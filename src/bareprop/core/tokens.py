"""The layers a vision transformer needs around its encoder blocks: images to tokens
(PatchEmbed), a learned position per token (PositionalEmbedding), a learned class token
(ClassToken), and tokens back to one vector (TokenMeanPool, FirstToken).

Tokens are (N, T, E): T tokens of E features, one example (T, E) in shapes. Not here:
attention (attention.py), the encoder block (transformer.py).
"""
from __future__ import annotations

import math

import numpy as np

from ..errors import ConfigError, positive_int
from .attention import check_tokens, token_shape
from .catalog import Arch, Arg, register_layer, width, with_bias
from .image import check_image_shape, image_input_error
from .init import as_generator, get_initializer, weight_dtype
from .linear import ones
from .module import Module
from .parameter import Parameter

#: the standard deviation of the learned embeddings under init="torch" (torch has no
#: default for a bare parameter; torchvision's VisionTransformer draws N(0, 0.02^2))
EMBED_STD = 0.02


def _embedding(init, shape, fan: int, rng, dtype) -> np.ndarray:
    """A learned embedding: N(0, EMBED_STD^2) under "torch", else ``init``'s draw (fan_in =
    fan_out = the embedding width)."""
    if init == "torch":
        return rng.normal(0.0, EMBED_STD, size=shape).astype(dtype)
    return np.asarray(get_initializer(init)(shape, fan, fan, rng), dtype=dtype)


def _patch_params(s):
    c, e, p = width(s, "in_channels"), width(s, "embed_dim", 64), width(s, "patch_size", 7)
    return with_bias(s, {"weight": (e, c, p, p)}, e)


def _patch_onnx(g, m, x):
    """Conv with stride = kernel = patch, then (N, E, gh, gw) -> (N, gh*gw, E)."""
    p = m.patch_size
    y = g.node("Conv", [x, *g.params("weight", "bias")], kernel_shape=[p, p], strides=[p, p])
    y = g.node("Reshape", [y, g.const("flat", np.array([0, 0, -1], np.int64))], name="flat")
    return g.node("Transpose", [y], name="tokens", perm=[0, 2, 1])


@register_layer(
    arch=Arch("patches", Arg("patch", "int", 7, param="patch_size"),
              Arg("dim", "int", 64, param="embed_dim"), Arg("bias", "bool", True),
              sizes=lambda shape: {"in_channels": check_image_shape("PatchEmbed", None, shape)[0]}),
    params=_patch_params, onnx=_patch_onnx,
    torch=lambda t, m: t.attention(m))
class PatchEmbed(Module):
    """Images to tokens: each p x p patch (non-overlapping, row by row) times one matrix,
    i.e. torch.nn.Conv2d(C, E, p, stride=p) followed by (N, E, H/p, W/p) -> (N, T, E):

        X_col[n, (a, b), (c, i, j)] = x[n, c, a p + i, b p + j]     the patches, (N*T, C p p)
        y = X_col W_m^T + b,   W_m = W.reshape(E, C p p)            (N, T, E), T = (H/p)(W/p)
    Backward:  dW_m = dy^T X_col,  db = sum dy,  dX_col = dy W_m, and dx is dX_col put back
    where each patch came from (patches do not overlap: a reshape, no sum).

    Parameters ``weight`` (E, C, p, p) and ``bias`` (E,) as torch's Conv2d, with its
    default init (U(-1/sqrt(C p p), 1/sqrt(C p p)) for both) under ``init="torch"``. The
    image's sides must be multiples of p.

    >>> import numpy as np, bareprop as bp
    >>> bp.PatchEmbed(1, 64, 7, rng=0)(np.zeros((2, 1, 28, 28), np.float32)).shape
    (2, 16, 64)
    """

    def __init__(self, in_channels: int, embed_dim: int = 64, patch_size: int = 7,
                 bias: bool = True, init="torch", rng=None, dtype=np.float32):
        self.in_channels = positive_int("in_channels", in_channels)
        self.embed_dim = positive_int("embed_dim", embed_dim)
        self.patch_size = positive_int("patch_size", patch_size)
        self.init = init
        if init is not None:
            get_initializer(init)
        dtype, p = weight_dtype(dtype), self.patch_size
        self.weight = Parameter(np.zeros((self.embed_dim, self.in_channels, p, p), dtype))
        self.bias = Parameter(np.zeros(self.embed_dim, dtype)) if bias else None
        self._cols = None
        if init is not None:
            self.reset_parameters(as_generator(rng))

    def reset_parameters(self, rng: np.random.Generator) -> None:
        """As Conv2d.reset_parameters: fan_in = C p p, fan_out = E p p."""
        dtype, p = self.weight.dtype, self.patch_size
        fan_in, fan_out = self.in_channels * p * p, self.embed_dim * p * p
        w = get_initializer(self.init)(self.weight.shape, fan_in, fan_out, rng)
        self.weight.replace(np.ascontiguousarray(np.reshape(w, self.weight.shape), dtype=dtype))
        if self.bias is not None:
            bound = 1.0 / math.sqrt(fan_in) if self.init == "torch" else 0.0
            self.bias.replace(rng.uniform(-bound, bound, self.embed_dim).astype(dtype)
                              if bound else np.zeros(self.embed_dim, dtype))

    #: its output is a new array nobody else keeps
    fresh_output = True

    def forward(self, x):
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(image_input_error(self.short_name(), self.in_channels, x.shape))
        self.output_shape(x.shape[1:])
        w = self.weight.data
        x = x if x.dtype == w.dtype else x.astype(w.dtype)
        n, c, h, wd = x.shape
        p, e = self.patch_size, self.embed_dim
        gh, gw = h // p, wd // p
        cols = x.reshape(n, c, gh, p, gw, p).transpose(0, 2, 4, 1, 3, 5)   # (N, gh, gw, C, p, p)
        cols = cols.reshape(n * gh * gw, c * p * p)                        # (N*T, C p p), a copy
        y = cols @ w.reshape(e, -1).T                                      # (N*T, E)
        if self.bias is not None:
            y += self.bias.data
        self._cols, self._shape = cols, x.shape
        return y.reshape(n, gh * gw, e)

    def accumulate_grads(self, dout):
        d = dout.reshape(-1, self.embed_dim)                               # (N*T, E)
        self.weight.accumulate((d.T @ self._cols).reshape(self.weight.shape))
        if self.bias is not None:
            self.bias.accumulate(ones(len(d), d.dtype) @ d)                # (E,)

    def input_grad(self, dout):
        n, c, h, wd = self._shape
        p, e = self.patch_size, self.embed_dim
        dcols = dout.reshape(-1, e) @ self.weight.data.reshape(e, -1)      # (N*T, C p p)
        dcols = dcols.reshape(n, h // p, wd // p, c, p, p).transpose(0, 3, 1, 4, 2, 5)
        return dcols.reshape(n, c, h, wd)                                  # (N, C, H, W)

    def output_shape(self, in_shape):
        c, h, w = check_image_shape(self.short_name(), self.in_channels, in_shape)
        p = self.patch_size
        if h % p or w % p:
            fits = [q for q in range(1, min(h, w) + 1) if h % q == 0 and w % q == 0]
            raise ConfigError(f"{self.short_name()}: {h}x{w} images do not split into "
                              f"{p}x{p} patches; patch sizes that fit: "
                              f"{', '.join(map(str, fits))}")
        return ((h // p) * (w // p), self.embed_dim)

    def short_name(self):
        return f"PatchEmbed({self.in_channels}, {self.embed_dim}, patch={self.patch_size})"

    def spec(self):
        return {"in_channels": self.in_channels, "embed_dim": self.embed_dim,
                "patch_size": self.patch_size, "bias": self.bias is not None}

    def extra_repr(self):
        return (f"{self.in_channels}, {self.embed_dim}, patch_size={self.patch_size}, "
                f"bias={self.bias is not None}, init={self.init!r}")


class _Learned(Module):
    """What PositionalEmbedding and ClassToken share: one learned array ``weight``."""

    def __init__(self, shape, init, rng, dtype):
        self.init = init
        if init is not None:
            get_initializer(init)
        self.weight = Parameter(np.zeros(shape, weight_dtype(dtype)))
        if init is not None:
            self.reset_parameters(as_generator(rng))

    def reset_parameters(self, rng: np.random.Generator) -> None:
        """N(0, 0.02^2) under ``init="torch"`` (torchvision's ViT), else ``init``'s draw."""
        w = self.weight
        w.replace(_embedding(self.init, w.shape, w.shape[-1], rng, w.dtype))

    def _tokens(self, x):
        return check_tokens(self.short_name(), x, self.embed_dim, self.weight.dtype)


def _token_sizes(layer):
    return lambda shape: dict(zip(("num_tokens", "embed_dim"), token_shape(layer, shape)))


@register_layer(
    arch=Arch("posembed", sizes=_token_sizes("PositionalEmbedding")),
    params=lambda s: {"weight": (width(s, "num_tokens"), width(s, "embed_dim"))},
    onnx=lambda g, m, x: g.node("Add", [x, *g.params("weight")]),
    torch=lambda t, m: t.attention(m))
class PositionalEmbedding(_Learned):
    """A learned position embedding: y[n, t] = x[n, t] + P[t];  dx = dout,
    dP = sum over n of dout.

    Shape: x (N, T, E) -> y (N, T, E); ``weight`` P (T, E), N(0, 0.02^2) under
    ``init="torch"``. Its token count is fixed: put it after ClassToken to give the class
    token a position too.

    >>> import numpy as np, bareprop as bp
    >>> bp.PositionalEmbedding(16, 64, rng=0)(np.zeros((2, 16, 64), np.float32)).shape
    (2, 16, 64)
    """

    def __init__(self, num_tokens: int, embed_dim: int, init="torch", rng=None,
                 dtype=np.float32):
        self.num_tokens = positive_int("num_tokens", num_tokens)
        self.embed_dim = positive_int("embed_dim", embed_dim)
        super().__init__((self.num_tokens, self.embed_dim), init, rng, dtype)

    def forward(self, x):
        x = self._tokens(x)
        if x.shape[1] != self.num_tokens:
            raise ValueError(f"{self.short_name()} expects sequences of shape (N, "
                             f"{self.num_tokens}, {self.embed_dim}), got {x.shape}")
        return x + self.weight.data                                        # (N, T, E)

    def accumulate_grads(self, dout):
        n = dout.shape[0]
        self.weight.accumulate((ones(n, dout.dtype) @ dout.reshape(n, -1)).reshape(
            self.weight.shape))                                            # (T, E)

    def input_grad(self, dout):
        return dout

    def output_shape(self, in_shape):
        shape = token_shape(self.short_name(), in_shape)
        if shape != (self.num_tokens, self.embed_dim):
            raise ConfigError(f"{self.short_name()} holds {self.num_tokens} positions of width "
                              f"{self.embed_dim}, but its input has shape {shape}")
        return shape

    def short_name(self):
        return f"PositionalEmbedding({self.num_tokens}, {self.embed_dim})"

    def spec(self):
        return {"num_tokens": self.num_tokens, "embed_dim": self.embed_dim}


def _cls_onnx(g, m, x):
    """Concat([the token expanded to (N, 1, E), x]) along the tokens."""
    n = g.node("Shape", [x], name="n", start=0, end=1)
    shape = g.node("Concat", [n, g.const("rest", np.array([1, m.embed_dim], np.int64))],
                   name="shape", axis=0)
    token = g.node("Reshape", [*g.params("weight"),
                               g.const("one_token", np.array([1, 1, m.embed_dim], np.int64))],
                   name="token")
    return g.node("Concat", [g.node("Expand", [token, shape], name="tokens"), x], axis=1)


@register_layer(
    arch=Arch("clstoken", sizes=lambda shape: {"embed_dim": token_shape("ClassToken", shape)[1]}),
    params=lambda s: {"weight": (width(s, "embed_dim"),)}, onnx=_cls_onnx,
    torch=lambda t, m: t.attention(m))
class ClassToken(_Learned):
    """A learned class token put before the sequence (BERT's [CLS], ViT's class token):
    y[n, 0] = c, y[n, 1:] = x[n];  dc = sum over n of dout[n, 0], dx = dout[:, 1:].

    Shape: x (N, T, E) -> y (N, T + 1, E); ``weight`` c (E,), N(0, 0.02^2) under
    ``init="torch"``. FirstToken reads it back out after the encoder blocks.
    """

    def __init__(self, embed_dim: int, init="torch", rng=None, dtype=np.float32):
        self.embed_dim = positive_int("embed_dim", embed_dim)
        super().__init__((self.embed_dim,), init, rng, dtype)

    def forward(self, x):
        x = self._tokens(x)
        n, t, e = x.shape
        y = np.empty((n, t + 1, e), x.dtype)                               # (N, T+1, E)
        y[:, 0] = self.weight.data
        y[:, 1:] = x
        return y

    def accumulate_grads(self, dout):
        self.weight.accumulate(ones(len(dout), dout.dtype) @ dout[:, 0])   # (E,)

    def input_grad(self, dout):
        return np.ascontiguousarray(dout[:, 1:])                           # (N, T, E)

    def output_shape(self, in_shape):
        t, e = token_shape(self.short_name(), in_shape)
        if e != self.embed_dim:
            raise ConfigError(f"{self.short_name()} takes tokens of width {self.embed_dim}, "
                              f"but its input has shape {(t, e)}")
        return (t + 1, e)

    def short_name(self):
        return f"ClassToken({self.embed_dim})"

    def spec(self):
        return {"embed_dim": self.embed_dim}


def _mean_onnx(g, m, x):
    if g.opset >= 18:                  # axes became an input in opset 18
        return g.node("ReduceMean", [x, g.const("axes", np.array([1], np.int64))], keepdims=0)
    return g.node("ReduceMean", [x], axes=[1], keepdims=0)


@register_layer(arch=Arch("meanpool"), onnx=_mean_onnx,
                torch=lambda t, m: t.attention(m))
class TokenMeanPool(Module):
    """The mean over the tokens: y[n] = (1/T) sum_t x[n, t];  dx[n, t] = dout[n] / T.

    Shape: x (N, T, E) -> y (N, E).
    """

    def forward(self, x):
        if x.ndim != 3:
            raise ValueError(f"TokenMeanPool expects sequences of shape (N, T, E), got {x.shape}")
        self._shape = x.shape
        return x.mean(axis=1)                                              # (N, E)

    def input_grad(self, dout):
        n, t, e = self._shape
        return np.repeat(dout[:, None, :] / dout.dtype.type(t), t, axis=1)  # (N, T, E)

    def output_shape(self, in_shape):
        return (token_shape("TokenMeanPool", in_shape)[1],)


@register_layer(
    arch=Arch("firsttoken"),
    onnx=lambda g, m, x: g.node("Gather", [x, g.const("first", np.array(0, np.int64))],
                                axis=1),
    torch=lambda t, m: t.attention(m))
class FirstToken(Module):
    """Token 0 of each sequence (the class token ClassToken put there): y[n] = x[n, 0];
    dx[n, 0] = dout[n], dx[n, t > 0] = 0.

    Shape: x (N, T, E) -> y (N, E).
    """

    def forward(self, x):
        if x.ndim != 3:
            raise ValueError(f"FirstToken expects sequences of shape (N, T, E), got {x.shape}")
        self._shape, self._dtype = x.shape, x.dtype
        return x[:, 0].copy()                                              # (N, E)

    def input_grad(self, dout):
        dx = np.zeros(self._shape, dout.dtype)                            # (N, T, E)
        dx[:, 0] = dout
        return dx

    def output_shape(self, in_shape):
        return (token_shape("FirstToken", in_shape)[1],)
