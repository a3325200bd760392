"""Conv2d, MaxPool2d, AvgPool2d, GlobalAvgPool2d, BatchNorm2d, Dropout2d: dx and every
parameter gradient against float64 central differences and against torch float64, max-pool
ties and NaNs against torch, scratch buffers across shapes, fresh outputs, float32 kept.

Derivations: docs/backprop.md, "Convolution and pooling".
"""
import copy
import tracemalloc

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import bareprop as bp
from bareprop.core import conv as conv_module

from layercheck import Projection, random_out
from twins import rel

GRAD_TOL = 1e-6     # central differences, as tests/core/test_core_gradcheck.py
TORCH_TOL = 1e-12   # the same arithmetic up to round-off


def assert_gradcheck(layer, x, rng):
    """dx and every parameter gradient of ``layer`` against central differences."""
    errs = bp.gradcheck(layer, Projection(), x, random_out(layer, x, rng), wrt_input=True)
    assert set(errs) == {"input"} | {name for name, _ in layer.named_parameters()}
    assert max(errs.values()) < GRAD_TOL, errs


def ours(layer, x, r):
    """Forward, dx and parameter gradients (in parameters() order) of one bareprop layer."""
    layer.zero_grad()
    y = layer.forward(x)
    dx = layer.backward(r)
    return y, dx, [p.grad for p in layer.parameters()]


def theirs(fn, x, params, r):
    """The same from torch: fn(tx, *tparams) on leaf tensors, backward from r."""
    tx = torch.tensor(x, requires_grad=True)
    tps = [torch.tensor(p, requires_grad=True) for p in params]
    ty = fn(tx, *tps)
    ty.backward(torch.from_numpy(r))
    return ty.detach().numpy(), tx.grad.numpy(), [tp.grad.numpy() for tp in tps]


def assert_matches_torch(layer, fn, x, rng):
    """Forward, dx and every parameter gradient equal torch's to TORCH_TOL (float64)."""
    r = random_out(layer, x, rng)
    y, dx, grads = ours(layer, x, r)
    ty, tdx, tgrads = theirs(fn, x, [p.data for p in layer.parameters()], r)
    assert y.shape == ty.shape
    assert rel(y, ty) < TORCH_TOL
    assert rel(dx, tdx) < TORCH_TOL
    assert len(grads) == len(tgrads)
    for g, tg in zip(grads, tgrads):
        assert rel(g, tg) < TORCH_TOL


# -- Conv2d ---------------------------------------------------------------------------
# (N, C, (H, W), O, Conv2d keyword arguments); every H != W. Stride 1 lays the columns out
# per example when C*kh*kw < 64 and channel-major otherwise (core/conv.py): the c8/c16
# cases take the second path
CONV_CASES = [
    pytest.param(2, 3, (7, 8), 4, dict(kernel_size=3), id="k3-s1-p0"),
    pytest.param(2, 3, (6, 5), 4, dict(kernel_size=3, padding=1), id="k3-s1-p1"),
    pytest.param(2, 3, (7, 9), 2, dict(kernel_size=3, stride=2), id="k3-s2-p0-odd"),
    pytest.param(1, 3, (8, 6), 2, dict(kernel_size=3, stride=2, padding=1), id="k3-s2-p1-batch1"),
    pytest.param(2, 1, (5, 4), 3, dict(kernel_size=(2, 3), padding=(0, 2)), id="k2x3-p0x2"),
    pytest.param(2, 3, (7, 5), 2, dict(kernel_size=(3, 1), stride=(2, 1)), id="k3x1-s2x1"),
    pytest.param(2, 3, (5, 7), 2, dict(kernel_size=3, padding="same"), id="same-k3"),
    pytest.param(2, 1, (5, 6), 3, dict(kernel_size=2, padding="same"), id="same-k2-even"),
    pytest.param(1, 2, (4, 5), 2, dict(kernel_size=(2, 4), padding="same"), id="same-k2x4-batch1"),
    pytest.param(2, 3, (5, 4), 2, dict(kernel_size=(3, 2), padding="valid", bias=False),
                 id="valid-k3x2-nobias"),
    pytest.param(2, 3, (3, 4), 2, dict(kernel_size=1), id="k1"),
    pytest.param(2, 2, (3, 4), 2, dict(kernel_size=(3, 4)), id="kernel-covers-input"),
    pytest.param(2, 2, (9, 8), 3, dict(kernel_size=4, stride=2, padding=1, bias=False),
                 id="k4-s2-p1-nobias"),
    pytest.param(1, 1, (8, 7), 2, dict(kernel_size=2, stride=3), id="s3-gaps"),
    pytest.param(2, 8, (5, 6), 3, dict(kernel_size=3, padding=1), id="c8-k3-s1-p1"),
    pytest.param(1, 16, (4, 5), 2, dict(kernel_size=2, padding="same"), id="c16-same-k2-batch1"),
    pytest.param(2, 8, (7, 6), 3, dict(kernel_size=3, stride=2, padding=1, bias=False),
                 id="c8-k3-s2-p1-nobias"),
]


