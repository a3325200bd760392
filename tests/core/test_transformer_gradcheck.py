"""TransformerEncoderLayer: dx and every parameter gradient against float64 central
differences and against torch.nn.TransformerEncoderLayer(batch_first=True) (both
norm_first settings, ReLU and GELU, T = 1 and 5, heads 1 and 4, causal, batch 1, every
dropout on with its masks replayed), its state_dict in torch's names and order both ways,
eval mode against torch's (its fast path included), and its refusals.
Derivation: docs/backprop.md, "Attention" (residual sums)."""
import numpy as np
import pytest
import torch

import bareprop as bp
from bareprop.errors import ConfigError

from layercheck import assert_gradcheck, assert_matches_torch, rel

F64 = np.float64

#: (d_model, heads, T, batch, norm_first, activation, causal, dropout)
GRID = [(5, 1, 5, 2, False, "relu", False, 0.0),
        (5, 1, 1, 1, True, "gelu", False, 0.0),
        (8, 4, 5, 1, True, "relu", True, 0.0),
        (8, 4, 1, 2, False, "gelu", True, 0.0),
        (8, 4, 5, 2, False, "gelu", False, 0.3),
        (9, 3, 5, 2, True, "relu", True, 0.3),
        (12, 4, 4, 3, True, "gelu", False, 0.2)]


def _encoder(d, h, norm_first, activation, causal, dropout, rng):
    layer = bp.TransformerEncoderLayer(d, h, dim_feedforward=2 * d + 1, dropout=dropout,
                                       activation=activation, norm_first=norm_first,
                                       causal=causal, rng=rng, dtype=F64)
    for p in layer.parameters():          # norms and biases away from (1, 0)
        p.data[...] += rng.normal(size=p.shape) * 0.2
    return layer


@pytest.mark.parametrize("d, h, t, n, norm_first, act, causal, p", GRID)
def test_encoder_gradcheck(d, h, t, n, norm_first, act, causal, p, rng):
    layer = _encoder(d, h, norm_first, act, causal, p, rng)
    assert_gradcheck(layer, rng.normal(size=(n, t, d)), rng)


@pytest.mark.parametrize("d, h, t, n, norm_first, act, causal, p", GRID)
def test_encoder_matches_torch(d, h, t, n, norm_first, act, causal, p, rng):
    layer = _encoder(d, h, norm_first, act, causal, p, rng)
    twin = assert_matches_torch(layer, rng.normal(size=(n, t, d)), rng)
    assert isinstance(twin, torch.nn.TransformerEncoderLayer) and twin.norm_first == norm_first
    if p > 0:              # every mask was drawn, and replayed: the gradients agreed above
        masks = [layer.dropout.mask, layer.dropout1.mask, layer.dropout2.mask,
                 layer.self_attn.dropout.mask]
        assert all(m is not None and (m == 0).any() for m in masks)


@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("activation", ["relu", "gelu"])
def test_state_dict_loads_into_torchs_own_layer_both_ways(norm_first, activation, rng):
    """A plain torch.nn.TransformerEncoderLayer(..., batch_first=True): strict load, the
    same keys in the same order, the same output; and its weights load back into ours."""
    layer = _encoder(8, 2, norm_first, activation, False, 0.0, rng)
    t = torch.nn.TransformerEncoderLayer(8, 2, 17, 0.0, activation, batch_first=True,
                                         norm_first=norm_first, dtype=torch.float64)
    t.load_state_dict({k: torch.from_numpy(v) for k, v in layer.state_dict().items()},
                      strict=True)
    assert list(t.state_dict()) == list(layer.state_dict())
    assert [n for n, _ in t.named_parameters()] == [n for n, _ in layer.named_parameters()]
    x = rng.normal(size=(3, 6, 8))
    assert rel(layer(x), t(torch.from_numpy(x)).detach().numpy()) < 1e-12
    fresh = torch.nn.TransformerEncoderLayer(8, 2, 17, 0.0, activation, batch_first=True,
                                             norm_first=norm_first, dtype=torch.float64)
    back = bp.TransformerEncoderLayer(8, 2, 17, 0.0, activation, norm_first=norm_first,
                                      init=None, dtype=F64)
    back.load_state_dict({k: v.numpy() for k, v in fresh.state_dict().items()})
    assert rel(back(x), fresh(torch.from_numpy(x)).detach().numpy()) < 1e-12


@pytest.mark.parametrize("norm_first", [False, True])
def test_eval_mode_matches_torchs_eval_mode(norm_first, rng):
    """Dropout off in eval on both sides (torch may take its fused fast path here)."""
    from bareprop.reference.torch_twin import torch_module

    layer = _encoder(8, 2, norm_first, "relu", False, 0.5, rng).eval()
    x = rng.normal(size=(2, 5, 8))
    twin = torch_module(layer).eval()
    with torch.no_grad():
        assert rel(layer(x), twin(torch.from_numpy(x)).numpy()) < 1e-12


def test_init_is_the_childrens_own_and_reproducible():
    a = bp.TransformerEncoderLayer(16, 4, 32, rng=0)
    b = bp.TransformerEncoderLayer(16, 4, 32, rng=0)
    for (name, p), (_, q) in zip(a.named_parameters(), b.named_parameters()):
        np.testing.assert_array_equal(p.data, q.data, err_msg=name)
    assert np.abs(a.linear1.weight.data).max() <= 1 / 4        # Linear's U(+-1/sqrt(16))
    assert np.all(a.norm1.weight.data == 1) and not a.norm2.bias.data.any()
    assert not a.self_attn.in_proj_bias.data.any()
    blank = bp.TransformerEncoderLayer(16, 4, 32, init=None)
    assert not any(p.data[...].any() for n, p in blank.named_parameters()
                   if not n.startswith("norm"))
    assert a.linear1.weight.dtype == np.float32


def test_refusals_name_the_layer_and_the_shapes():
    with pytest.raises(ConfigError, match="activation must be 'relu' or 'gelu', got 'tanh'"):
        bp.TransformerEncoderLayer(8, 2, activation="tanh")
    with pytest.raises(ConfigError, match="embed_dim 8 is not divisible by num_heads 3"):
        bp.TransformerEncoderLayer(8, 3)
    layer = bp.TransformerEncoderLayer(8, 2, 16, rng=0)
    with pytest.raises(ConfigError, match=r"takes tokens of width 8, but its input has shape "
                                          r"\(16, 64\)"):
        layer.output_shape((16, 64))
    with pytest.raises(ValueError, match=r"TransformerEncoderLayer\(8, 2\) expects sequences "
                                         r"of shape \(N, T, 8\), got \(2, 8\)"):
        layer(np.zeros((2, 8), np.float32))
