"""Batch-parallel work (core/threads.py) gives bit-identical results to one thread."""
import numpy as np
import pytest

import bareprop as bp
from bareprop.core import threads


@pytest.fixture
def two_threads(monkeypatch):
    monkeypatch.setattr(threads, "_workers", 2)
    monkeypatch.setattr(threads, "MIN_ELEMENTS", 1)     # thread even these small batches


def _run(x):
    """Forward and backward of conv -> maxpool -> conv (both column layouts) on x."""
    net = bp.Sequential(bp.Conv2d(1, 8, 3, padding=1, rng=0), bp.MaxPool2d(2),
                        bp.Conv2d(8, 12, 3, rng=1), bp.MaxPool2d((3, 2), (1, 2)),
                        bp.Conv2d(12, 4, 2, stride=2, rng=2), input_shape=(1, 14, 14))
    y = net(x)
    dx = net.backward(np.cos(y), need_dx=True)
    return [y, dx] + [p.grad for p in net.parameters()]


def test_threads_split_the_batch_bit_identically(two_threads):
    x = np.random.default_rng(0).standard_normal((7, 1, 14, 14)).astype(np.float32)
    threads._pool = None
    threaded = _run(x)
    assert threads._pool is not None            # the pool really ran the work
    threads._workers = 1
    single = _run(x)
    for a, b in zip(threaded, single):
        np.testing.assert_array_equal(a, b)


def test_an_error_in_a_thread_reaches_the_caller(two_threads):
    def boom(s):
        if s.start > 0:
            raise ValueError("second half failed")
    with pytest.raises(ValueError, match="second half"):
        threads.over_batch(boom, 4, 10)


def test_thread_count_comes_from_the_environment(monkeypatch):
    for env, want in (("", 1), ("2", 2), ("99", 8), ("x", 1), ("0", 1)):
        monkeypatch.setattr(threads, "_workers", None)
        monkeypatch.setenv("BAREPROP_NUM_THREADS", env)
        assert threads.num_threads() == want
    monkeypatch.setattr(threads, "_workers", None)
