"""PyTorch twins of transformer models: copied weights, identical batches, 50 optimizer
steps of AdamW and of SGD with momentum, float64. Every loss and every parameter must
agree with torch to 1e-10 relative after every step, and so must the eval-mode outputs
after training:

* a two-block encoder (one pre-norm block with GELU, one post-norm block with ReLU, heads
  4 and 3) on random sequences, then mean pooling and a Linear;
* vision transformers built with --arch on MNIST-shaped batches (1, 28, 28): the small
  one `bareprop compare` is run on, and one with every token layer, a causal block and
  dropout everywhere (masks replayed on the torch side).

AdamW runs with eps = 1e-6 rather than its default 1e-8, for a reason of numerics, not of
maths: the key bias (in_proj_bias[E:2E]) adds q . b_k to every score of a row, which the
softmax ignores, so its true gradient is exactly zero and both sides compute round-off
(~1e-19, test below). Adam divides that by sqrt(v) + eps: with eps = 1e-8 each side walks
its key bias ~1e-12 in a direction of its own round-off (seen: 4e-10 relative to the bias
after 50 steps); with eps = 1e-6 those steps are 100 times smaller and everything else
is unchanged. SGD's steps are proportional to the gradient and need no such care.
"""
import numpy as np
import pytest
import torch

import bareprop as bp
from bareprop.experiment import arch
from bareprop.experiment.presets import PRESETS

from twins import STEPS, rel, run_twins

F64 = np.float64
TOL = 1e-10

OPTIMIZERS = {
    "adamw": lambda p: bp.AdamW(p, lr=3e-3, weight_decay=0.01, eps=1e-6),
    "sgd_momentum": lambda p: bp.SGD(p, lr=0.05, momentum=0.9),
}

VIT_SMALL = "patches(7,16) posembed transformer(heads=2,ff=32,dropout=0) meanpool linear(10)"
VIT_FULL = ("patches(7,16) clstoken posembed transformer(heads=2,ff=32,dropout=0.2,"
            "norm_first=true,activation=gelu) transformer(heads=4,ff=24,dropout=0.1,"
            "causal=true) firsttoken layernorm linear(10)")

#: the vit preset's whole model (its conv stem included), dropout 0 for the twin
VIT_PRESET = PRESETS["vit"]["arch"].replace("dropout=0.1", "dropout=0")


def two_block_encoder(rng):
    return bp.Sequential(
        bp.TransformerEncoderLayer(12, 4, dim_feedforward=20, dropout=0.0, activation="gelu",
                                   norm_first=True, rng=rng, dtype=F64),
        bp.TransformerEncoderLayer(12, 3, dim_feedforward=16, dropout=0.0, activation="relu",
                                   norm_first=False, rng=rng, dtype=F64),
        bp.TokenMeanPool(), bp.Linear(12, 5, rng=rng, dtype=F64), input_shape=(7, 12))


def sequence_batches(rng):
    return [(rng.normal(size=(8, 7, 12)), rng.integers(0, 5, 8)) for _ in range(STEPS)]


def image_batches(rng):
    # pixels scaled to [0, 1] and centred, as --scale would leave them
    return [(rng.integers(0, 256, size=(8, 1, 28, 28)) / 255.0 - 0.5, rng.integers(0, 10, 8))
            for _ in range(STEPS)]


def _check(model, opt_name, batches):
    keep = {}
    worst_loss, worst_param = run_twins(model, OPTIMIZERS[opt_name], batches, keep=keep)
    assert worst_loss < TOL, worst_loss
    assert worst_param < TOL, worst_param
    x = batches[0][0]
    with torch.no_grad():
        ty = keep["tmodel"].eval()(torch.from_numpy(x)).numpy()
    assert rel(model.eval()(x), ty) < TOL


@pytest.mark.parametrize("opt_name", list(OPTIMIZERS))
def test_two_block_encoder_twin(opt_name):
    rng = np.random.default_rng(0)
    _check(two_block_encoder(np.random.default_rng(1)), opt_name, sequence_batches(rng))


@pytest.mark.parametrize("opt_name", list(OPTIMIZERS))
@pytest.mark.parametrize("text", [VIT_SMALL, VIT_FULL, VIT_PRESET],
                         ids=["vit_small", "vit_full", "vit_preset"])
def test_vision_transformer_from_arch_twin(text, opt_name):
    model = arch.build(text, (1, 28, 28), n_classes=10, dtype=F64, seed=3)
    _check(model, opt_name, image_batches(np.random.default_rng(0)))


def test_the_key_bias_gradient_is_round_off(rng):
    """Why AdamW's eps is raised above: d(in_proj_bias)[E:2E] = sum_j dk_j = sum_i q_i
    sum_j dS_ij, and every row of dS sums to 0 (softmax's Jacobian annihilates constants)."""
    layer = bp.MultiheadAttention(12, 3, rng=0, dtype=F64)
    layer(rng.normal(size=(4, 6, 12)))
    layer.backward(rng.normal(size=(4, 6, 12)))
    g = layer.in_proj_bias.grad
    assert np.abs(g[12:24]).max() < 1e-14 * np.abs(g).max()
    assert np.abs(g[:12]).max() > 1e-3 and np.abs(g[24:]).max() > 1e-3