def make_conv(c, o, kw, rng):
    return bp.Conv2d(c, o, rng=rng, dtype=np.float64, **kw)


def torch_conv(conv):
    """F.conv2d with the layer's settings ('same' and 'valid' passed to torch as such)."""
    pad = conv.padding

    def fn(tx, w, b=None):
        return F.conv2d(tx, w, b, stride=conv.stride, padding=pad)
    return fn


@pytest.mark.parametrize("n,c,hw,o,kw", CONV_CASES)
def test_conv2d_gradients_match_central_differences(n, c, hw, o, kw, rng):
    conv = make_conv(c, o, kw, rng)
    assert_gradcheck(conv, rng.normal(size=(n, c, *hw)), rng)


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")
@pytest.mark.parametrize("n,c,hw,o,kw", CONV_CASES)
def test_conv2d_matches_torch_float64(n, c, hw, o, kw, rng):
    conv = make_conv(c, o, kw, rng)
    assert_matches_torch(conv, torch_conv(conv), rng.normal(size=(n, c, *hw)), rng)


@pytest.mark.parametrize("k,s,p,hw", [(3, 1, 0, (6, 7)), (3, 1, 1, (5, 4)), (2, 1, "same", (5, 6)),
                                      ((2, 3), 1, (1, 2), (4, 6)), (3, 2, 1, (8, 7)),
                                      (3, 2, 0, (8, 9)), (2, (3, 2), 0, (8, 7))])
def test_conv2d_dx_is_a_full_correlation_with_the_flipped_kernel(k, s, p, hw, rng):
    """docs/backprop.md: dx_pad = the full stride-1 correlation of dout (with s-1 zeros
    between its pixels) with W flipped in both spatial axes and its in/out axes swapped,
    zero in the rows and columns the floor left out of every window; dx = dx_pad without
    the padding border."""
    conv = bp.Conv2d(3, 2, k, stride=s, padding=p, bias=False, rng=rng, dtype=np.float64)
    (kh, kw), (sh, sw) = conv.kernel_size, conv.stride
    pt, pb, pl, pr = conv.pads()
    x = rng.normal(size=(2, 3, *hw))
    y = conv(x)
    dout = rng.normal(size=y.shape)
    dx = conv.backward(dout)

    oh, ow = y.shape[2:]
    dilated = np.zeros((2, 2, (oh - 1) * sh + 1, (ow - 1) * sw + 1))
    dilated[:, :, ::sh, ::sw] = dout
    flipped = conv.weight.data.transpose(1, 0, 2, 3)[:, :, ::-1, ::-1]     # (C, O, kh, kw)
    full = bp.Conv2d(2, 3, (kh, kw), padding=(kh - 1, kw - 1), bias=False, dtype=np.float64)
    full.weight.data = np.ascontiguousarray(flipped)
    covered = full(dilated)                    # (N, C, (OH-1) s_h + kh, (OW-1) s_w + kw)
    dx_pad = np.zeros((2, 3, hw[0] + pt + pb, hw[1] + pl + pr))
    dx_pad[:, :, :covered.shape[2], :covered.shape[3]] = covered
    assert rel(dx, dx_pad[:, :, pt:pt + hw[0], pl:pl + hw[1]]) < TORCH_TOL


