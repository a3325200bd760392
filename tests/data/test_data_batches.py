"""Batching and scaling: every example each epoch, seeded order, exact scaling."""
import numpy as np
import pytest

from bareprop.data import Batches, Scaler, split
from bareprop.errors import ConfigError


def make(n=1000, bs=128, **kw):
    x = np.arange(n * 4, dtype=np.int64).reshape(n, 2, 2) % 256
    return Batches(x.astype(np.uint8), np.arange(n), bs, Scaler("raw"), **kw)


def test_last_partial_batch_is_kept():
    b = make(1000, 128, shuffle=True, seed=1)
    sizes = [len(y) for _, y in b.epoch(0)]
    assert sizes == [128] * 7 + [104] and len(b) == 8
    seen = np.concatenate([y for _, y in b.epoch(0)])
    assert sorted(seen) == list(range(1000))


def test_drop_last():
    b = make(1000, 128, drop_last=True)
    assert len(b) == 7 and sum(len(y) for _, y in b.epoch(0)) == 896


def test_seeded_and_per_epoch_order():
    a, b = make(shuffle=True, seed=3), make(shuffle=True, seed=3)
    ya = [y for _, y in a.epoch(2)]
    yb = [y for _, y in b.epoch(2)]
    assert all(np.array_equal(p, q) for p, q in zip(ya, yb))
    assert not np.array_equal(a.order(0), a.order(1))
    assert not np.array_equal(a.order(0), make(shuffle=True, seed=4).order(0))
    assert np.array_equal(make(shuffle=False).order(5), np.arange(1000))


def test_inputs_match_labels_after_shuffle():
    b = make(300, 64, shuffle=True, seed=0)
    for xb, yb in b.epoch(1):
        expected = (np.arange(300 * 4).reshape(300, 2, 2) % 256)[yb]
        np.testing.assert_array_equal(xb, expected)     # images keep their (2, 2) shape


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_scalers(dtype):
    x = np.array([[0, 51, 255]], np.uint8)
    np.testing.assert_allclose(Scaler("raw").apply(x, dtype), [[0, 51, 255]])
    np.testing.assert_allclose(Scaler("unit").apply(x, dtype), [[0, 0.2, 1]], rtol=1e-6)
    s = Scaler.fit("standard", np.array([0, 255] * 50, np.uint8))
    assert s.mean == 127.5 and s.std == 127.5
    np.testing.assert_allclose(s.apply(x, dtype), [[-1, 51 / 127.5 - 1, 1]], rtol=1e-6)
    assert s.apply(x, dtype).dtype == dtype
    assert Scaler.from_dict(s.to_dict()) == s


def test_bad_settings():
    with pytest.raises(ConfigError, match="batch size"):
        make(bs=0)
    with pytest.raises(ConfigError, match="unknown scale"):
        Scaler.fit("unitt", np.zeros(3, np.uint8))
    with pytest.raises(ConfigError, match="fraction"):
        split(np.zeros(4), np.zeros(4), 1.5, 0)


def test_split_is_seeded_and_disjoint():
    x = np.arange(100)
    (xt, _), (xv, _) = split(x, x, 0.1, seed=7)
    (xt2, _), (xv2, _) = split(x, x, 0.1, seed=7)
    assert len(xv) == 10 and len(xt) == 90
    assert set(xt).isdisjoint(xv) and np.array_equal(xv, xv2)
