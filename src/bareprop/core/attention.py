"""MultiheadAttention: scaled dot-product self-attention over a sequence of tokens, as
torch.nn.MultiheadAttention(batch_first=True) called with the same x as query, key and
value. And what the other token layers share: the (T, E) shape check and the builder
a composite layer's ONNX declaration hands its children.

Not here: the transformer block around it (transformer.py), the vision transformer's
token layers (tokens.py).
"""
from __future__ import annotations

import math
import numbers

import numpy as np

from ..errors import ConfigError, positive_int
from .catalog import Arch, Arg, register_layer, width
from .dropout import Dropout
from .init import as_generator, get_initializer, weight_dtype
from .linear import Linear, ones
from .module import OnePassBackward
from .parameter import Parameter


def token_shape(layer: str, shape) -> tuple[int, int]:
    """(T, E) from one example's shape, or ConfigError naming the layer and the fix."""
    shape = tuple(shape)
    if len(shape) != 2:
        hint = (" (an image: turn it into tokens first, e.g. patches(7,64))" if len(shape) == 3
                else " (flat features: token layers need (T, E))" if len(shape) == 1 else "")
        raise ConfigError(f"{layer} takes a sequence of tokens (T, E), but its input has "
                          f"shape {shape}{hint}")
    return shape


def dropout_p(layer: str, value) -> float:
    """A dropout probability: a number in [0, 1) (not a bool or a string, which a model
    file may hold), or a one-line ConfigError naming ``layer``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 <= value < 1:
        raise ConfigError(f"{layer}: dropout must be a number in [0, 1), got {value!r}")
    return float(value)


def flag(layer: str, key: str, value) -> bool:
    """A switch that changes the computation without changing the weights (causal,
    norm_first): True or False only, so a model file's "false" is refused, not read as
    true; a one-line ConfigError naming ``layer`` otherwise."""
    if not isinstance(value, (bool, np.bool_)):
        raise ConfigError(f"{layer}: {key} must be True or False, got {value!r}")
    return bool(value)


def check_tokens(layer: str, x: np.ndarray, features: int | None, dtype) -> np.ndarray:
    """x as (N, T, E) in ``dtype``, or ValueError naming the layer and the shape wanted
    (T >= 1: a softmax over no tokens has no value)."""
    if x.ndim != 3 or (features is not None and x.shape[2] != features):
        raise ValueError(f"{layer} expects sequences of shape (N, T, {features or 'E'}), got "
                         f"{x.shape}")
    if x.shape[1] == 0:
        raise ValueError(f"{layer} expects at least one token (T >= 1), got {x.shape}")
    return x if x.dtype == dtype else x.astype(dtype)


class ChildGraph:
    """The ONNX builder of a child layer inside a composite one: ``params("weight")`` reads
    ``<prefix>.weight`` of the parent's state dict; nodes and constants are named likewise.
    Lets a composite declaration reuse its children's declarations."""

    def __init__(self, g, prefix: str):
        self._g, self._prefix, self.opset = g, prefix, g.opset

    def params(self, *names):
        return self._g.params(*(f"{self._prefix}.{n}" for n in names))

    def node(self, op, inputs, name=None, **attrs):
        return self._g.node(op, inputs, f"{self._prefix}_{name or op.lower()}", **attrs)

    def const(self, name, value):
        return self._g.const(f"{self._prefix}.{name}", value)


def matmul_onnx(g, x, prefix: str = ""):
    """y = x W^T + b on (N, T, in): MatMul with the transposed weight (Gemm takes 2-D only)."""
    c = ChildGraph(g, prefix) if prefix else g
    w_t = c.node("Transpose", c.params("weight"), name="wt", perm=[1, 0])
    y = c.node("MatMul", [x, w_t])
    bias = c.params("bias")
    return c.node("Add", [y, *bias], name="b") if bias else y


def _mha_params(s) -> dict:
    e = width(s, "embed_dim")
    width(s, "num_heads", 1)                # a size like any other a model file holds
    bias = s.get("bias", True)
    return {"in_proj_weight": (3 * e, e), **({"in_proj_bias": (3 * e,)} if bias else {}),
            "out_proj.weight": (e, e), **({"out_proj.bias": (e,)} if bias else {})}