def test_conv2d_scratch_buffers_survive_shape_changes(rng):
    """Train (N=4) -> eval (N=3, then N=4, then other H, W) -> train (N=4) -> train (N=2):
    every result equals a fresh copy of the layer's, so no reused buffer leaks between
    shapes or modes, and a backward after an eval forward is refused."""
    for c, kw in ((3, dict(kernel_size=3, padding=1)), (3, dict(kernel_size=(3, 2), stride=2)),
                  (3, dict(kernel_size=2, padding="same")), (8, dict(kernel_size=3, padding=1))):
        conv = make_conv(c, 4, kw, rng)
        pristine = copy.deepcopy(conv)

        def fresh(x, training, dout=None):
            ref = copy.deepcopy(pristine).train(training)
            y = ref(x)
            return (y,) if dout is None else (y, ref.backward(dout), ref.weight.grad)

        first = rng.normal(size=(4, c, 7, 6))
        y0 = conv(first)
        y0_copy = y0.copy()
        conv.eval()
        for shape in [(3, c, 7, 6), (4, c, 7, 6), (2, c, 5, 9)]:
            x = rng.normal(size=shape)
            assert rel(conv(x), fresh(x, False)[0]) < TORCH_TOL
        with pytest.raises(RuntimeError, match="training mode"):
            conv.backward(np.ones_like(y0))
        conv.train()
        for shape in [(4, c, 7, 6), (2, c, 6, 7)]:
            x = rng.normal(size=shape)
            conv.zero_grad()
            y = conv(x)
            dout = rng.normal(size=y.shape)
            dx = conv.backward(dout)
            for a, b in zip((y, dx, conv.weight.grad), fresh(x, True, dout)):
                assert rel(a, b) < TORCH_TOL
        np.testing.assert_array_equal(y0, y0_copy)        # the first output was not reused


@pytest.mark.parametrize("c,kw", [(2, dict(kernel_size=3)),
                                  (2, dict(kernel_size=(2, 3), padding="same")),
                                  (8, dict(kernel_size=3, padding=1)),
                                  (2, dict(kernel_size=3, stride=2, padding=1))])
def test_conv2d_eval_chunks_equal_the_training_forward(c, kw, rng, monkeypatch):
    """With a 1-byte column budget every example is its own chunk (every column layout,
    uneven sizes): the concatenated chunks equal the one-shot training forward."""
    conv = make_conv(c, 3, kw, rng)
    x = rng.normal(size=(5, c, 7, 6))
    expected = conv(x)
    monkeypatch.setattr(conv_module, "_EVAL_COLS_BYTES", 1)
    assert rel(conv.eval()(x), expected) < TORCH_TOL


def test_conv2d_eval_chunks_a_large_batch(rng):
    """A real case above the 32 MiB column budget: 45 images of 32x28x28, 3x3 kernel,
    float64 (1.7 MB of columns per image, 75 MB for the batch): the eval forward equals
    the one-shot training forward, and its memory peak stays near the budget."""
    conv = bp.Conv2d(32, 4, 3, rng=rng, dtype=np.float64)
    x = rng.normal(size=(45, 32, 28, 28))
    cols_bytes = x.shape[0] * 32 * 3 * 3 * 26 * 28 * x.itemsize
    budget = conv_module._EVAL_COLS_BYTES
    assert cols_bytes > 2 * budget
    expected = copy.deepcopy(conv)(x)        # a copy: conv's own scratch stays unallocated
    conv.eval()
    tracemalloc.start()
    try:
        y = conv(x)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert rel(y, expected) < TORCH_TOL
    assert peak < 1.5 * budget < cols_bytes


# -- pooling --------------------------------------------------------------------------
# ((N, C, H, W), pool keyword arguments)
POOL_CASES = [
    pytest.param((2, 3, 6, 8), dict(kernel_size=2), id="k2-s2"),
    pytest.param((1, 2, 7, 5), dict(kernel_size=2, stride=2), id="k2-s2-odd-floor-batch1"),
    pytest.param((2, 2, 7, 9), dict(kernel_size=3, stride=2), id="k3-s2-overlap"),
    pytest.param((2, 2, 5, 6), dict(kernel_size=(2, 3), stride=1), id="k2x3-s1"),
    pytest.param((2, 1, 8, 7), dict(kernel_size=2, stride=3), id="k2-s3-gaps"),
    pytest.param((1, 2, 6, 7), dict(kernel_size=(3, 2), stride=(1, 2)), id="k3x2-s1x2"),
]
POOLS = {bp.MaxPool2d: F.max_pool2d, bp.AvgPool2d: F.avg_pool2d}


