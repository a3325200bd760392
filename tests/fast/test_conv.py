"""The compiled convolution epilogues (fast/convkernels.py, fast/conv.py) against the
reference chain Conv2d -> ReLU -> MaxPool2d (core/): the same GEMMs run in both, so the
block's output, dx and every gradient must equal the reference's bit for bit (NaN where
its NaN), on hostile values (NaN, +-inf in the input and in the gradient), pooling ties
(integer data: many equal maxima, zeros from the ReLU), odd sizes, stride 2, padding,
no bias, batch 1, both column layouts; eval mode in chunks; the plan rule that picks it;
and training steps that follow the reference's."""
import numpy as np
import pytest

import bareprop as bp
from bareprop import optim
from bareprop.core import conv as conv_module
from bareprop.fast import cblas, colkernels, convsplit, kernels, plan
from bareprop.fast.conv import FastConvBlock
from fastpath import assert_training_follows_the_reference

pytestmark = pytest.mark.skipif(not kernels.available(), reason="numba is not installed")


@pytest.fixture
def k(monkeypatch):
    monkeypatch.setattr(kernels, "_choice", None)
    kernels.use("auto")
    return kernels.compiled()


@pytest.fixture
def split(request, monkeypatch):
    """1: the block as it runs on one thread; 3: every pass split over three threads
    (fast/convsplit.py), whatever the block's size and BLAS's thread count here, and the
    exact columns' copies compiled for each layer's sizes (colkernels.for_sizes)."""
    parts = request.param
    if parts > 1:
        monkeypatch.setattr(colkernels, "SIZED_VALUES", 0)
        blas = cblas.load(np.float32)
        if blas is None or blas.threads() is None:
            pytest.skip("NumPy's BLAS cannot be called here (fast/cblas.py)")
        monkeypatch.setattr(convsplit, "team_for",
                            lambda n, values, dtype: convsplit.Team(min(parts, n), blas))
    return parts


def _block(c, o, ksize, stride, pad, bias, relu, pool, dtype="float32", bn=False):
    """pool: False, True (a 2x2 max pool) or "avg" (a 2x2 average pool)."""
    layers = [bp.Conv2d(c, o, ksize, stride=stride, padding=pad, bias=bias, rng=1, dtype=dtype)]
    layers += [bp.BatchNorm2d(o, dtype=dtype)] if bn else []
    layers += [bp.ReLU()] if relu else []
    layers += [bp.AvgPool2d(2) if pool == "avg" else bp.MaxPool2d(2)] if pool else []
    return bp.Sequential(*layers)


def _data(rng, shape, kind):
    """Inputs: "normal"; "ties": small integers (with integer weights: exact sums, many
    equal maxima and exact zeros); "hostile": normal with NaN, +inf and -inf planted."""
    if kind == "ties":
        return rng.integers(-2, 3, shape).astype(np.float32)
    x = rng.standard_normal(shape).astype(np.float32)
    if kind == "hostile":
        x[0, 0, 1, 1] = np.nan
        x[-1, -1, -2, -3] = np.inf
        x[-1, 0, 0, -1] = -np.inf
    return x


def _run(net, model, x, dout):
    model.zero_grad()
    y = net.forward(x).copy()
    dx = net.backward(dout, need_dx=True).copy()
    return [y, dx] + [p.grad.copy() for p in model.parameters()]


