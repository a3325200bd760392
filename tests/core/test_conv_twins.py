"""PyTorch twins of convolutional nets: copied weights, identical batches, 50 optimizer
steps, float64.

Every loss, every parameter and every BatchNorm2d running statistic must agree with
torch to 1e-10 relative after every step, and so must the eval-mode outputs after
training (the running statistics at work). Dropout2d replays bareprop's channel masks
on the torch side, as the dense dropout twins do.
"""
import numpy as np
import pytest
import torch

import bareprop as bp
from bareprop.reference.torch_twin import torch_module

from twins import rel, run_twins

# torch notes that "same" with an even kernel pads a copy of the input (it does, and so
# does bareprop); not a problem here
pytestmark = pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")

STEPS = 50
F64 = np.float64

OPTIMIZERS = {
    "sgd_momentum": lambda p: bp.SGD(p, lr=0.05, momentum=0.9),
    "sgd_nesterov": lambda p: bp.SGD(p, lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3),
    "adam": lambda p: bp.Adam(p, lr=1e-3),
}


def lenet5(rng):
    """LeNet-5 as LeCun drew it, on (1, 28, 28): 28 -> 28 -> 14 -> 10 -> 5."""
    return bp.Sequential(
        bp.Conv2d(1, 6, 5, padding=2, rng=rng, dtype=F64), bp.Tanh(), bp.AvgPool2d(2),
        bp.Conv2d(6, 16, 5, rng=rng, dtype=F64), bp.Tanh(), bp.AvgPool2d(2),
        bp.Flatten(),
        bp.Linear(400, 120, rng=rng, dtype=F64), bp.Tanh(),
        bp.Linear(120, 84, rng=rng, dtype=F64), bp.Tanh(),
        bp.Linear(84, 10, rng=rng, dtype=F64),
        input_shape=(1, 28, 28))


def deep_conv_net(rng):
    """Every image layer, on (2, 14, 14): a non-square even kernel with "same" padding
    (asymmetric: the extra row/column at the bottom/right), stride 2 with explicit
    padding, a pair padding, overlapping max-pool windows, average pooling with a
    non-square window and stride, BatchNorm2d, Dropout2d, global average pooling.

    The convs before a BatchNorm2d have no bias, as usual and for a numerical reason:
    BatchNorm subtracts the channel mean, so such a bias gets a gradient of pure
    round-off (~1e-17), which Adam's g / sqrt(v) scales up to full-size steps in a
    direction that differs between the two sides (seen: 5e-10 apart after 50 steps).
    """
    return bp.Sequential(
        bp.Conv2d(2, 6, (3, 2), padding="same", bias=False, rng=rng, dtype=F64),  # (6, 14, 14)
        bp.BatchNorm2d(6, momentum=0.2, dtype=F64), bp.ReLU(),
        bp.Conv2d(6, 8, 3, stride=2, padding=1, rng=rng, dtype=F64),              # (8, 7, 7)
        bp.LeakyReLU(0.1),
        bp.MaxPool2d(2, stride=1),                                                # (8, 6, 6)
        bp.Dropout2d(0.25, rng=1),
        bp.Conv2d(8, 8, (2, 3), padding=(1, 0), bias=False, rng=rng, dtype=F64),  # (8, 7, 4)
        bp.BatchNorm2d(8, eps=1e-3, dtype=F64), bp.Tanh(),
        bp.AvgPool2d((3, 2), stride=(2, 1)),                                      # (8, 3, 3)
        bp.GlobalAvgPool2d(),                                                     # (8,)
        bp.Linear(8, 5, rng=rng, dtype=F64),
        input_shape=(2, 14, 14))


NETS = {"lenet5": (lenet5, 10), "deep": (deep_conv_net, 5)}


def image_batches(rng, shape, n_classes, batch=8):
    # shifted and scaled so BatchNorm's running statistics move away from (0, 1)
    return [(rng.normal(size=(batch, *shape)) * 2 + 0.5, rng.integers(0, n_classes, batch))
            for _ in range(STEPS)]


@pytest.mark.parametrize("opt_name", list(OPTIMIZERS))
@pytest.mark.parametrize("net_name", list(NETS))
def test_fifty_steps_equal_torch_then_eval(net_name, opt_name):
    rng = np.random.default_rng(11)
    make, n_classes = NETS[net_name]
    model = make(rng)
    data = image_batches(rng, model.input_shape, n_classes)
    keep = {}
    loss_gap, param_gap = run_twins(model, OPTIMIZERS[opt_name], data, keep=keep)
    assert loss_gap < 1e-10
    assert param_gap < 1e-10                    # parameters and running stats, every step

    tmodel = keep["tmodel"]
    model.eval()
    tmodel.eval()
    x = rng.normal(size=(6, *model.input_shape))
    with torch.no_grad():
        expected = tmodel(torch.from_numpy(x)).numpy()
    assert rel(model(x), expected) < 1e-10


def test_the_deep_net_exercises_what_it_claims():
    """The twin above proves little if Dropout2d never dropped a channel or the running
    statistics never left their start: check both on the same run."""
    rng = np.random.default_rng(11)
    model = deep_conv_net(rng)
    data = image_batches(rng, model.input_shape, 5)
    dropped = []
    run_twins(model, OPTIMIZERS["adam"], data,
              steps_hook=lambda i, opt, topt: dropped.append((model[6]._mask == 0).mean()))
    assert model[6]._mask.shape == (8, 8, 1, 1)               # whole channels
    assert 0.1 < np.mean(dropped) < 0.4                       # p = 0.25
    for bn in (model[1], model[8]):
        assert np.abs(bn.running_mean).max() > 0.05
        assert np.abs(bn.running_var - 1).max() > 0.05


def test_twin_modules_and_state_names_line_up():
    """torch_module maps layer by layer: the same state_dict names (BatchNorm2d's running
    stats included), torch's own Dropout2d unless masks are replayed."""
    model = deep_conv_net(np.random.default_rng(0))
    tmodel = torch_module(model)
    assert isinstance(tmodel[6], torch.nn.Dropout2d) and tmodel[6].p == 0.25
    assert isinstance(tmodel[1], torch.nn.BatchNorm2d) and tmodel[1].momentum == 0.2
    assert tmodel[8].eps == 1e-3
    tstate = tmodel.state_dict()
    state = model.state_dict()
    assert set(state) == set(tstate) - {"1.num_batches_tracked", "8.num_batches_tracked"}
    for name, value in state.items():
        assert np.array_equal(value, tstate[name].numpy()), name
    assert type(torch_module(model, replay_masks=True)[6]).__name__ == "MaskReplay"


def test_conv_twin_gap_is_detected():
    """The comparison can fail: a torch twin whose "same" padding sits on the other side
    (top/left instead of bottom/right) drifts away at once."""
    rng = np.random.default_rng(3)
    model = deep_conv_net(rng)
    x = torch.from_numpy(rng.normal(size=(4, 2, 14, 14)))
    twin = torch_module(model)[0]
    shifted = torch.nn.Conv2d(2, 6, (3, 2), padding=0, bias=False, dtype=torch.float64)
    shifted.weight.data.copy_(twin.weight.data)
    ours = model[0](x.numpy())
    padded = torch.nn.functional.pad(x, (1, 0, 1, 1))     # (left, right, top, bottom)
    assert rel(ours, twin(x).detach().numpy()) < 1e-12
    assert rel(ours, shifted(padded).detach().numpy()) > 1e-3
