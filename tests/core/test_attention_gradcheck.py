"""MultiheadAttention: dx and every parameter gradient against float64 central differences
and against torch.nn.MultiheadAttention (T = 1 and 5, heads 1, 3 and 4, causal on and
off, odd widths, batch 1, with and without bias, attention dropout replayed), its forward
equal to torch's own module called as the issue states, the attention weights it keeps,
the causal mask's zeros, scores of +-1e4 in float32, initialisation and refusals.
Derivation: docs/backprop.md, "Attention"."""
import math

import numpy as np
import pytest
import torch

import bareprop as bp
from bareprop.core.attention import softmax_rows
from bareprop.errors import ConfigError

from layercheck import assert_gradcheck, assert_matches_torch, rel

F64 = np.float64

#: (embed_dim, heads, T, batch, causal, bias): odd widths that divide by their heads
GRID = [(e, h, t, n, causal, bias)
        for e, h in [(5, 1), (9, 3), (12, 4)]
        for t in (1, 5) for causal in (False, True)
        for n, bias in [(1, True), (3, False)]]


def _attention(e, h, causal, bias, rng, dropout=0.0):
    layer = bp.MultiheadAttention(e, h, bias=bias, causal=causal, dropout=dropout, rng=rng,
                                  dtype=F64)
    for p in layer.parameters():          # biases away from zero: their gradients count
        p.data[...] += rng.normal(size=p.shape) * 0.3
    return layer


@pytest.mark.parametrize("e, h, t, n, causal, bias", GRID)
def test_attention_gradcheck(e, h, t, n, causal, bias, rng):
    assert_gradcheck(_attention(e, h, causal, bias, rng), rng.normal(size=(n, t, e)), rng)


@pytest.mark.parametrize("e, h, t, n, causal, bias", GRID)
def test_attention_matches_torch(e, h, t, n, causal, bias, rng):
    assert_matches_torch(_attention(e, h, causal, bias, rng), rng.normal(size=(n, t, e)), rng)


@pytest.mark.parametrize("causal", [False, True])
def test_attention_dropout_gradcheck_and_twin(causal, rng):
    """Dropout on the attention weights: a frozen mask for central differences; the twin
    replays the mask bareprop drew."""
    layer = _attention(8, 2, causal, True, rng, dropout=0.4)
    x = rng.normal(size=(2, 6, 8))
    assert_gradcheck(layer, x, rng)
    assert_matches_torch(layer, x, rng)
    assert layer.dropout.mask.shape == (2, 2, 6, 6)
    assert (layer.dropout.mask == 0).any()


@pytest.mark.parametrize("causal", [False, True])
def test_forward_is_torchs_module_called_as_the_issue_says(causal, rng):
    """state_dict() loads into a plain torch.nn.MultiheadAttention(E, h, bias=bias,
    batch_first=True) strictly, and its (x, x, x, need_weights=False) output (causal mask
    when causal) is ours; need_weights per head gives our attention_weights."""
    layer = _attention(12, 4, causal, True, rng)
    x = rng.normal(size=(3, 7, 12))
    t = torch.nn.MultiheadAttention(12, 4, bias=True, batch_first=True, dtype=torch.float64)
    t.load_state_dict({k: torch.from_numpy(v) for k, v in layer.state_dict().items()},
                      strict=True)
    assert list(t.state_dict()) == list(layer.state_dict())
    tx = torch.from_numpy(x)
    mask = torch.triu(torch.ones(7, 7, dtype=torch.bool), 1) if causal else None
    y = t(tx, tx, tx, need_weights=False, attn_mask=mask, is_causal=causal)[0]
    assert rel(layer(x), y.detach().numpy()) < 1e-12
    _, w = t(tx, tx, tx, need_weights=True, attn_mask=mask, average_attn_weights=False)
    assert layer.attention_weights.shape == (3, 4, 7, 7)
    assert rel(layer.attention_weights, w.detach().numpy()) < 1e-12


def test_state_dict_comes_back_from_torch(rng):
    t = torch.nn.MultiheadAttention(6, 2, batch_first=True, dtype=torch.float64)
    layer = bp.MultiheadAttention(6, 2, init=None, dtype=F64)
    layer.load_state_dict({k: v.numpy() for k, v in t.state_dict().items()})
    x = rng.normal(size=(2, 4, 6))
    tx = torch.from_numpy(x)
    assert rel(layer(x), t(tx, tx, tx, need_weights=False)[0].detach().numpy()) < 1e-12