def mha_onnx(g, m, x):
    """qkv = x W_in^T + b_in, split into heads (3, N, h, T, d); P = Softmax(q k^T / sqrt d)
    (-inf above the diagonal when causal); heads merged; out_proj."""
    e, h, d = m.embed_dim, m.num_heads, m.head_dim
    w_t = g.node("Transpose", g.params("in_proj_weight"), name="in_wt", perm=[1, 0])
    qkv = g.node("MatMul", [x, w_t], name="qkv")
    if m.in_proj_bias is not None:
        qkv = g.node("Add", [qkv, *g.params("in_proj_bias")], name="qkv_b")
    split = g.node("Reshape", [qkv, g.const("qkv_shape", np.array([0, 0, 3, h, d], np.int64))],
                   name="split")
    heads = g.node("Transpose", [split], name="heads", perm=[2, 0, 3, 1, 4])  # (3, N, h, T, d)
    q, k, v = (g.node("Gather", [heads, g.const(f"i{i}", np.array(i, np.int64))], name=n,
                      axis=0) for i, n in enumerate("qkv"))
    k_t = g.node("Transpose", [k], name="kt", perm=[0, 1, 3, 2])
    s = g.node("Mul", [g.node("MatMul", [q, k_t], name="qk"),
                       g.const("scale", np.float32(1 / math.sqrt(d)))], name="scores")
    if m.causal:        # keep j <= i: ones of the scores' shape, their lower triangle
        full = g.node("Expand", [g.const("one", np.ones((1, 1), np.float32)),
                                 g.node("Shape", [s], name="shape")], name="ones")
        keep = g.node("Cast", [g.node("Trilu", [full], name="lower", upper=0)], name="keep",
                      to=9)                                                    # BOOL
        s = g.node("Where", [keep, s, g.const("neg_inf", np.float32(-np.inf))], name="masked")
    p = g.node("Softmax", [s], name="softmax", axis=-1)
    o = g.node("Transpose", [g.node("MatMul", [p, v], name="pv")], name="merge", perm=[0, 2, 1, 3])
    o = g.node("Reshape", [o, g.const("merged", np.array([0, 0, e], np.int64))], name="merged")
    return matmul_onnx(g, o, "out_proj")


def softmax_rows(s: np.ndarray) -> np.ndarray:
    """softmax over the last axis, in place: s - max(s) first, so every exponent is <= 0
    and scores of 1e4 in float32 neither overflow nor give inf / inf = NaN; entries of -inf
    (masked) become exact zeros."""
    s -= s.max(axis=-1, keepdims=True)
    np.exp(s, out=s)
    s /= s.sum(axis=-1, keepdims=True)
    return s


@register_layer(
    arch=Arch("mha", Arg("heads", "int", 1, param="num_heads"), Arg("causal", "bool", False),
              Arg("dropout", "number", 0.0), Arg("bias", "bool", True),
              # heads defaults to 1 here; the constructor, like torch's, requires it
              sizes=lambda shape: {"embed_dim": token_shape("MultiheadAttention", shape)[1],
                                   "num_heads": 1}),
    params=_mha_params, onnx=mha_onnx,
    torch=lambda t, m: t.attention(m))