@pytest.mark.parametrize("cls", list(POOLS), ids=lambda c: c.__name__)
@pytest.mark.parametrize("shape,kw", POOL_CASES)
def test_pool_gradients_match_central_differences(cls, shape, kw, rng):
    """Random normal inputs: no ties, and no two taps within 1e-6 of each other, so the
    max is differentiable at x."""
    assert_gradcheck(cls(**kw), rng.normal(size=shape), rng)


@pytest.mark.parametrize("cls", list(POOLS), ids=lambda c: c.__name__)
@pytest.mark.parametrize("shape,kw", POOL_CASES)
def test_pool_matches_torch_float64(cls, shape, kw, rng):
    pool = cls(**kw)

    def fn(tx):
        return POOLS[cls](tx, pool.kernel_size, pool.stride)
    assert_matches_torch(pool, fn, rng.normal(size=shape), rng)


def test_pool_floor_drops_the_last_row_and_column(rng):
    """7x5 under 2x2/2: row 6 and column 4 are in no window, so their gradient is 0."""
    for pool in (bp.MaxPool2d(2), bp.AvgPool2d(2)):
        x = rng.normal(size=(2, 3, 7, 5))
        y = pool(x)
        assert y.shape == (2, 3, 3, 2)
        dx = pool.backward(rng.normal(size=y.shape))
        assert not dx[:, :, 6, :].any() and not dx[:, :, :, 4].any()
        assert np.count_nonzero(dx[:, :, :6, :4]) > 0


TIE_INPUTS = {
    "all-zero": lambda rng, shape: np.zeros(shape),
    "three-values": lambda rng, shape: rng.integers(0, 3, shape).astype(np.float64),
    "two-values-negative": lambda rng, shape: -rng.integers(0, 2, shape).astype(np.float64),
    "all-minus-inf": lambda rng, shape: np.full(shape, -np.inf),
}


@pytest.mark.parametrize("make_x", list(TIE_INPUTS.values()), ids=list(TIE_INPUTS))
@pytest.mark.parametrize("shape,kw", POOL_CASES)
def test_maxpool_ties_route_like_torch(make_x, shape, kw, rng):
    """A central difference at a tie is not a gradient (it gives 1/2 to each tied tap), so
    ties are checked against torch's CPU kernel instead: the whole dout goes to the first
    maximal tap in row-major order, and overlapping windows add up. dout holds integers,
    so every sum is exact whatever its order and the comparison is bit for bit."""
    pool = bp.MaxPool2d(**kw)
    x = make_x(rng, shape)
    y = pool(x)
    dout = rng.integers(1, 1 << 20, size=y.shape).astype(np.float64)
    dx = pool.backward(dout)
    ty, tdx, _ = theirs(lambda tx: F.max_pool2d(tx, pool.kernel_size, pool.stride), x, [], dout)
    np.testing.assert_array_equal(y, ty)
    np.testing.assert_array_equal(dx, tdx)


def test_maxpool_ties_go_to_the_first_tap_by_hand():
    """2x2 windows, row-major taps (0,0) (0,1) (1,0) (1,1):
    [[5, 5], [5, 5]] -> tap (0,0);  [[1, 3], [3, 0]] -> tap (0,1);  [[0, 0], [2, 2]] -> (1,0)."""
    x = np.array([[[[5, 5, 1, 3, 0, 0],
                    [5, 5, 3, 0, 2, 2]]]], dtype=np.float64)
    pool = bp.MaxPool2d(2)
    np.testing.assert_array_equal(pool(x), [[[[5, 3, 2]]]])
    dx = pool.backward(np.array([[[[1.0, 2.0, 3.0]]]]))
    np.testing.assert_array_equal(dx, [[[[1, 0, 0, 2, 0, 0],
                                          [0, 0, 0, 0, 3, 0]]]])


