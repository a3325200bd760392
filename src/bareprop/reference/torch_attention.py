"""The PyTorch twins of bareprop's attention, transformer and token layers (the catalog's
``torch`` declarations reach them as ``t.attention(layer)``: reference/torch_twin.py).

The attention and transformer twins *are* torch.nn.MultiheadAttention and
torch.nn.TransformerEncoderLayer(batch_first=True) (subclasses, so their parameters keep
PyTorch's own names and bareprop's state_dict loads into them strictly): their forward
takes the one input bareprop's layer takes and calls PyTorch's own forward with x as
query, key and value (and the causal mask when asked). PatchEmbed's twin is a Conv2d
with stride = kernel, flattened to tokens. The classes are made on first use, since
torch is optional.

Dropout masks: with ``replay_masks`` the encoder's three Dropout modules are replaced by
modules replaying the masks bareprop drew (as for a top-level Dropout); the mask on the
attention weights is drawn inside PyTorch's attention function, which cannot replay one,
so a twin replaying a dropout > 0 computes its attention with the formula PyTorch's
``need_weights=True`` path writes (softmax(q k^T / sqrt d + mask), dropped, times v),
proven equal to PyTorch's own forward without dropout (tests/reference/test_attention_twins.py).

Not here: the weights (copied by torch_twin.torch_module), other layers' twins.
"""
from __future__ import annotations

import functools
import math
from types import SimpleNamespace

from .. import core


def _torch():
    """torch, or the one-line ConfigError torch_twin gives (not imported from there:
    torch_twin reaches this module, and imports flow one way)."""
    try:
        import torch
    except ImportError as exc:  # pragma: no cover - exercised without torch only
        from ..errors import ConfigError

        raise ConfigError("PyTorch is not installed; install it with: pip install "
                          "'bareprop[torch]'") from exc
    return torch


@functools.cache
def classes() -> SimpleNamespace:
    """The twin classes (torch imported on first use)."""
    torch = _torch()
    nn, F = torch.nn, torch.nn.functional

    def causal_mask(t: int):
        """(T, T) booleans, True above the diagonal: where token i may not look (j > i)."""
        return torch.triu(torch.ones(t, t, dtype=torch.bool), diagonal=1)

    class MultiheadAttention(nn.MultiheadAttention):
        """torch.nn.MultiheadAttention(E, h, dropout, bias, batch_first=True); called with
        one tensor x: ``super().forward(x, x, x, need_weights=False, attn_mask=causal)[0]``;
        called as PyTorch's encoder layer calls its self_attn: PyTorch's forward.
        ``replay``: the bareprop Dropout whose attention-weight masks to replay."""

        def __init__(self, embed_dim, num_heads, dropout=0.0, bias=True, causal=False,
                     replay=None):
            super().__init__(embed_dim, num_heads, dropout=dropout, bias=bias,
                             batch_first=True)
            self.causal, self.replay = causal, replay

        def forward(self, query, key=None, value=None, key_padding_mask=None,
                    need_weights=False, attn_mask=None, average_attn_weights=True,
                    is_causal=False):
            alone = key is None
            if alone and self.causal:
                attn_mask, is_causal = causal_mask(query.shape[1]), True
            if self.replay is not None and self.training and self.dropout > 0:
                out = (self.replayed(query, attn_mask), None)
            else:
                out = super().forward(query, query if alone else key, query if alone else value,
                                      key_padding_mask=key_padding_mask,
                                      need_weights=need_weights, attn_mask=attn_mask,
                                      average_attn_weights=average_attn_weights,
                                      is_causal=is_causal)
            return out[0] if alone else out

        def replayed(self, x, attn_mask):
            """PyTorch's need_weights path, with bareprop's mask on the attention weights."""
            n, t, e = x.shape
            h = self.num_heads
            d = e // h
            qkv = F.linear(x, self.in_proj_weight, self.in_proj_bias)
            q, k, v = qkv.view(n, t, 3, h, d).permute(2, 0, 3, 1, 4)          # (N, h, T, d)
            s = (q * math.sqrt(1.0 / d)) @ k.transpose(-2, -1)                  # (N, h, T, T)
            if attn_mask is not None:
                s = s.masked_fill(attn_mask, float("-inf")) if attn_mask.dtype == torch.bool \
                    else s + attn_mask
            p = torch.softmax(s, dim=-1)
            if self.replay.mask is not None:
                p = p * torch.from_numpy(self.replay.mask)
            o = (p @ v).transpose(1, 2).reshape(n, t, e)
            return self.out_proj(o)

    class TransformerEncoderLayer(nn.TransformerEncoderLayer):
        """torch.nn.TransformerEncoderLayer(..., batch_first=True) on one input x (with the
        causal mask when asked), its self_attn the MultiheadAttention twin above."""

        def __init__(self, *args, causal=False, **kwargs):
            super().__init__(*args, batch_first=True, **kwargs)
            self.causal = causal

        def forward(self, x):
            if self.causal:
                return super().forward(x, src_mask=causal_mask(x.shape[1]), is_causal=True)
            return super().forward(x)

    class PatchEmbed(nn.Conv2d):
        """Conv2d(C, E, p, stride=p), then (N, E, H/p, W/p) -> (N, T, E)."""

        def forward(self, x):
            return super().forward(x).flatten(2).transpose(1, 2)

    class PositionalEmbedding(nn.Module):
        """x + weight, weight (T, E)."""

        def __init__(self, num_tokens, embed_dim):
            super().__init__()
            self.weight = nn.Parameter(torch.zeros(num_tokens, embed_dim))

        def forward(self, x):
            return x + self.weight

    class ClassToken(nn.Module):
        """cat([weight as (N, 1, E), x]) along the tokens, weight (E,)."""

        def __init__(self, embed_dim):
            super().__init__()
            self.weight = nn.Parameter(torch.zeros(embed_dim))

        def forward(self, x):
            return torch.cat([self.weight.expand(x.shape[0], 1, -1), x], dim=1)

    class TokenMeanPool(nn.Module):
        def forward(self, x):
            return x.mean(dim=1)

    class FirstToken(nn.Module):
        def forward(self, x):
            return x[:, 0]

    return SimpleNamespace(
        MultiheadAttention=MultiheadAttention, TransformerEncoderLayer=TransformerEncoderLayer,
        PatchEmbed=PatchEmbed, PositionalEmbedding=PositionalEmbedding, ClassToken=ClassToken,
        TokenMeanPool=TokenMeanPool, FirstToken=FirstToken, causal_mask=causal_mask)