def test_causal_attention_never_looks_ahead(rng):
    """P is exactly 0 above the diagonal; changing later tokens leaves earlier outputs
    unchanged, and earlier outputs send no gradient to later tokens."""
    layer = _attention(8, 2, True, True, rng)
    x = rng.normal(size=(2, 6, 8))
    y = layer(x)
    p = layer.attention_weights
    assert np.all(p[..., np.triu_indices(6, 1)[0], np.triu_indices(6, 1)[1]] == 0)
    np.testing.assert_allclose(p.sum(axis=-1), 1, rtol=1e-14)
    x2 = x.copy()
    x2[:, 3:] += 5
    np.testing.assert_array_equal(layer(x2)[:, :3], y[:, :3])
    layer(x)
    dout = np.zeros_like(y)
    dout[:, :3] = rng.normal(size=(2, 3, 8))
    dx = layer.backward(dout)
    assert np.all(dx[:, 3:] == 0) and np.abs(dx[:, :3]).min() > 0


def test_scores_of_1e4_in_float32_give_no_nan():
    """Scores q.k/sqrt(d) of about +-1e4: exp would overflow float32 (max ~3.4e38 =
    e^88.7) without the row maximum subtracted, and inf / inf is NaN."""
    s = np.array([[1e4, -1e4, 0.0, 9990.0]], np.float32)
    p = softmax_rows(s.copy())
    e = math.exp(-10)                                        # 9990 is 10 below the max
    np.testing.assert_allclose(p, [[1 / (1 + e), 0, 0, e / (1 + e)]], rtol=1e-6)
    layer = bp.MultiheadAttention(4, 1, rng=0)
    layer.in_proj_weight.data[...] = np.tile(np.eye(4, dtype=np.float32), (3, 1))  # q=k=v=x
    x = np.float32(142) * np.array([[[1, 0, 0, 0], [0, 1, 0, 0], [-1, 0, 0, 0], [1, 1, 0, 0]]],
                                   np.float32)
    y = layer(x)
    scores = np.abs(x[0] @ x[0].T) / 2                       # |q.k| / sqrt(4)
    assert scores.max() > 1e4
    assert np.all(np.isfinite(y)) and np.all(np.isfinite(layer.attention_weights))
    dx = layer.backward(np.ones_like(y))
    assert np.all(np.isfinite(dx)) and np.all(np.isfinite(layer.in_proj_weight.grad))


def test_initialisation_is_torchs_and_init_none_draws_nothing():
    layer = bp.MultiheadAttention(16, 4, rng=0)
    bound = math.sqrt(6 / (16 + 48))                         # xavier-uniform, fan (16, 48)
    w = layer.in_proj_weight.data
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.9 * bound
    assert w.std() == pytest.approx(bound / math.sqrt(3), rel=0.1)
    ow = layer.out_proj.weight.data                          # Linear's default
    assert np.abs(ow).max() <= 1 / 4 and np.abs(ow).max() > 0.9 / 4
    assert not layer.in_proj_bias.data.any() and not layer.out_proj.bias.data.any()
    np.testing.assert_array_equal(bp.MultiheadAttention(16, 4, rng=0).in_proj_weight.data, w)
    blank = bp.MultiheadAttention(16, 4, init=None)
    assert not any(p.data.any() for p in blank.parameters())
    other = bp.MultiheadAttention(16, 4, init="kaiming_normal", rng=0)
    assert other.in_proj_weight.data.std() == pytest.approx(math.sqrt(2 / 16), rel=0.1)


def test_float32_stays_float32_and_eval_drops_nothing(rng):
    layer = bp.MultiheadAttention(8, 2, dropout=0.5, rng=0)
    x = rng.normal(size=(2, 5, 8))
    y = layer.eval()(x)
    assert y.dtype == np.float32 and layer.dropout.mask is None
    np.testing.assert_array_equal(layer(x), y)
    assert layer.train()(x).dtype == np.float32 and layer.dropout.mask is not None


def test_refusals_name_the_layer_and_the_shapes():
    with pytest.raises(ConfigError, match="embed_dim 10 is not divisible by num_heads 4; "
                                          "heads that divide it: 1, 2, 5, 10"):
        bp.MultiheadAttention(10, 4)
    layer = bp.MultiheadAttention(8, 2, rng=0)
    with pytest.raises(ConfigError, match=r"MultiheadAttention\(8, 2\) takes tokens of width 8, "
                                          r"but its input has shape \(5, 6\)"):
        layer.output_shape((5, 6))
    with pytest.raises(ConfigError, match=r"takes a sequence of tokens \(T, E\), but its input "
                                          r"has shape \(1, 28, 28\) \(an image"):
        layer.output_shape((1, 28, 28))
    with pytest.raises(ValueError,
                       match=r"expects sequences of shape \(N, T, 8\), got \(2, 5, 6\)"):
        layer(np.zeros((2, 5, 6), np.float32))
