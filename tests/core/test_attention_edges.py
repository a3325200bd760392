"""Edges of the attention layers found in review: the working memory of a training step
that the memory estimate must see (the h T^2 attention arrays, the feed-forward's hidden
gradients), settings a model file may hold in the wrong type (a "false" that would read
as true, an eps given as a string), and inputs the layers must survive or refuse."""
import tracemalloc

import numpy as np
import pytest

import bareprop as bp
from bareprop.archive import write_archive
from bareprop.errors import ConfigError, ModelFileError

F64 = np.float64


def _peak_and_charge(layer, shape, n=4):
    """(bytes a training step allocates at its peak, bytes the memory estimate charges the
    layer for it): 4 x its output (outputs, caches, gradients: memory.estimated_bytes)
    plus its declared scratch, per example."""
    x = np.random.default_rng(0).normal(size=(n, *shape)).astype(np.float32)
    y = layer(x)
    layer.backward(np.ones_like(y))                  # first step: lazily made arrays exist
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        y = layer(x)
        layer.backward(np.ones_like(y))
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    per_example = sum(layer.scratch(shape).values()) + 4 * int(np.prod(shape))
    return peak, per_example * n * 4


@pytest.mark.parametrize("dropout", [0.0, 0.1])
@pytest.mark.parametrize("make, shape", [
    (lambda p: bp.MultiheadAttention(8, 4, dropout=p, rng=0), (64, 8)),      # h T^2 dominates
    (lambda p: bp.TransformerEncoderLayer(16, 4, 16, dropout=p, rng=0), (100, 16)),
    (lambda p: bp.TransformerEncoderLayer(8, 2, 2048, dropout=p, rng=0), (4, 8)),  # ff does
], ids=["attention", "block_long", "block_wide"])
def test_the_declared_scratch_covers_a_training_steps_peak(make, shape, dropout):
    """The memory estimate (and a model file's size check) read a layer's working memory
    from ``scratch``: the backward's dP (h T^2 per example, as large as P itself) and the
    dropout's mask and dropped weights must be in it, or a long-sequence run the
    estimate passes runs out of memory in its first step."""
    peak, charge = _peak_and_charge(make(dropout), shape)
    assert peak <= 1.1 * charge, (peak, charge)


def test_dropout_on_attention_weights_is_applied_in_backward_as_in_forward(rng):
    """dP goes through the same mask as P did (in place now): equal to the gradient of
    the function with that mask frozen."""
    layer = bp.MultiheadAttention(6, 2, dropout=0.4, rng=0, dtype=F64)
    layer.dropout.freeze_mask = True
    x = rng.normal(size=(2, 5, 6))
    y = layer(x)
    dy = rng.normal(size=y.shape)
    dx = layer.backward(dy)
    eps, i = 1e-6, (1, 3, 4)
    xp, xm = x.copy(), x.copy()
    xp[i] += eps
    xm[i] -= eps
    num = ((layer(xp) * dy).sum() - (layer(xm) * dy).sum()) / (2 * eps)
    assert layer.dropout.mask is not None and (layer.dropout.mask == 0).any()
    assert abs(num - dx[i]) < 1e-8 * max(1, abs(num))


# -- settings in the wrong type: one line, before anything is allocated ----------------
@pytest.mark.parametrize("make, words", [
    (lambda: bp.MultiheadAttention(8, 2, causal="false"), ["causal", "True or False"]),
    (lambda: bp.TransformerEncoderLayer(8, 2, norm_first="false"), ["norm_first", "True or False"]),
    (lambda: bp.TransformerEncoderLayer(8, 2, causal=1), ["causal", "True or False"]),
    (lambda: bp.MultiheadAttention(8, 2, dropout="0.1"), ["dropout", "[0, 1)"]),
    (lambda: bp.TransformerEncoderLayer(8, 2, dropout=True), ["dropout", "[0, 1)"]),
    (lambda: bp.TransformerEncoderLayer(8, 2, layer_norm_eps="1e-5"), ["layer_norm_eps", "eps > 0"]),
    (lambda: bp.TransformerEncoderLayer(8, 2, layer_norm_eps=-1.0), ["layer_norm_eps", "eps > 0"]),
    (lambda: bp.LayerNorm(8, eps=float("inf")), ["LayerNorm", "eps > 0"]),
    (lambda: bp.LayerNorm(8, eps=True), ["LayerNorm", "eps > 0"]),
    (lambda: bp.LayerNorm(8, eps=None), ["LayerNorm", "eps > 0"]),
    (lambda: bp.LayerNorm([1] * 100_000), ["normalized_shape", "at most 16 axes"]),
])
def test_settings_of_the_wrong_type_are_one_line(make, words):
    with pytest.raises(ConfigError) as info:
        make()
    msg = str(info.value)
    assert "\n" not in msg
    for w in words:
        assert w in msg, msg


