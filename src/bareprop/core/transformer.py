"""TransformerEncoderLayer: self-attention and a feed-forward network, each inside a
residual connection with a layer norm, as torch.nn.TransformerEncoderLayer(batch_first=True).

Built from child modules (MultiheadAttention, Linear, LayerNorm, Dropout, ReLU/GELU) that
run their own forward and backward; this class only wires them and adds the residual
gradients. Not here: the maths of attention (attention.py) or of the layer norm
(layernorm.py).
"""
from __future__ import annotations

import numpy as np

from ..errors import ConfigError, positive_int
from . import catalog
from .activations import GELU, ReLU
from .attention import (ChildGraph, MultiheadAttention, check_tokens, dropout_p, flag,
                        matmul_onnx, mha_onnx, token_shape)
from .catalog import Arch, Arg, register_layer, width
from .dropout import Dropout
from .init import as_generator
from .layernorm import LayerNorm, layernorm_onnx
from .layernorm import layer_norm_eps as check_eps
from .linear import Linear
from .module import OnePassBackward

ACTIVATIONS = ("relu", "gelu")


def _encoder_params(s) -> dict:
    d, ff = width(s, "d_model"), width(s, "dim_feedforward", 2048)
    width(s, "nhead", 1)
    attn = {"in_proj_weight": (3 * d, d), "in_proj_bias": (3 * d,),
            "out_proj.weight": (d, d), "out_proj.bias": (d,)}
    return {**{f"self_attn.{k}": v for k, v in attn.items()},
            "linear1.weight": (ff, d), "linear1.bias": (ff,),
            "linear2.weight": (d, ff), "linear2.bias": (d,),
            "norm1.weight": (d,), "norm1.bias": (d,), "norm2.weight": (d,), "norm2.bias": (d,)}


def _encoder_onnx(g, m, x):
    """The same wiring in ONNX nodes, each child through its own declaration."""
    def sa(t):
        return mha_onnx(ChildGraph(g, "self_attn"), m.self_attn, t)

    def ff(t):
        z = matmul_onnx(g, t, "linear1")
        z = catalog.info(m.activation).onnx(ChildGraph(g, "activation"), m.activation, z)
        return matmul_onnx(g, z, "linear2")

    def norm(name, t):
        return layernorm_onnx(ChildGraph(g, name), getattr(m, name), t)

    if m.norm_first:
        h = g.node("Add", [x, sa(norm("norm1", x))], name="res1")
        return g.node("Add", [h, ff(norm("norm2", h))], name="res2")
    h = norm("norm1", g.node("Add", [x, sa(x)], name="res1"))
    return norm("norm2", g.node("Add", [h, ff(h)], name="res2"))


@register_layer(
    arch=Arch("transformer", Arg("heads", "int", 1, param="nhead"),
              Arg("ff", "int", 2048, param="dim_feedforward"), Arg("dropout", "number", 0.1),
              Arg("activation", "word", "relu"), Arg("norm_first", "bool", False),
              Arg("eps", "number", 1e-5, param="layer_norm_eps"), Arg("causal", "bool", False),
              # heads defaults to 1 here; the constructor, like torch's, requires it
              sizes=lambda shape: {"d_model": token_shape("TransformerEncoderLayer", shape)[1],
                                   "nhead": 1}),
    params=_encoder_params, onnx=_encoder_onnx,
    torch=lambda t, m: t.attention(m))