def _attention(m, replay: bool):
    c = classes()
    return c.MultiheadAttention(m.embed_dim, m.num_heads, dropout=m.dropout.p,
                                bias=m.in_proj_bias is not None, causal=m.causal,
                                replay=m.dropout if replay else None)


def _encoder(t, m):
    """PyTorch's encoder layer, its self_attn our twin (causal: the mask comes from the
    layer), its dropouts replaying bareprop's masks when ``t`` replays masks."""
    s = m.spec()
    twin = classes().TransformerEncoderLayer(
        s["d_model"], s["nhead"], s["dim_feedforward"], s["dropout"], s["activation"],
        s["layer_norm_eps"], norm_first=s["norm_first"], causal=s["causal"])
    attn = _attention(m.self_attn, t.replay_masks)
    attn.causal = False                   # the encoder layer passes its own mask
    twin.self_attn = attn
    for name in ("dropout", "dropout1", "dropout2"):
        replay = t.replay(getattr(m, name))
        if replay is not None:
            setattr(twin, name, replay)
    return twin


def twin(t, layer):
    """The torch module computing bareprop ``layer``, weights not copied yet."""
    c = classes()
    if isinstance(layer, core.MultiheadAttention):
        return _attention(layer, t.replay_masks)
    if isinstance(layer, core.TransformerEncoderLayer):
        return _encoder(t, layer)
    if isinstance(layer, core.PatchEmbed):
        p = layer.patch_size
        return c.PatchEmbed(layer.in_channels, layer.embed_dim, p, stride=p,
                            bias=layer.bias is not None)
    if isinstance(layer, core.PositionalEmbedding):
        return c.PositionalEmbedding(layer.num_tokens, layer.embed_dim)
    if isinstance(layer, core.ClassToken):
        return c.ClassToken(layer.embed_dim)
    if isinstance(layer, core.TokenMeanPool):
        return c.TokenMeanPool()
    if isinstance(layer, core.FirstToken):
        return c.FirstToken()
    raise TypeError(f"no PyTorch twin for {type(layer).__name__} here")


def __getattr__(name):          # the classes by name: torch_attention.MultiheadAttention
    if not name.startswith("_") and name in vars(classes()):
        return getattr(classes(), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["classes", "twin"]