CASES = [  # (C, O, kernel, stride, padding, bias, relu, pool, N, H, W)
    (1, 4, 3, 1, 0, True, True, True, 5, 12, 12),      # the benchmark CNN's first block
    (2, 3, 3, 1, 1, True, True, True, 1, 9, 11),       # odd sizes, padding, batch 1
    (3, 5, 3, 2, 1, False, True, True, 2, 13, 13),     # stride 2 (strided columns), no bias
    (1, 4, 2, 1, 0, True, False, True, 3, 9, 9),       # pool without a ReLU, even kernel
    (16, 8, 3, 1, 1, True, True, False, 2, 7, 6),      # ReLU alone, channel-major columns
    (16, 8, 3, 1, 0, True, True, True, 3, 11, 10),     # channel-major, odd conv output
    (1, 4, 3, 1, 0, True, True, "avg", 3, 11, 12),     # ReLU then a 2x2 average pool
    (16, 8, 3, 2, 1, False, False, "avg", 2, 13, 11),  # the average alone, stride 2
]


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("kind", ["normal", "ties", "hostile"])
@pytest.mark.parametrize("split", [1, 3], indirect=True)
def test_block_equals_the_reference_chain_bit_for_bit(k, case, kind, split):
    *layer, n, h, w = case
    model = _block(*layer)
    conv = model.layers[0]
    rng = np.random.default_rng(len(kind) + n * h)
    if kind == "ties":
        conv.weight.data[...] = rng.integers(-1, 2, conv.weight.shape)
    net = plan(model, bp.CrossEntropyLoss()).net
    assert isinstance(net.layers[0], FastConvBlock) and len(net.layers) == 1
    x = _data(rng, (n, layer[0], h, w), kind)
    out_shape = (n,) + model.output_shape((layer[0], h, w))
    dout = _data(rng, out_shape, "ties" if kind == "ties" else "normal")
    if kind == "hostile":
        dout.reshape(-1)[[0, -1]] = [np.inf, np.nan]
    with np.errstate(invalid="ignore", over="ignore"):
        want = _run(model, model, x, dout)
        got = _run(net, model, x, dout)
    assert net.layers[0]._team.parts == min(split, n)
    exact = net.layers[0]._exact                  # exact columns: channel-major, stride 1
    assert exact == (layer[3] == 1 and layer[0] * layer[2] ** 2 >= 64)
    for i, (g, w_) in enumerate(zip(got, want)):
        assert g.shape == w_.shape and g.dtype == w_.dtype
        if split == 1 and not exact:
            np.testing.assert_array_equal(g, w_)        # NaN where the reference's NaN
        elif exact and kind == "hostile" and i >= 2:    # the gradients (y, dx: as below)
            # the reference's shifted rows read pixels of the next row into columns whose
            # delta is 0, and 0 x NaN is NaN: its dW has NaN where no output touched the
            # NaN pixel. Exact columns have no such entries: a NaN only where it has one
            both = np.isnan(g) & np.isnan(w_)
            np.testing.assert_array_equal(np.isnan(g), both)
            keep = ~np.isnan(w_)
            _assert_close(g[keep], w_[keep], _scale([w_]))
        else:     # a GEMM of other columns, or a block of them, rounds its own way
            _assert_close(g, w_, _scale([w_]))
    if kind == "ties" and layer[-1] is True:   # the data tied: windows with a repeated max
        a = model.layers[0].forward(x)
        a = np.maximum(a, 0) if layer[-2] else a
        a = a[:, :, :a.shape[2] // 2 * 2, :a.shape[3] // 2 * 2]
        win = a.reshape(a.shape[0], a.shape[1], a.shape[2] // 2, 2, -1, 2)
        assert ((win == win.max(axis=(3, 5), keepdims=True)).sum(axis=(3, 5)) > 1).any()
    if kind == "hostile":
        assert np.isnan(got[0]).any() and np.isfinite(got[0]).any()


def test_eval_forward_runs_in_chunks_and_keeps_no_cache(k, monkeypatch):
    model = _block(2, 6, 3, 1, 1, True, True, True)
    net = plan(model, bp.CrossEntropyLoss()).net
    x = np.random.default_rng(0).standard_normal((9, 2, 10, 10)).astype(np.float32)
    model.eval()
    want = model.forward(x)
    monkeypatch.setattr(conv_module, "_EVAL_COLS_BYTES", 2 * 24 * 120 * 4)   # 2 a chunk
    calls = []
    gemm = net.layers[0]._gemm                     # the block's GEMM, once per chunk
    monkeypatch.setattr(net.layers[0], "_gemm", lambda part: calls.append(len(part)) or
                        gemm(part))
    np.testing.assert_array_equal(net.forward(x), want)
    assert calls == [2, 2, 2, 2, 2]               # one size: the last from 7 (core/scratch.py)
    with pytest.raises(RuntimeError, match="training mode"):
        net.layers[0].input_grad(np.ones_like(want))


def test_float64_or_no_kernels_run_the_reference_layers(k):
    model = _block(1, 3, 3, 1, 0, True, True, True, dtype="float64")
    block = FastConvBlock(*model.layers)
    x = np.random.default_rng(1).standard_normal((2, 1, 8, 8))
    dout = np.random.default_rng(2).standard_normal((2, 3, 3, 3))
    want = _run(model, model, x, dout)
    got = _run(bp.Sequential(block), model, x, dout)
    for g, w_ in zip(got, want):
        np.testing.assert_array_equal(g, w_)


BN_CASES = [  # as CASES, a BatchNorm2d after the conv
    (1, 4, 3, 1, 1, False, True, True, 4, 12, 12),     # the cnn preset's first block
    (16, 8, 3, 1, 1, False, True, True, 2, 7, 7),      # its second: channel-major, odd
    (2, 3, 3, 2, 0, True, False, False, 3, 9, 10),     # conv + batch norm alone, stride 2
    (3, 5, 3, 1, 0, True, True, False, 1, 8, 9),       # batch 1, no pool
]


def _assert_close(got, want, scale):
    """Equal within float32 rounding of values of about ``scale``: the same NaN and inf,
    the rest close."""
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    inf = np.isinf(want)
    np.testing.assert_array_equal(got[inf], want[inf])
    fin = np.isfinite(want)
    np.testing.assert_allclose(got[fin], want[fin], rtol=1e-4, atol=1e-5 * scale)


def _scale(arrays):
    return max(np.abs(a[np.isfinite(a)]).max(initial=0.0) for a in arrays) or 1.0


@pytest.mark.parametrize("case", BN_CASES)
@pytest.mark.parametrize("kind", ["normal", "ties", "hostile"])
@pytest.mark.parametrize("split", [1, 3], indirect=True)
def test_block_with_batch_norm_equals_the_reference_chain(k, case, kind, split):
    *layer, n, h, w = case
    model = _block(*layer, bn=True)
    conv, bn = model.layers[:2]
    rng = np.random.default_rng(len(kind) + n * h)
    if kind == "ties":
        conv.weight.data[...] = rng.integers(-1, 2, conv.weight.shape)
    bn.weight.data[...] = rng.uniform(0.5, 2, bn.weight.shape)
    bn.bias.data[...] = rng.uniform(-1, 1, bn.bias.shape)
    net = plan(model, bp.CrossEntropyLoss()).net
    assert isinstance(net.layers[0], FastConvBlock) and len(net.layers) == 1
    x = _data(rng, (n, layer[0], h, w), kind)
    x[..., 1, :] += 3.0 * (kind != "hostile")        # a mean far from 0: centring matters
    dout = _data(rng, (n,) + model.output_shape((layer[0], h, w)), "normal")
    if kind == "hostile":
        dout.reshape(-1)[[0, -1]] = [np.inf, np.nan]
    runs = []
    for chain in (model, net):
        bn.running_mean[...], bn.running_var[...] = 0.5, 2.0
        with np.errstate(invalid="ignore", over="ignore"):
            runs.append(_run(chain, model, x, dout) + [bn.running_mean.copy(),
                                                       bn.running_var.copy()])
    want, got = runs
    # the conv's bias gradient through batch norm is 0 up to rounding: its rounding is
    # that of the sum of dL/dz, whose terms are as large as the other gradients
    grads = _scale(want[2:-2])
    for i, (g, w_) in enumerate(zip(got, want)):
        assert g.shape == w_.shape and g.dtype == w_.dtype
        _assert_close(g, w_, grads if 2 <= i < len(want) - 2 else _scale([w_]))
    if kind == "hostile":           # a NaN reaches every channel it touches: all of them
        assert np.isnan(got[0]).any()
    model.eval()                                     # eval: the running statistics
    x = _data(rng, x.shape, "normal")
    np.testing.assert_allclose(net.forward(x), model.forward(x), rtol=1e-5, atol=1e-6)


def test_batch_norm_in_a_block_needs_more_than_one_value_per_channel(k):
    from bareprop.errors import ConfigError
    model = _block(1, 2, 3, 1, 0, True, True, False, bn=True)
    net = plan(model, bp.CrossEntropyLoss()).net
    with pytest.raises(ConfigError, match="more than 1 value per channel"):
        net.forward(np.ones((1, 1, 3, 3), np.float32))


def _kinds(net):
    return [type(u).__name__ for u in net.layers]


def test_plan_fuses_conv_relu_pool_where_it_may(k):
    loss = bp.CrossEntropyLoss()
    model = bp.Sequential(bp.Conv2d(1, 4, 3, rng=0), bp.BatchNorm2d(4), bp.ReLU(),
                          bp.MaxPool2d(2),
                          bp.Conv2d(4, 4, 3, rng=0), bp.MaxPool2d(2),
                          bp.Conv2d(4, 4, 1, rng=0), bp.ReLU(), bp.MaxPool2d(3),
                          bp.Conv2d(4, 4, 1, rng=0), bp.AvgPool2d(2),
                          bp.Conv2d(4, 4, 1, rng=0), bp.Flatten())
    net = plan(model, loss).net
    assert _kinds(net) == ["FastConvBlock", "FastConvBlock", "FastConvBlock", "MaxPool2d",
                           "FastConvBlock", "Conv2d", "Flatten"]
    assert [len(u.stands_for()) for u in net.layers if isinstance(u, FastConvBlock)] == \
        [4, 2, 2, 2]
    assert _kinds(plan(_block(1, 2, 3, 1, 0, True, True, True, "float64"), loss).net) == \
        ["Conv2d", "ReLU", "MaxPool2d"]                          # float64: the reference

    class MyConv(bp.Conv2d):
        pass
    mine = bp.Sequential(MyConv(1, 2, 3, rng=0), bp.ReLU(), bp.MaxPool2d(2))
    assert _kinds(plan(mine, loss).net) == ["MyConv", "FastReLU", "MaxPool2d"]
    clipped = bp.Sequential(bp.Conv2d(1, 2, 3, rng=0), bp.ReLU(), clip_delta=1.0)
    assert _kinds(plan(clipped, loss).net)[0] == "Conv2d"      # hooks see each layer
    kernels.use("numpy")
    assert _kinds(plan(_block(1, 2, 3, 1, 0, True, True, True), loss).net) == \
        ["Conv2d", "ReLU", "MaxPool2d"]


def test_training_follows_the_reference_steps(k):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((32, 1, 14, 14)).astype(np.float32)

    def build():
        r = np.random.default_rng(0)
        return bp.Sequential(bp.Conv2d(1, 6, 3, rng=r), bp.ReLU(), bp.MaxPool2d(2),
                             bp.Conv2d(6, 8, 3, padding=1, rng=r), bp.ReLU(),
                             bp.MaxPool2d(2), bp.Flatten(), bp.Linear(72, 10, rng=r))
    assert_training_follows_the_reference(
        build, lambda params: optim.SGD(params, lr=0.05, momentum=0.9), x,
        rng.integers(0, 10, 32), steps=25, unit="FastConvBlock", learns=0.5)


@pytest.mark.parametrize("split", [1, 3], indirect=True)
def test_evaluate_and_predict_proba_run_the_fast_forward(k, monkeypatch, split):
    from bareprop.inference import predict_proba
    from bareprop.train.loop import evaluate

    r = np.random.default_rng(0)
    model = bp.Sequential(bp.Conv2d(1, 4, 3, rng=r), bp.BatchNorm2d(4), bp.ReLU(),
                          bp.MaxPool2d(2), bp.Flatten(), bp.Linear(36, 3, rng=r))
    x = r.standard_normal((20, 1, 8, 8)).astype(np.float32)
    y = r.integers(0, 3, 20)
    model.layers[1].running_mean[...] = 0.3                   # eval: running statistics
    runs, forward = {}, FastConvBlock.forward
    for accel in ("numpy", "auto"):
        kernels.use(accel)
        calls = []
        monkeypatch.setattr(FastConvBlock, "forward",
                            lambda self, a: calls.append(len(a)) or forward(self, a))
        runs[accel] = (evaluate(model, bp.CrossEntropyLoss(), (x, y), batch_size=8),
                       predict_proba(model, x, batch_size=8), calls)
    (e0, p0, c0), (e1, p1, c1) = runs["numpy"], runs["auto"]
    assert c0 == [] and c1 == [8, 8, 4, 8, 8, 4]           # evaluate's batches, then predict's
    np.testing.assert_allclose(p1, p0, rtol=1e-5, atol=1e-7)
    assert e1.accuracy == e0.accuracy and abs(e1.loss - e0.loss) < 1e-5
    assert model.training                                    # left in the mode it was in


def test_a_split_pass_covers_the_batch_once_and_blas_is_held_for_the_step():
    blas = cblas.load(np.float32)
    if blas is None or blas.threads() is None:
        pytest.skip("NumPy's BLAS cannot be called here (fast/cblas.py)")
    before, seen = blas.threads(), []
    blas.set_threads(3)
    try:
        assert convsplit.team_for(128, 1 << 20, np.float32).parts == 1   # not held: as before
        with pytest.raises(ValueError, match="range 2 failed"):
            with convsplit.hold(np.float32):
                assert blas.threads() == 1
                team = convsplit.team_for(10, 1 << 20, np.float32)
                assert team.parts == 3
                assert convsplit.team_for(10, 100, np.float32).parts == 1   # too small
                assert convsplit.team_for(2, 1 << 20, np.float32).parts == 2

                def part(i, lo, hi):
                    seen.append((i, lo, hi))
                    if i == 2:
                        raise ValueError("range 2 failed")
                team.run(part, 10)
        assert sorted(seen) == [(0, 0, 3), (1, 3, 6), (2, 6, 10)]     # each range once
        assert blas.threads() == 3                                    # given back
        assert team.ranges(2) == [(0, 1), (1, 2)]                     # never an empty one
    finally:
        blas.set_threads(before)


def test_only_a_convnet_holds_blas_at_one_thread_for_its_step(k):
    """plan's rule for convsplit.hold: conv blocks and nothing else that leans on BLAS's
    threads (an unfused conv would run its GEMMs on one core)."""
    r = np.random.default_rng(0)
    convnet = bp.Sequential(bp.Conv2d(1, 4, 3, rng=r), bp.BatchNorm2d(4), bp.ReLU(),
                            bp.MaxPool2d(2), bp.Flatten(), bp.Dropout(0.5),
                            bp.Linear(4 * 13 * 13, 3, rng=r))
    unfused = bp.Sequential(bp.Conv2d(1, 4, 3, rng=r), bp.ReLU(), bp.Conv2d(4, 4, 3, rng=r),
                            bp.Tanh(), bp.Flatten(), bp.Linear(4 * 24 * 24, 3, rng=r))
    mlp = bp.Sequential(bp.Flatten(), bp.Linear(784, 10, rng=r), bp.ReLU())
    held = {name: plan(m, bp.CrossEntropyLoss()).conv_blocks
            for name, m in (("convnet", convnet), ("unfused", unfused), ("mlp", mlp))}
    assert held == {"convnet": True, "unfused": False, "mlp": False}


@pytest.mark.parametrize("split", [1, 3], indirect=True)
@pytest.mark.parametrize("order", ["dx only", "grads then dx"])
def test_batch_norm_dx_folded_into_the_dw_pass_is_applied_once_in_any_order(k, split, order):
    """Batch norm's dx completes the conv's delta inside the dW pass (accumulate_grads) or,
    when dx is asked for first or alone (an explanation's input gradient), before it."""
    model = _block(16, 8, 3, 1, 1, False, True, True, bn=True)
    rng = np.random.default_rng(5)
    x = rng.standard_normal((4, 16, 9, 9)).astype(np.float32) + 2.0
    dout = rng.standard_normal((4, 8, 4, 4)).astype(np.float32)
    model.zero_grad()
    model.forward(x)
    want = model.backward(dout, need_dx=True)
    want_w = model.layers[0].weight.grad.copy()
    block = plan(model, bp.CrossEntropyLoss()).net.layers[0]
    model.zero_grad()
    block.forward(x)
    if order == "grads then dx":
        block.accumulate_grads(dout)
        _assert_close(model.layers[0].weight.grad, want_w, _scale([want_w]))
    got = block.input_grad(dout)
    _assert_close(got, want, _scale([want]))
    if order == "dx only":                     # and a later dW uses the completed delta
        block.accumulate_grads(dout)
        _assert_close(model.layers[0].weight.grad, want_w, _scale([want_w]))