def test_maxpool_propagates_nan_like_torch(rng):
    """A NaN anywhere in a window, first tap or last, makes that output NaN; the others
    are untouched."""
    x = rng.normal(size=(2, 2, 7, 9))
    x[0, 0, 0, 0] = np.nan          # first tap of window (0, 0)
    x[0, 1, 4, 6] = np.nan          # a tap inside two overlapping windows
    x[1, 0, 6, 8] = np.nan          # the last tap of the last window
    x[1, 1, 2, 3] = np.inf
    x[1, 1, 2, 4] = np.nan          # after an inf in the same window
    for kw in (dict(kernel_size=3, stride=2), dict(kernel_size=2, stride=1),
               dict(kernel_size=(2, 3), stride=2)):
        pool = bp.MaxPool2d(**kw)
        y = pool(x)
        ty = F.max_pool2d(torch.from_numpy(x), pool.kernel_size, pool.stride).numpy()
        assert np.isnan(y).sum() >= 3
        np.testing.assert_array_equal(np.isnan(y), np.isnan(ty))
        np.testing.assert_array_equal(y[~np.isnan(y)], ty[~np.isnan(ty)])


@pytest.mark.parametrize("shape", [(2, 3, 4, 5), (1, 2, 1, 3), (3, 1, 7, 2)])
def test_global_avg_pool(shape, rng):
    x = rng.normal(size=shape)
    assert_gradcheck(bp.GlobalAvgPool2d(), x, rng)
    assert_matches_torch(bp.GlobalAvgPool2d(), lambda tx: tx.mean(dim=(2, 3)), x, rng)


# -- BatchNorm2d and Dropout2d --------------------------------------------------------
def make_bn(c, rng, training):
    bn = bp.BatchNorm2d(c, momentum=0.3, dtype=np.float64)
    bn.weight.data = rng.normal(size=c)
    bn.bias.data = rng.normal(size=c)
    bn.running_mean[:] = rng.normal(size=c)
    bn.running_var[:] = rng.random(c) + 0.5
    return bn.train(training)


BN_CASES = [
    pytest.param((3, 2, 4, 3), True, id="train"),
    pytest.param((1, 3, 2, 3), True, id="train-batch1"),    # m = H*W = 6 values per channel
    pytest.param((2, 1, 1, 2), True, id="train-m2"),
    pytest.param((3, 2, 4, 3), False, id="eval"),
    pytest.param((1, 3, 2, 1), False, id="eval-batch1"),
]


@pytest.mark.parametrize("shape,training", BN_CASES)
def test_batchnorm2d_gradients_match_central_differences(shape, training, rng):
    bn = make_bn(shape[1], rng, training)
    assert_gradcheck(bn, rng.normal(size=shape) * 2 + 1, rng)


@pytest.mark.parametrize("shape,training", BN_CASES)
def test_batchnorm2d_matches_torch_float64(shape, training, rng):
    """Forward, dx, dgamma, dbeta and the running statistics (unbiased variance over
    m = N*H*W values per channel in training)."""
    bn = make_bn(shape[1], rng, training)
    rm, rv = torch.tensor(bn.running_mean), torch.tensor(bn.running_var)

    def fn(tx, gamma, beta):
        return F.batch_norm(tx, rm, rv, gamma, beta, training=training,
                            momentum=bn.momentum, eps=bn.eps)
    assert_matches_torch(bn, fn, rng.normal(size=shape) * 2 + 1, rng)
    assert rel(bn.running_mean, rm.numpy()) < TORCH_TOL
    assert rel(bn.running_var, rv.numpy()) < TORCH_TOL


@pytest.mark.parametrize("shape", [(3, 4, 2, 3), (1, 5, 3, 1)])
def test_dropout2d_gradient_with_a_frozen_mask(shape, rng):
    """gradcheck freezes the mask (freeze_mask), so L is one fixed function of x."""
    assert_gradcheck(bp.Dropout2d(0.5, rng=rng.integers(1 << 30)), rng.normal(size=shape), rng)


def test_dropout2d_drops_whole_channels_and_backward_uses_the_same_mask(rng):
    drop = bp.Dropout2d(0.5, rng=3)
    x = rng.random((6, 5, 3, 4)) + 1                        # no zeros of its own
    y = drop(x)
    mask = y / x                                            # m / (1 - p): 0 or 2
    assert np.all(mask == mask[:, :, :1, :1])               # one value per (n, c)
    assert set(np.unique(mask)) == {0.0, 2.0}
    dout = rng.normal(size=x.shape)
    np.testing.assert_array_equal(drop.backward(dout), dout * mask)


