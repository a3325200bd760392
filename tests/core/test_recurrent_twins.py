"""RNN, LSTM and GRU against torch.nn.RNN/LSTM/GRU in float64: the state dict loads
into PyTorch's own module unchanged (strict) and back, forward, dx and every parameter
gradient agree for every layout and option, and 50 steps of SGD with momentum and of
Adam on a 2-layer LSTM, a bidirectional GRU and a tanh RNN, each under a Linear, keep
every loss and every parameter within 1e-10 relative of PyTorch's.

Derivations: docs/backprop.md, "Recurrent networks".
"""
import numpy as np
import pytest
import torch

import bareprop as bp
from bareprop.reference.torch_twin import torch_module

from twins import rel, run_twins

F64 = np.float64
TORCH_TOL = 1e-12
STEPS = 50
OPTIMIZERS = {"sgd_momentum": lambda p: bp.SGD(p, lr=0.05, momentum=0.9),
              "adam": lambda p: bp.Adam(p, lr=3e-3)}
LAYERS = {"RNN": (bp.RNN, torch.nn.RNN), "LSTM": (bp.LSTM, torch.nn.LSTM),
          "GRU": (bp.GRU, torch.nn.GRU)}


def plain_torch(layer):
    """PyTorch's own module of the same sizes (not the twin): what a user would build."""
    kw = {"nonlinearity": layer.nonlinearity} if isinstance(layer, bp.RNN) else {}
    cls = LAYERS[type(layer).__name__][1]
    return cls(layer.input_size, layer.hidden_size, num_layers=layer.num_layers,
               bias=layer.bias, batch_first=layer.batch_first,
               bidirectional=layer.bidirectional, dtype=torch.float64, **kw)


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("name", list(LAYERS))
def test_state_dict_loads_into_pytorch_strictly_and_back(name, bidirectional, bias):
    rng = np.random.default_rng(0)
    layer = LAYERS[name][0](4, 3, num_layers=2, bias=bias, bidirectional=bidirectional,
                            return_sequences=True, rng=rng, dtype=F64)
    tmod = plain_torch(layer)
    assert list(layer.state_dict()) == list(tmod.state_dict())       # names and order
    tmod.load_state_dict({k: torch.from_numpy(v) for k, v in layer.state_dict().items()})
    x = rng.normal(size=(2, 5, 4))
    out, _ = tmod(torch.from_numpy(x))
    assert rel(layer(x), out.detach().numpy()) < TORCH_TOL
    # and back: PyTorch's own initialisation, read by bareprop
    torch.manual_seed(1)
    other = plain_torch(layer)
    layer.load_state_dict({k: v.numpy() for k, v in other.state_dict().items()})
    assert rel(layer(x), other(torch.from_numpy(x))[0].detach().numpy()) < TORCH_TOL


CONFIGS = [dict(num_layers=1), dict(num_layers=2), dict(bidirectional=True),
           dict(num_layers=2, bidirectional=True, return_sequences=True),
           dict(return_sequences=True, batch_first=False), dict(bias=False, num_layers=2),
           dict(num_layers=3, bidirectional=True, batch_first=False)]


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items()))
@pytest.mark.parametrize("name", ["RNN_tanh", "RNN_relu", "LSTM", "GRU"])
def test_forward_dx_and_every_gradient_equal_pytorch(name, config):
    rng = np.random.default_rng(7)
    kind, _, act = name.partition("_")
    kw = {"nonlinearity": act} if act else {}
    layer = LAYERS[kind][0](5, 4, rng=rng, dtype=F64, **kw, **config)
    shape = (3, 6, 5) if layer.batch_first else (6, 3, 5)
    x = rng.normal(size=shape)
    twin = torch_module(layer)
    tx = torch.tensor(x, requires_grad=True)
    ty = twin(tx)
    y = layer(x)
    assert y.shape == tuple(ty.shape)
    assert rel(y, ty.detach().numpy()) < TORCH_TOL
    r = rng.normal(size=y.shape)
    layer.zero_grad()
    dx = layer.backward(r)
    (ty * torch.from_numpy(r)).sum().backward()
    assert rel(dx, tx.grad.numpy()) < TORCH_TOL
    grads = dict(twin.named_parameters())
    for pname, p in layer.named_parameters():
        assert rel(p.grad, grads[pname].grad.numpy()) < 1e-11, pname


