"""The exact columns' copies compiled for one layer's sizes (fast/colkernels.py): the same
values as the generic pair, bit for bit (NaN and inf copied, col2im's taps added in the
same order), on the examples asked for only; chosen for big layers, once per sizes."""
import numpy as np
import pytest

import bareprop as bp
from bareprop.fast import colkernels, kernels
from bareprop.fast.plan import plan

pytestmark = pytest.mark.skipif(not kernels.available(), reason="numba is not installed")

# (kh, kw, OH, OW): the cnn preset's second layer, odd and one-wide outputs, wide kernels
SIZES = [(3, 3, 14, 14), (3, 3, 5, 7), (2, 3, 1, 9), (5, 5, 3, 1), (1, 1, 4, 4), (3, 1, 6, 2)]


def _hostile(shape, rng):
    a = rng.standard_normal(shape).astype(np.float32)
    flat = a.reshape(-1)
    flat[rng.choice(flat.size, 5, replace=False)] = [np.nan, np.inf, -np.inf, np.nan, 0.0]
    return a


@pytest.mark.parametrize("kh, kw, oh, ow", SIZES)
def test_the_sized_pair_copies_and_adds_as_the_generic_pair(kh, kw, oh, ow, monkeypatch):
    monkeypatch.setattr(colkernels, "SIZED_VALUES", 0)
    rng = np.random.default_rng(kh * 100 + ow)
    n, c = 5, 3
    hp, wp = oh + kh - 1, ow + kw - 1
    im2col, col2im = colkernels.for_sizes((n, c, hp, wp), (kh, kw), 1)
    assert im2col is not colkernels.im2col_exact
    xp = _hostile((n, c, hp, wp), rng)
    want = np.full((c, kh, kw, n, oh * ow), 7, np.float32)     # 7: examples not asked for
    got = want.copy()
    colkernels.im2col_exact(xp, want, 1, 4)
    im2col(xp, got, 1, 4)
    np.testing.assert_array_equal(got, want)
    assert (got[:, :, :, [0, 4]] == 7).all()
    dcols = _hostile(want.shape, rng)
    base = rng.standard_normal((c, n, hp, wp)).astype(np.float32)      # added onto
    want_dx, got_dx = base.copy(), base.copy()
    colkernels.col2im_exact(dcols, want_dx, 2, 5)
    col2im(dcols, got_dx, 2, 5)
    np.testing.assert_array_equal(got_dx, want_dx)                  # same order of adds
    np.testing.assert_array_equal(got_dx[:, :2], base[:, :2])


def test_small_layers_keep_the_generic_pair_and_sizes_compile_once(monkeypatch):
    shape, kernel = (4, 2, 9, 9), (3, 3)
    small = colkernels.for_sizes(shape, kernel, colkernels.SIZED_VALUES - 1)
    assert small == (colkernels.im2col_exact, colkernels.col2im_exact)
    big = colkernels.for_sizes(shape, kernel, colkernels.SIZED_VALUES)
    assert big[0] is not colkernels.im2col_exact
    assert colkernels.for_sizes((64, 8, 9, 9), kernel, 1 << 30) is big     # same sizes


def test_a_pair_that_cannot_compile_warns_and_the_generic_pair_serves(monkeypatch):
    def broken(*sizes):
        raise RuntimeError("no LLVM today")
    monkeypatch.setattr(colkernels, "_pair", broken)
    monkeypatch.setattr(colkernels, "_sized", {})
    with pytest.warns(RuntimeWarning, match="could not compile im2col for 6x6 outputs"):
        pair = colkernels.for_sizes((1, 1, 8, 8), (3, 3), 1 << 30)
    assert pair == (colkernels.im2col_exact, colkernels.col2im_exact)


def test_a_big_layer_trains_on_its_sized_pair(monkeypatch):
    """A block on exact columns (32 channels in, stride 1) at the size threshold: its
    training step compiles and uses the pair for its sizes, and equals the reference."""
    monkeypatch.setattr(colkernels, "SIZED_VALUES", 0)
    monkeypatch.setattr(colkernels, "_sized", {})
    model = bp.Sequential(bp.Conv2d(32, 8, 3, padding=1, rng=1), bp.ReLU())
    x = np.random.default_rng(3).standard_normal((4, 32, 7, 9)).astype(np.float32)
    net = plan(model, bp.CrossEntropyLoss()).net
    y = net.forward(x)
    dx = net.input_grad(np.ones_like(y))
    assert net.layers[0]._exact and (3, 3, 7, 9) in colkernels._sized
    ref = model.forward(x)
    np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(dx, model.input_grad(np.ones_like(ref)), rtol=1e-5, atol=1e-5)
