"""The PyTorch twins of the attention layers (reference/torch_attention.py), and
``bareprop compare`` on vision transformers at the library level (what the compare
command runs: reference.compare.compare, then verdict).

A twin that replays a dropout on the attention weights computes attention with the
formula of torch's need_weights path: here it is proven equal to torch's own forward when
nothing is dropped, causal or not, alone or inside torch's encoder layer."""
import numpy as np
import pytest
import torch

import bareprop as bp
from bareprop.data import Batches, Scaler
from bareprop.experiment import arch
from bareprop.experiment.presets import PRESETS
from bareprop.reference import torch_attention
from bareprop.reference.compare import compare, verdict
from bareprop.reference.torch_twin import torch_module

from synthetic import digits_like

F64 = np.float64


class NoMask:
    """A bareprop Dropout stand-in whose last forward dropped nothing."""
    mask = None


@pytest.mark.parametrize("causal", [False, True])
def test_the_replayed_formula_is_torchs_forward(causal, rng):
    twin = torch_attention.MultiheadAttention(12, 4, dropout=0.3, causal=causal,
                                              replay=NoMask()).double().train()
    x = torch.from_numpy(rng.normal(size=(3, 6, 12)))
    mask = torch_attention.causal_mask(6) if causal else None
    ours = twin.replayed(x, mask)
    twin.dropout = 0.0                                   # torch's own path, nothing dropped
    theirs = torch.nn.MultiheadAttention.forward(twin, x, x, x, need_weights=False,
                                                 attn_mask=mask, is_causal=causal)[0]
    assert torch.allclose(ours, theirs, rtol=1e-13, atol=1e-14)
    float_mask = torch.zeros(6, 6, dtype=torch.float64).masked_fill(
        torch_attention.causal_mask(6), float("-inf"))   # as torch's encoder passes it
    if causal:
        assert torch.allclose(twin.replayed(x, float_mask), theirs, rtol=1e-13, atol=1e-14)


def test_twins_are_torchs_own_classes():
    vit = arch.build("patches(7,8) clstoken posembed transformer(heads=2,ff=16) firsttoken "
                     "layernorm linear(10)", (1, 28, 28), dtype=F64)
    twin = torch_module(vit, replay_masks=True)
    assert isinstance(twin[0], torch.nn.Conv2d) and twin[0].stride == (7, 7)
    assert isinstance(twin[3], torch.nn.TransformerEncoderLayer)
    assert isinstance(twin[3].self_attn, torch.nn.MultiheadAttention)
    assert twin[3].self_attn.replay is vit[3].self_attn.dropout
    assert isinstance(twin[5], torch.nn.LayerNorm)
    # without replaying, the encoder keeps torch's own dropout modules
    plain = torch_module(vit)
    assert isinstance(plain[3].dropout1, torch.nn.Dropout) and plain[3].self_attn.replay is None
    assert set(twin.state_dict()) == set(vit.state_dict())


def image_sets(batch=25):
    x, y = digits_like(150, 1)
    scaler = Scaler.fit("unit", x)
    train = Batches(x[:, None], y, batch, scaler, F64, shuffle=True, seed=1)
    xt, yt = digits_like(60, 2)
    return train, Batches(xt[:, None], yt, 30, scaler, F64)


@pytest.mark.parametrize("text", [
    "patches(7,16) posembed transformer(heads=2,ff=32,dropout=0) meanpool linear(10)",
    "patches(4,12) clstoken posembed transformer(heads=3,ff=16,dropout=0.2,norm_first=true,"
    "activation=gelu) mha(heads=2,causal=true,dropout=0.1) firsttoken layernorm linear(10)",
    PRESETS["vit"]["arch"],                          # the preset's hybrid, dropout and all
])
def test_compare_of_a_vision_transformer_is_a_match(text):
    model = arch.build(text, (1, 28, 28), n_classes=10, dtype=F64, seed=0)
    opt = bp.Adam(model.parameters(), lr=1e-3, eps=1e-6)
    train, test = image_sets()
    result = compare(model, opt, bp.CrossEntropyLoss(), train, test, 2)
    line, ok = verdict(result, "float64", "2 epochs")
    assert ok and line.startswith("MATCH"), line
    for row in result["epochs"]:
        assert row["max_abs_weight_diff"] < 1e-10
        assert row["bareprop"]["test_accuracy"] == row["torch"]["test_accuracy"]
        assert abs(row["bareprop"]["test_loss"] / row["torch"]["test_loss"] - 1) < 1e-10
