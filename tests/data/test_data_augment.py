"""Augmentation: exact geometry on known images, seeded, vectorised over the batch."""
import numpy as np
import pytest

from bareprop.data import Batches, Scaler
from bareprop.data.augment import Augment, _bilinear, make_augment


def test_bilinear_integer_shift_is_exact():
    img = np.arange(25, dtype=np.float32).reshape(1, 5, 5)
    r, q = np.mgrid[0:5, 0:5].astype(np.float32)
    out = _bilinear(img, (r - 1).reshape(1, -1), (q + 2).reshape(1, -1)).reshape(5, 5)
    expected = np.zeros((5, 5), np.float32)
    expected[1:, :3] = img[0, :4, 2:]   # content moves down 1 and left 2, zeros come in
    np.testing.assert_array_equal(out, expected)


def test_bilinear_half_pixel_is_the_mean():
    img = np.array([[[0.0, 2.0], [4.0, 6.0]]], np.float32)
    out = _bilinear(img, np.array([[0.5]], np.float32), np.array([[0.5]], np.float32))
    assert out[0, 0] == pytest.approx(3.0)


def test_zero_magnitudes_are_the_identity():
    x = np.random.default_rng(0).random((4, 784)).astype(np.float32)
    y = Augment(max_shift=0, max_rotate=0)(x, np.random.default_rng(1))
    np.testing.assert_allclose(y, x, atol=1e-6)


def test_rotation_by_90_degrees():
    a = Augment(side=3, max_shift=0, max_rotate=90)

    class Fixed:  # an rng whose uniform() returns the upper bound: +90 degrees, counter-clockwise
        def uniform(self, lo, hi, size):
            return np.full(size, hi, np.float64)

    x = np.arange(9, dtype=np.float32).reshape(1, 9)
    y = a(x, Fixed()).reshape(3, 3)
    np.testing.assert_allclose(y, np.rot90(x.reshape(3, 3), k=1), atol=1e-5)


@pytest.mark.parametrize("name", ["shift", "affine", "elastic"])
def test_seeded_shape_dtype_and_mass(name):
    x = np.zeros((16, 784), np.float32)
    x.reshape(16, 28, 28)[:, 8:20, 8:20] = 1.0
    a = make_augment(name)
    y1, y2 = a(x, np.random.default_rng(5)), a(x, np.random.default_rng(5))
    np.testing.assert_array_equal(y1, y2)
    assert y1.shape == x.shape and y1.dtype == np.float32
    assert not np.array_equal(y1, x)
    assert abs(y1.sum() / x.sum() - 1) < 0.05  # ink is moved, not created or lost


def test_batches_apply_augmentation_per_epoch_seeded():
    x = np.zeros((10, 28, 28), np.uint8)
    x[:, 10:18, 10:18] = 255
    b = Batches(x, np.arange(10), 5, Scaler("unit"), augment=make_augment("affine"), seed=1)
    e0 = [xb.copy() for xb, _ in b.epoch(0)]
    again = [xb for xb, _ in b.epoch(0)]
    e1 = [xb for xb, _ in b.epoch(1)]
    assert all(np.array_equal(p, q) for p, q in zip(e0, again))
    assert not all(np.array_equal(p, q) for p, q in zip(e0, e1))


def test_hflip_mirrors_about_half_the_batch():
    x = np.zeros((200, 784), np.float32)
    x.reshape(200, 28, 28)[:, :, :5] = 1.0            # ink on the left edge
    y = Augment(max_shift=0, hflip=True)(x, np.random.default_rng(0)).reshape(200, 28, 28)
    right = y[:, :, -5:].sum(axis=(1, 2)) > 0
    assert 0.35 < right.mean() < 0.65
    np.testing.assert_allclose(y[right], x.reshape(200, 28, 28)[right][:, :, ::-1], atol=1e-6)
