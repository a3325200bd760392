"""The compiled augmentation (fast/augment.py) draws what the NumPy one draws and samples
it to the same bits: every preset, odd and tiny sizes, NaN and inf pixels, both paths
from the same seed."""
import numpy as np
import pytest

from bareprop.data.augment import PRESETS, Augment, make_augment
from bareprop.fast import kernels
from bareprop.fast.augment import CompiledAugment, compiled

pytestmark = pytest.mark.skipif(not kernels.available(), reason="numba not installed")

CASES = [(name, side, b) for name, kw in PRESETS.items() if kw is not None
         for side, b in ((28, 17), (5, 3), (2, 2), (1, 1))]


@pytest.mark.parametrize("name,side,b", CASES)
def test_compiled_sampling_is_the_numpy_sampling_bit_for_bit(name, side, b):
    aug = Augment(side, **PRESETS[name])
    x = np.random.default_rng(side).standard_normal((b, side * side)).astype(np.float32) * 3
    x[0, :3] = [np.nan, np.inf, -np.inf][:side * side]             # hostile pixels
    with np.errstate(invalid="ignore"):
        want = aug(x, np.random.default_rng(7))
    got = compiled(aug, np.float32)(x, np.random.default_rng(7))
    assert got.shape == x.shape and got.dtype == np.float32
    np.testing.assert_array_equal(got, want)                       # NaN where NumPy has NaN


def test_image_shaped_batches_and_strided_inputs():
    aug = Augment(28, **PRESETS["affine"])
    x = np.random.default_rng(0).random((8, 1, 28, 56)).astype(np.float32)[..., ::2]
    got = compiled(aug, np.float32)(x, np.random.default_rng(1))
    assert got.shape == (8, 1, 28, 28)
    np.testing.assert_array_equal(got, aug(np.ascontiguousarray(x), np.random.default_rng(1)))


def test_large_rotations_and_shifts_read_only_the_frame():
    # sources far outside the image: zeros, never a read outside the buffer
    aug = Augment(6, max_shift=40.0, max_rotate=180.0, elastic_alpha=50.0)
    x = np.ones((64, 36), np.float32)
    got = compiled(aug, np.float32)(x, np.random.default_rng(3))
    np.testing.assert_array_equal(got, aug(x, np.random.default_rng(3)))
    assert (got == 0).any() and np.isfinite(got).all()


def test_float64_and_numpy_mode_keep_the_numpy_augment():
    aug = make_augment("affine")
    assert compiled(None, np.float32) is None
    assert compiled(aug, np.float64) is aug
    old = kernels.use("numpy")
    try:
        assert compiled(aug, np.float32) is aug
    finally:
        kernels.use(old)
    wrapped = compiled(aug, np.float32)
    assert isinstance(wrapped, CompiledAugment) and wrapped.max_rotate == aug.max_rotate
    x = np.random.default_rng(0).random((4, 784))                  # float64 through it
    np.testing.assert_array_equal(wrapped(x, np.random.default_rng(2)),
                                  aug(x, np.random.default_rng(2)))