def _model_file(tmp_path, layer, input_shape=(5, 8)):
    meta = {"format": "bareprop-model", "version": 2, "dtype": "float32",
            "architecture": {"type": "Sequential", "layers": [layer]},
            "input_shape": list(input_shape), "classes": None, "scaling": None, "extra": {}}
    model = bp.Sequential(bp.core.build_layer({**layer, "causal": False, "norm_first": False}
                                              if layer["type"] == "TransformerEncoderLayer"
                                              else {**layer, "causal": False}))
    path = tmp_path / "m.npz"
    write_archive(path, meta, model.state_dict())
    return path


@pytest.mark.parametrize("layer", [
    {"type": "MultiheadAttention", "embed_dim": 8, "num_heads": 2, "bias": True,
     "causal": "false", "dropout": 0.0},
    {"type": "TransformerEncoderLayer", "d_model": 8, "nhead": 2, "dim_feedforward": 16,
     "dropout": 0.0, "activation": "relu", "layer_norm_eps": 1e-5, "norm_first": "false",
     "causal": False},
], ids=["causal", "norm_first"])
def test_a_model_file_saying_false_as_a_string_is_refused_not_read_as_true(tmp_path, layer):
    """Neither switch changes the weights, so nothing else in the file would catch a
    "false" that Python reads as true: the file must be refused."""
    with pytest.raises(ModelFileError, match="True or False"):
        bp.load(_model_file(tmp_path, layer))


# -- inputs --------------------------------------------------------------------------
@pytest.mark.parametrize("make", [lambda: bp.MultiheadAttention(8, 2, rng=0),
                                  lambda: bp.TransformerEncoderLayer(8, 2, 16, rng=0)])
def test_no_tokens_is_refused_naming_the_layer(make):
    with pytest.raises(ValueError, match=r"at least one token \(T >= 1\), got \(2, 0, 8\)"):
        make()(np.zeros((2, 0, 8), np.float32))


@pytest.mark.parametrize("causal", [False, True])
def test_float32_scores_of_1e4_give_no_nan(causal):
    """Scores of +-1e4 (exp overflows float32 past ~88): the row maximum is subtracted
    first, forward and backward stay finite, and each row of P sums to 1."""
    layer = bp.MultiheadAttention(4, 1, bias=False, causal=causal, init=None)
    layer.in_proj_weight.data[:] = np.tile(np.eye(4, dtype=np.float32), (3, 1)) * 100
    layer.out_proj.weight.data[:] = np.eye(4, dtype=np.float32)
    # q = k = v = 100 x: tokens +-2 e1 give scores q . k / sqrt(4) = +-2e4
    x = np.array([[[1, 0, 0, 0], [-1, 0, 0, 0], [0, 1, 0, 0]]], np.float32) * 2
    y = layer(x)
    dx = layer.backward(np.ones_like(y))
    assert np.isfinite(y).all() and np.isfinite(dx).all()
    np.testing.assert_allclose(layer.attention_weights.sum(-1), 1, rtol=1e-6)


def test_causal_one_token_attends_to_itself(rng):
    layer = bp.MultiheadAttention(6, 3, causal=True, rng=0, dtype=F64)
    x = rng.normal(size=(1, 1, 6))
    y = layer(x)
    assert layer.attention_weights.shape == (1, 3, 1, 1)
    np.testing.assert_array_equal(layer.attention_weights, 1.0)
    assert np.isfinite(layer.backward(np.ones_like(y))).all()


def test_layernorm_of_constant_rows_is_zero_with_a_finite_gradient():
    ln = bp.LayerNorm(6, dtype=F64)
    y = ln(np.full((2, 3, 6), 7.0))
    np.testing.assert_array_equal(y, 0.0)
    assert np.isfinite(ln.backward(np.ones_like(y))).all()


def test_eval_turns_every_dropout_of_the_block_off(rng):
    block = bp.TransformerEncoderLayer(8, 2, 16, dropout=0.5, rng=0, dtype=F64)
    plain = bp.TransformerEncoderLayer(8, 2, 16, dropout=0.0, rng=1, dtype=F64)
    plain.load_state_dict(block.state_dict())
    x = rng.normal(size=(3, 5, 8))
    np.testing.assert_array_equal(block.eval()(x), plain.eval()(x))
    assert not np.allclose(block.train()(x), plain(x))
