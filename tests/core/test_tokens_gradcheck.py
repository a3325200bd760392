"""The vision transformer's token layers (PatchEmbed, PositionalEmbedding, ClassToken,
TokenMeanPool, FirstToken): dx and every parameter gradient against float64 central
differences and against their PyTorch twins, PatchEmbed equal to torch's Conv2d with
stride = kernel, hand-worked values, and their refusals.
Derivation: docs/backprop.md, "Attention"."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import bareprop as bp
from bareprop.errors import ConfigError

from layercheck import assert_gradcheck, assert_matches_torch, rel

F64 = np.float64

CASES = {  # name: (layer, input shape)
    "patch 3x3 of 2x6x9": (lambda: bp.PatchEmbed(2, 5, 3, rng=0, dtype=F64), (2, 2, 6, 9)),
    "patch 1x1, batch 1": (lambda: bp.PatchEmbed(1, 3, 1, rng=0, dtype=F64), (1, 1, 2, 3)),
    "patch 4, no bias": (lambda: bp.PatchEmbed(3, 4, 4, bias=False, rng=0, dtype=F64),
                         (2, 3, 8, 4)),
    "posembed": (lambda: bp.PositionalEmbedding(4, 5, rng=0, dtype=F64), (3, 4, 5)),
    "posembed T=1": (lambda: bp.PositionalEmbedding(1, 3, rng=0, dtype=F64), (1, 1, 3)),
    "clstoken": (lambda: bp.ClassToken(5, rng=0, dtype=F64), (3, 4, 5)),
    "meanpool": (lambda: bp.TokenMeanPool(), (3, 4, 5)),
    "firsttoken": (lambda: bp.FirstToken(), (3, 4, 5)),
}


@pytest.mark.parametrize("name", list(CASES))
def test_token_layer_gradcheck(name, rng):
    make, shape = CASES[name]
    assert_gradcheck(make(), rng.normal(size=shape), rng)


@pytest.mark.parametrize("name", list(CASES))
def test_token_layer_matches_torch(name, rng):
    make, shape = CASES[name]
    assert_matches_torch(make(), rng.normal(size=shape), rng)


def test_patch_embed_is_torchs_strided_conv_flattened(rng):
    """y[n, t] is Conv2d(C, E, p, stride=p)(x)[n, :, t // gw, t % gw]: tokens row by row."""
    layer = bp.PatchEmbed(3, 6, 4, rng=0, dtype=F64)
    x = rng.normal(size=(2, 3, 8, 12))
    conv = F.conv2d(torch.from_numpy(x), torch.from_numpy(layer.weight.data),
                    torch.from_numpy(layer.bias.data), stride=4).numpy()      # (2, 6, 2, 3)
    y = layer(x)
    assert y.shape == (2, 6, 6)
    assert rel(y, conv.reshape(2, 6, 6).transpose(0, 2, 1)) < 1e-13
    np.testing.assert_allclose(y[1, 4], conv[1, :, 1, 1], rtol=1e-13)       # t = 4: row 1, col 1


def test_hand_worked_token_layers():
    x = np.arange(12.0).reshape(1, 3, 4)                        # 3 tokens of 4
    pool = bp.TokenMeanPool()
    np.testing.assert_array_equal(pool(x), [[4.0, 5.0, 6.0, 7.0]])
    np.testing.assert_array_equal(pool.backward(np.array([[3.0, 0, 0, 6.0]])),
                                  np.tile([1.0, 0, 0, 2.0], (1, 3, 1)))
    first = bp.FirstToken()
    np.testing.assert_array_equal(first(x), [[0.0, 1.0, 2.0, 3.0]])
    dx = first.backward(np.ones((1, 4)))
    assert dx[0, 0].tolist() == [1.0] * 4 and not dx[0, 1:].any()
    cls = bp.ClassToken(4, dtype=F64)
    cls.weight.data[...] = [9.0, 8.0, 7.0, 6.0]
    y = cls(x)
    assert y.shape == (1, 4, 4) and y[0, 0].tolist() == [9.0, 8.0, 7.0, 6.0]
    np.testing.assert_array_equal(y[:, 1:], x)
    cls.backward(np.arange(16.0).reshape(1, 4, 4))
    assert cls.weight.grad.tolist() == [0.0, 1.0, 2.0, 3.0]
    pos = bp.PositionalEmbedding(3, 4, dtype=F64)
    pos.weight.data[...] = 1.0
    np.testing.assert_array_equal(pos(np.stack([x[0], x[0]])), np.stack([x[0], x[0]]) + 1)
    pos.backward(np.ones((2, 3, 4)))
    np.testing.assert_array_equal(pos.weight.grad, np.full((3, 4), 2.0))


def test_inits():
    pos = bp.PositionalEmbedding(64, 64, rng=0)
    assert pos.weight.data.std() == pytest.approx(0.02, rel=0.05)
    assert bp.ClassToken(64, rng=0).weight.dtype == np.float32
    assert not bp.PositionalEmbedding(4, 4, init=None).weight.data.any()
    patch = bp.PatchEmbed(1, 32, 7, rng=0)
    assert np.abs(patch.weight.data).max() <= 1 / 7 and np.abs(patch.bias.data).max() <= 1 / 7
    np.testing.assert_array_equal(bp.PatchEmbed(1, 32, 7, rng=0).weight.data, patch.weight.data)


def test_refusals_name_the_layer_and_the_shapes():
    patch = bp.PatchEmbed(1, 64, 5, rng=0)
    with pytest.raises(ConfigError, match=r"PatchEmbed\(1, 64, patch=5\): 28x28 images do not "
                                          r"split into 5x5 patches; patch sizes that fit: "
                                          r"1, 2, 4, 7, 14, 28"):
        patch.output_shape((1, 28, 28))
    with pytest.raises(ConfigError, match=r"expects inputs of shape \(1, H, W\), got \(784,\)"):
        patch.output_shape((784,))
    pos = bp.PositionalEmbedding(16, 64, rng=0)
    with pytest.raises(ConfigError, match=r"PositionalEmbedding\(16, 64\) holds 16 positions of "
                                          r"width 64, but its input has shape \(17, 64\)"):
        pos.output_shape((17, 64))
    with pytest.raises(ValueError, match=r"expects sequences of shape \(N, 16, 64\), got "
                                         r"\(2, 17, 64\)"):
        pos(np.zeros((2, 17, 64), np.float32))
    with pytest.raises(ConfigError, match=r"TokenMeanPool takes a sequence of tokens \(T, E\), "
                                          r"but its input has shape \(64,\)"):
        bp.TokenMeanPool().output_shape((64,))
    with pytest.raises(ConfigError, match=r"ClassToken\(8\) takes tokens of width 8"):
        bp.ClassToken(8).output_shape((4, 6))