class MultiheadAttention(OnePassBackward):
    """Multi-head self-attention (Vaswani et al. 2017), as
    ``torch.nn.MultiheadAttention(E, h, bias=bias, batch_first=True)(x, x, x,
    need_weights=False)[0]`` (with a causal mask when ``causal``):

        [q k v] = x W_in^T + b_in                       (N, T, 3E), split into h heads of d = E/h
        S = q k^T / sqrt(d)                             (N, h, T, T); causal: S_ij = -inf for j > i
        P = softmax(S) over j                           ``attention_weights``, kept for the report
        O = dropout(P) v, heads merged back             (N, T, E)
        y = O W_out^T + b_out                           ``out_proj``, a child Linear

    Backward (docs/backprop.md, "Attention"), per head, with dP = dO v^T through the mask:
        dv = P^T dO,   dS = P * (dP - rowsum(dP * P))   (the softmax's Jacobian; 0 where masked)
        dq = dS k / sqrt(d),   dk = dS^T q / sqrt(d)
        dW_in = d[q k v]^T x,   db_in = sum d[q k v],   dx = d[q k v] W_in
    Every head's products are one batched np.matmul over (N, h, T, d) arrays.

    Parameters in torch's names and order: ``in_proj_weight`` (3E, E), ``in_proj_bias``
    (3E,), ``out_proj.weight`` (E, E), ``out_proj.bias`` (E,), so ``state_dict()`` loads
    into torch.nn.MultiheadAttention strictly, and back. ``dropout`` drops attention
    weights in training, as torch's. Initialisation ``init="torch"`` as torch's:
    xavier-uniform in_proj_weight, Linear's default out_proj.weight, zero biases (another
    name from core.init: that initialiser for both weights, zero biases; None: nothing
    drawn).

    >>> import numpy as np, bareprop as bp
    >>> attn = bp.MultiheadAttention(8, 2, rng=0)
    >>> attn(np.zeros((3, 5, 8), np.float32)).shape, attn.attention_weights.shape
    ((3, 5, 8), (3, 2, 5, 5))
    """

    def __init__(self, embed_dim: int, num_heads: int, bias: bool = True, causal: bool = False,
                 dropout: float = 0.0, init="torch", rng=None, dtype=np.float32):
        self.embed_dim = positive_int("embed_dim", embed_dim)
        self.num_heads = positive_int("num_heads", num_heads)
        if self.embed_dim % self.num_heads:
            fits = [h for h in range(1, min(self.embed_dim, 16) + 1) if self.embed_dim % h == 0]
            raise ConfigError(f"MultiheadAttention: embed_dim {self.embed_dim} is not divisible "
                              f"by num_heads {self.num_heads}; heads that divide it: "
                              f"{', '.join(map(str, fits))}")
        self.head_dim = self.embed_dim // self.num_heads
        dropout = dropout_p("MultiheadAttention", dropout)
        self.causal = flag("MultiheadAttention", "causal", causal)
        self.init = init
        if init is not None:
            get_initializer(init)
        dtype = weight_dtype(dtype)
        e = self.embed_dim
        rng = as_generator(rng)
        self.in_proj_weight = Parameter(np.zeros((3 * e, e), dtype))
        self.in_proj_bias = Parameter(np.zeros(3 * e, dtype)) if bias else None
        self.out_proj = Linear(e, e, bias=bias, init=None, dtype=dtype)
        self.dropout = Dropout(dropout, rng=rng)          # on the attention weights
        #: P of the last forward, (N, heads, T, T): row i is how token i spreads its
        #: attention over the tokens j (what the report and the web app draw)
        self.attention_weights: np.ndarray | None = None
        self._cache = self._kept = None
        if init is not None:
            self.reset_parameters(rng)

    def reset_parameters(self, rng: np.random.Generator) -> None:
        """in_proj_weight from xavier-uniform (fan_in E, fan_out 3E) under ``"torch"`` (else
        from ``init``), out_proj.weight as a Linear's, both biases zero (as torch's)."""
        e, dtype = self.embed_dim, self.in_proj_weight.dtype
        fn = get_initializer("xavier_uniform" if self.init == "torch" else self.init)
        self.in_proj_weight.replace(np.ascontiguousarray(fn((3 * e, e), e, 3 * e, rng),
                                                         dtype=dtype))
        self.out_proj.init = self.init
        self.out_proj.reset_parameters(rng)
        for b in (self.in_proj_bias, self.out_proj.bias):
            if b is not None:
                b.replace(np.zeros(b.shape, dtype))

    # -- forward ------------------------------------------------------------------
    def forward(self, x):
        x = check_tokens(self.short_name(), x, self.embed_dim, self.in_proj_weight.dtype)
        n, t, e = x.shape
        h, d = self.num_heads, self.head_dim
        qkv = x.reshape(n * t, e) @ self.in_proj_weight.data.T                 # (N*T, 3E)
        if self.in_proj_bias is not None:
            qkv += self.in_proj_bias.data
        heads = qkv.reshape(n, t, 3, h, d).transpose(2, 0, 3, 1, 4)           # (3, N, h, T, d) view
        q, k, v = heads
        qs = q * x.dtype.type(1 / math.sqrt(d))                               # (N, h, T, d)
        s = np.matmul(qs, k.transpose(0, 1, 3, 2))                            # (N, h, T, T)
        if self.causal and t > 1:
            np.copyto(s, -np.inf, where=np.triu(np.ones((t, t), bool), 1))
        p = softmax_rows(s)                                                   # (N, h, T, T)
        self.attention_weights = p
        pd = self.dropout.forward(p)                   # p itself without dropout
        o = np.matmul(pd, v)                                                  # (N, h, T, d)
        o = o.transpose(0, 2, 1, 3).reshape(n * t, e)                         # heads merged
        y = self.out_proj.forward(o)                                          # (N*T, E)
        self._cache, self._kept = (x, heads, qs, p, pd), None
        return y.reshape(n, t, e)

    # -- backward -----------------------------------------------------------------
    def _backprop(self, dout, grads: bool):
        """dx for ``dout`` (N, T, E); with ``grads``, every parameter's gradient too."""
        if self._cache is None:
            raise RuntimeError(f"{self.short_name()}: backward needs a forward first")
        x, (q, k, v), qs, p, pd = self._cache
        n, t, e = x.shape
        h, d = self.num_heads, self.head_dim
        dy = dout.reshape(n * t, e)
        if grads:
            self.out_proj.accumulate_grads(dy)
        do = self.out_proj.input_grad(dy).reshape(n, t, h, d).transpose(0, 2, 1, 3)  # (N, h, T, d)
        dv = np.matmul(pd.transpose(0, 1, 3, 2), do)                          # P^T dO
        dp = np.matmul(do, v.transpose(0, 1, 3, 2))                          # (N, h, T, T)
        if self.dropout.mask is not None:              # through the dropout, in place: one
            dp *= self.dropout.mask                    # (N, h, T, T) array less at the peak
        ds = dp                                        # a fresh array: reused in place
        ds -= np.einsum("...ij,...ij->...i", dp, p)[..., None]                # softmax's
        ds *= p                                                               # Jacobian
        dqkv = np.empty((n, t, 3, h, d), x.dtype)                             # (N, T, 3, h, d)
        dqkv[:, :, 0] = (np.matmul(ds, k) * x.dtype.type(1 / math.sqrt(d))).transpose(0, 2, 1, 3)
        dqkv[:, :, 1] = np.matmul(ds.transpose(0, 1, 3, 2), qs).transpose(0, 2, 1, 3)
        dqkv[:, :, 2] = dv.transpose(0, 2, 1, 3)
        dqkv = dqkv.reshape(n * t, 3 * e)                                     # (N*T, 3E)
        x2 = x.reshape(n * t, e)
        if grads:
            self.in_proj_weight.accumulate(dqkv.T @ x2)                       # (3E, E)
            if self.in_proj_bias is not None:
                self.in_proj_bias.accumulate(ones(n * t, x.dtype) @ dqkv)     # (3E,)
        return (dqkv @ self.in_proj_weight.data).reshape(n, t, e)            # (N, T, E)

    # -- shapes and description ---------------------------------------------------
    def output_shape(self, in_shape):
        t, e = token_shape(self.short_name(), in_shape)
        if e != self.embed_dim:
            raise ConfigError(f"{self.short_name()} takes tokens of width {self.embed_dim}, "
                              f"but its input has shape {tuple(in_shape)}")
        return (t, e)

    def scratch(self, in_shape) -> dict[str, int]:
        """Values one training example needs at the peak of a step: what forward keeps
        (q, k, v, the scaled q, the attention weights P, with dropout its mask and the
        dropped P, the merged heads) and what backward adds while they live (dP, then the
        gradients of the heads and of q, k, v). The h T^2 arrays dominate for long
        sequences: each counts, or the memory estimate passes runs that cannot fit."""
        t, e = token_shape(self.short_name(), in_shape)
        tt, drop = self.num_heads * t * t, self.dropout.p > 0
        return {"q, k, v": 3 * t * e, "scaled q": t * e, "attention weights": tt,
                "attention dropout": 2 * tt if drop else 0, "merged heads": t * e,
                "attention-weight gradient": tt, "head and q, k, v gradients": 5 * t * e}

    def short_name(self):
        return f"MultiheadAttention({self.embed_dim}, {self.num_heads})"

    def spec(self):
        return {"embed_dim": self.embed_dim, "num_heads": self.num_heads,
                "bias": self.in_proj_bias is not None, "causal": self.causal,
                "dropout": self.dropout.p}

    def extra_repr(self):
        return (f"{self.embed_dim}, {self.num_heads}, bias={self.in_proj_bias is not None}, "
                f"causal={self.causal}, dropout={self.dropout.p}, init={self.init!r}")