class TransformerEncoderLayer(OnePassBackward):
    """One transformer encoder block (Vaswani et al. 2017), as
    torch.nn.TransformerEncoderLayer(..., batch_first=True):

        post-norm (norm_first=False):  h = norm1(x + SA(x));  y = norm2(h + FF(h))
        pre-norm  (norm_first=True):   h = x + SA(norm1(x));  y = h + FF(norm2(h))
        SA(x) = dropout1(self_attn(x))      (self_attn drops attention weights too)
        FF(x) = dropout2(linear2(dropout(activation(linear1(x)))))

    Backward: each child's own backward, and where a residual joins two paths their
    gradients add: for y = h + F(h), dh = dy + J_F^T dy. Pre-norm:
        dh = dy + norm2'(FF'(dy));   dx = dh + norm1'(SA'(dh))
    post-norm:
        dr = norm2'(dy);  dh = dr + FF'(dr);   dr1 = norm1'(dh);  dx = dr1 + SA'(dr1)
    (f' is the vector-Jacobian product of child f: docs/backprop.md, "Attention".)

    Shape: x (N, T, d_model) -> y (N, T, d_model). Parameters in torch's names and order
    (``self_attn.in_proj_weight`` ... ``linear1.*``, ``linear2.*``, ``norm1.*``,
    ``norm2.*``): ``state_dict()`` loads into torch's layer strictly. activation: "relu"
    or "gelu" (exact, erf). causal: each token attends to itself and the ones before it.
    Initialisation as torch's (the children's own); ``init`` and ``rng`` go to them.

    >>> import numpy as np, bareprop as bp
    >>> block = bp.TransformerEncoderLayer(16, 4, dim_feedforward=32, dropout=0.0, rng=0)
    >>> block(np.zeros((2, 5, 16), np.float32)).shape
    (2, 5, 16)
    """

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int = 2048,
                 dropout: float = 0.1, activation: str = "relu", layer_norm_eps: float = 1e-5,
                 norm_first: bool = False, causal: bool = False, init="torch", rng=None,
                 dtype=np.float32):
        d = self.d_model = positive_int("d_model", d_model)
        ff = positive_int("dim_feedforward", dim_feedforward)
        if activation not in ACTIVATIONS:
            raise ConfigError(f"TransformerEncoderLayer activation must be 'relu' or 'gelu', "
                              f"got {activation!r}")
        # checked before any child allocates (a model file may hold anything here)
        check_eps(layer_norm_eps, "TransformerEncoderLayer's layer_norm_eps")
        dropout = dropout_p("TransformerEncoderLayer", dropout)
        causal = flag("TransformerEncoderLayer", "causal", causal)
        self.norm_first = flag("TransformerEncoderLayer", "norm_first", norm_first)
        self.init = init
        rng = as_generator(rng)
        # attribute order is torch's, so parameters (and state_dict keys) come out in its order
        self.self_attn = MultiheadAttention(d, nhead, causal=causal, dropout=dropout,
                                            init=init, rng=rng, dtype=dtype)
        self.linear1 = Linear(d, ff, init=init, rng=rng, dtype=dtype)
        self.dropout = Dropout(dropout, rng=rng)
        self.linear2 = Linear(ff, d, init=init, rng=rng, dtype=dtype)
        self.norm1 = LayerNorm(d, eps=layer_norm_eps, dtype=dtype)
        self.norm2 = LayerNorm(d, eps=layer_norm_eps, dtype=dtype)
        self.dropout1 = Dropout(dropout, rng=rng)
        self.dropout2 = Dropout(dropout, rng=rng)
        # linear1's output is fresh and kept by nobody: ReLU may overwrite it
        self.activation = ReLU(inplace=True) if activation == "relu" else GELU()
        self._kept = None

    # -- forward ------------------------------------------------------------------
    def _sa(self, x):
        return self.dropout1.forward(self.self_attn.forward(x))

    def _ff(self, h):
        n, t, d = h.shape
        z = self.linear1.forward(h.reshape(n * t, d))                     # (N*T, F)
        a = self.activation.forward(z.reshape(n, t, -1))                  # (N, T, F)
        a = self.dropout.forward(a)
        f = self.linear2.forward(a.reshape(n * t, -1)).reshape(n, t, d)   # (N, T, d)
        return self.dropout2.forward(f)

    def forward(self, x):
        x = check_tokens(self.short_name(), x, self.d_model, self.norm1.weight.dtype)
        self._kept = None
        if self.norm_first:
            h = x + self._sa(self.norm1.forward(x))                        # (N, T, d)
            return h + self._ff(self.norm2.forward(h))
        h = self.norm1.forward(x + self._sa(x))
        return self.norm2.forward(h + self._ff(h))

    # -- backward -----------------------------------------------------------------
    @staticmethod
    def _back(child, d, grads: bool):
        """The vector-Jacobian product of one child (filling its grads when asked)."""
        if grads and child.has_parameters():
            child.accumulate_grads(d)
        return child.input_grad(d)

    def _sa_back(self, d, grads):
        return self._back(self.self_attn, self.dropout1.input_grad(d), grads)

    def _ff_back(self, d, grads):
        n, t, e = d.shape
        d = self.dropout2.input_grad(d).reshape(n * t, e)
        da = self._back(self.linear2, d, grads).reshape(n, t, -1)          # (N, T, F)
        dz = self.activation.input_grad(self.dropout.input_grad(da))
        return self._back(self.linear1, dz.reshape(n * t, -1), grads).reshape(n, t, e)

    def _backprop(self, dy, grads: bool):
        back = self._back
        if self.norm_first:
            dh = dy + back(self.norm2, self._ff_back(dy, grads), grads)        # (N, T, d)
            return dh + back(self.norm1, self._sa_back(dh, grads), grads)
        dr = back(self.norm2, dy, grads)                                     # d(h + FF(h))
        dh = dr + self._ff_back(dr, grads)
        dr = back(self.norm1, dh, grads)                                     # d(x + SA(x))
        return dr + self._sa_back(dr, grads)

    # -- shapes and description ---------------------------------------------------
    def output_shape(self, in_shape):
        return self.self_attn.output_shape(in_shape)

    def scratch(self, in_shape) -> dict[str, int]:
        """Values one training example needs at the peak of a step (none of it shows in
        the block's (T, d_model) output, which is all the memory estimate sees otherwise):
        the attention's (MultiheadAttention.scratch); the feed-forward's hidden layer as
        its activation keeps it (ReLU: its output; GELU: input, Phi and output), with
        dropout its mask and the dropped copy, and in backward the hidden gradients (of
        linear2's input, through the dropout, the activation's derivative, of linear1's
        output); the layer norms' normalised inputs and the residual sums."""
        t, d = token_shape(self.short_name(), in_shape)
        ff, drop = self.linear1.out_features, self.dropout.p > 0
        gelu = isinstance(self.activation, GELU)
        inner = {f"self_attn {k}": v for k, v in self.self_attn.scratch(in_shape).items()}
        return {**inner, "feed-forward hidden": (3 if gelu else 1) * t * ff,
                "feed-forward dropout": 2 * t * ff if drop else 0,
                "feed-forward gradients": (3 + drop) * t * ff,
                "residual dropouts": 2 * t * d if drop else 0,
                "layer norms and residuals": 4 * t * d}

    def short_name(self):
        return f"TransformerEncoderLayer({self.d_model}, {self.self_attn.num_heads})"

    def spec(self):
        return {"d_model": self.d_model, "nhead": self.self_attn.num_heads,
                "dim_feedforward": self.linear1.out_features, "dropout": self.dropout.p,
                "activation": "relu" if isinstance(self.activation, ReLU) else "gelu",
                "layer_norm_eps": self.norm1.eps, "norm_first": self.norm_first,
                "causal": self.self_attn.causal}

    def extra_repr(self):
        s = self.spec()
        return ", ".join(f"{k}={v!r}" for k, v in s.items())