# -- inside Sequential ----------------------------------------------------------------
def small_cnn(rng):
    """conv -> relu -> maxpool -> flatten -> linear."""
    return bp.Sequential(bp.Conv2d(2, 3, 3, padding=1, rng=rng), bp.ReLU(), bp.MaxPool2d(2),
                         bp.Flatten(), bp.Linear(3 * 4 * 3, 4, rng=rng), dtype=np.float64)


def every_layer_cnn(rng):
    """Every new layer once: strided non-square conv, BatchNorm2d (training), Dropout2d,
    overlapping AvgPool2d, a 1x1 conv without bias, GlobalAvgPool2d, Linear."""
    # no bias before BatchNorm: the normalisation removes any per-channel constant, so
    # that bias's true gradient is exactly 0 and a relative error of round-off is 1.0
    return bp.Sequential(bp.Conv2d(2, 4, (3, 2), stride=2, padding=1, bias=False, rng=rng),
                         bp.BatchNorm2d(4), bp.ReLU(), bp.Dropout2d(0.3, rng=1),
                         bp.AvgPool2d(2, stride=1), bp.Conv2d(4, 3, 1, bias=False, rng=rng),
                         bp.MaxPool2d((2, 1), stride=1), bp.GlobalAvgPool2d(),
                         bp.Linear(3, 5, rng=rng), dtype=np.float64)


@pytest.mark.parametrize("make,n", [(small_cnn, 3), (small_cnn, 1), (every_layer_cnn, 3)])
def test_cnn_gradients_through_sequential(make, n, rng):
    net = make(rng)
    x = rng.normal(size=(n, 2, 9, 7))
    errs = bp.gradcheck(net, bp.CrossEntropyLoss(), x, rng.integers(0, 4, n), wrt_input=True)
    assert set(errs) == {"input"} | {name for name, _ in net.named_parameters()}
    assert max(errs.values()) < GRAD_TOL, errs


# -- fresh outputs and float32 ------------------------------------------------------
LAYERS = {
    "conv-s1": lambda: bp.Conv2d(3, 4, 3, padding=1, rng=0),
    "conv-same-even": lambda: bp.Conv2d(3, 2, (2, 3), padding="same", bias=False, rng=0),
    "conv-s2": lambda: bp.Conv2d(3, 4, 3, stride=2, rng=0),
    "maxpool": lambda: bp.MaxPool2d(3, stride=2),
    "avgpool": lambda: bp.AvgPool2d((2, 3), stride=1),
    "gap": bp.GlobalAvgPool2d,
    "batchnorm2d": lambda: bp.BatchNorm2d(3),
    "dropout2d": lambda: bp.Dropout2d(0.5, rng=0),
}


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("name", list(LAYERS))
def test_float32_stays_float32(name, training, rng):
    """No silent float64 upcast (NumPy 2 promotion: a float64 scalar array or Python
    float64 operand would promote): outputs, dx and grads of a float32 layer are float32."""
    layer = LAYERS[name]().train(training)
    x = rng.normal(size=(2, 3, 7, 8)).astype(np.float32)
    y = layer(x)
    assert y.dtype == np.float32
    if training:
        dx = layer.backward(rng.normal(size=y.shape).astype(np.float32))
        assert dx.dtype == np.float32
        assert all(p.grad.dtype == np.float32 for p in layer.parameters())
    else:
        assert all(p.dtype == np.float32 for p in layer.parameters())
    if isinstance(layer, bp.BatchNorm2d):
        assert layer.running_mean.dtype == layer.running_var.dtype == np.float32


@pytest.mark.parametrize("name", list(LAYERS))
def test_outputs_and_gradients_are_fresh_arrays(name, rng):
    """A second forward/backward (same shape, other data) leaves the first's y, dx and
    parameter grads untouched: nothing returned is a reused scratch buffer."""
    layer = LAYERS[name]()
    x1, x2 = (rng.normal(size=(2, 3, 7, 8)).astype(np.float32) for _ in range(2))
    y1 = layer(x1)
    dx1 = layer.backward(rng.normal(size=y1.shape).astype(np.float32))
    grads1 = [p.grad for p in layer.parameters()]
    kept = [a.copy() for a in (y1, dx1, *grads1)]
    layer.zero_grad()
    y2 = layer(x2)
    layer.backward(rng.normal(size=y2.shape).astype(np.float32))
    for a, b in zip((y1, dx1, *grads1), kept):
        np.testing.assert_array_equal(a, b)