def test_the_final_state_is_pytorchs_h_n_in_both_directions():
    """Bidirectional: the forward direction's state after step T and the reverse one's
    after step 1, i.e. cat([h_n[-2], h_n[-1]]), and the two ends of ``output``."""
    rng = np.random.default_rng(2)
    layer = bp.GRU(3, 4, bidirectional=True, rng=rng, dtype=F64)
    seqs = bp.GRU(3, 4, bidirectional=True, return_sequences=True, rng=0, dtype=F64)
    seqs.load_state_dict(layer.state_dict())
    x = rng.normal(size=(2, 5, 3))
    tmod = plain_torch(layer)
    tmod.load_state_dict({k: torch.from_numpy(v) for k, v in layer.state_dict().items()})
    out, h_n = tmod(torch.from_numpy(x))
    final = layer(x)
    assert rel(final, torch.cat([h_n[-2], h_n[-1]], 1).detach().numpy()) < TORCH_TOL
    every = seqs(x)
    np.testing.assert_array_equal(final[:, :4], every[:, -1, :4])
    np.testing.assert_array_equal(final[:, 4:], every[:, 0, 4:])


def sequence_batches(rng, steps, features, n_classes, batch=8):
    return [(rng.normal(size=(batch, steps, features)), rng.integers(0, n_classes, batch))
            for _ in range(STEPS)]


def lstm_2_layers(rng):
    return bp.Sequential(bp.LSTM(6, 8, num_layers=2, rng=rng, dtype=F64),
                         bp.Linear(8, 4, rng=rng, dtype=F64), input_shape=(7, 6))


def gru_bidirectional(rng):
    return bp.Sequential(bp.GRU(6, 5, bidirectional=True, rng=rng, dtype=F64),
                         bp.Linear(10, 4, rng=rng, dtype=F64), input_shape=(7, 6))


def rnn_tanh(rng):
    return bp.Sequential(bp.RNN(6, 9, rng=rng, dtype=F64),
                         bp.Linear(9, 4, rng=rng, dtype=F64), input_shape=(7, 6))


NETS = {"lstm_2_layers": lstm_2_layers, "gru_bidirectional": gru_bidirectional,
        "rnn_tanh": rnn_tanh}


@pytest.mark.parametrize("opt_name", list(OPTIMIZERS))
@pytest.mark.parametrize("net_name", list(NETS))
def test_fifty_steps_equal_pytorch(net_name, opt_name):
    rng = np.random.default_rng(11)
    model = NETS[net_name](rng)
    before = model.state_dict()
    data = sequence_batches(rng, 7, 6, 4)
    keep = {}
    loss_gap, param_gap = run_twins(model, OPTIMIZERS[opt_name], data, keep=keep)
    assert loss_gap < 1e-10
    assert param_gap < 1e-10                         # every parameter, after every step
    moved = max(rel(v, before[k]) for k, v in model.state_dict().items())
    assert moved > 0.05                              # the weights did move
    model.eval()
    x = rng.normal(size=(5, 7, 6))
    with torch.no_grad():
        expected = keep["tmodel"](torch.from_numpy(x)).numpy()
    assert rel(model(x), expected) < 1e-10


def test_the_twin_comparison_can_fail():
    """The same weights on the time-reversed sequence (a direction mixed up) are far off:
    the comparisons above would see such a slip."""
    rng = np.random.default_rng(4)
    layer = bp.LSTM(3, 4, bidirectional=True, rng=rng, dtype=F64)
    x = rng.normal(size=(2, 5, 3))
    tmod = plain_torch(layer)
    tmod.load_state_dict({k: torch.from_numpy(v) for k, v in layer.state_dict().items()})
    _, (h_n, _) = tmod(torch.from_numpy(x[:, ::-1].copy()))
    assert rel(layer(x), torch.cat([h_n[-2], h_n[-1]], 1).detach().numpy()) > 1e-3
