"""Eval mode's kept scratch (core/scratch.py): a conv's eval forwards reuse one set of
arrays, lent to one thread at a time, in chunks as equal as can be - and every answer
stays the training forward's."""
import copy
import threading

import numpy as np
import pytest

import bareprop as bp
from bareprop.core import conv as conv_module
from bareprop.core.scratch import equal_chunks

CASES = [dict(kernel_size=3, padding=1), dict(kernel_size=(2, 3), padding="same"),
         dict(kernel_size=3, stride=2, padding=1), dict(kernel_size=1)]


@pytest.mark.parametrize("n", [0, 1, 2, 5, 7, 9, 10, 1000, 1001])
@pytest.mark.parametrize("step", [1, 2, 3, 4, 106, 232, 5000])
def test_equal_chunks_cover_the_batch_once_in_chunks_of_one_size(n, step):
    chunks = equal_chunks(n, step)
    assert len(chunks) == max(1, -(-n // step))
    assert len({hi - lo for lo, hi, _ in chunks}) == 1                   # one size
    assert all(hi - lo <= step for lo, hi, _ in chunks)
    kept = [i for lo, hi, first in chunks for i in range(lo + first, hi)]
    assert kept == list(range(n))                        # every example once, in order
    assert sum(hi - lo for lo, hi, _ in chunks) - n < len(chunks)     # little recomputed


def _twin(conv):
    """The same layer in training mode: its forward is the reference for eval's."""
    twin = bp.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size,
                     stride=conv.stride, padding=conv.padding, init=None)
    twin.weight.data[...] = conv.weight.data
    twin.bias.data[...] = conv.bias.data
    return twin


@pytest.mark.parametrize("kw", CASES)
def test_kept_arrays_are_reused_and_every_answer_is_the_training_forwards(kw, monkeypatch):
    """Shapes that come and go (A, B, A: the kept arrays reallocated, their zero borders
    rebuilt) and several chunks a call: each output equals the training forward, and no
    output is a view of the scratch (an earlier answer survives a later call)."""
    rng = np.random.default_rng(0)
    conv = bp.Conv2d(3, 5, rng=1, **kw).eval()
    twin = _twin(conv)
    monkeypatch.setattr(conv_module, "_EVAL_COLS_BYTES", 3 * 5 * 9 * 11 * 11 * 4)
    xa = rng.standard_normal((7, 3, 9, 11)).astype(np.float32)
    xb = rng.standard_normal((4, 3, 6, 5)).astype(np.float32)
    answers = []
    for x in (xa, xb, xa, xa):
        y = conv(x)
        np.testing.assert_allclose(y, twin(x), rtol=1e-5, atol=1e-5)
        answers.append((y.copy(), y))
    kept = {k: id(v) for k, v in conv._eval_ws._arrays.items()}
    assert kept, "eval kept no scratch"
    conv(xa)
    assert {k: id(v) for k, v in conv._eval_ws._arrays.items()} == kept    # reused
    for before, y in answers:
        np.testing.assert_array_equal(y, before)
    assert not copy.deepcopy(conv)._eval_ws                 # a copy keeps none of it
    conv.release_scratch()
    assert not conv._eval_ws


def test_a_thread_that_finds_the_scratch_lent_gets_fresh_arrays():
    conv = bp.Conv2d(2, 4, 3, padding=1, rng=0).eval()
    x = np.random.default_rng(1).standard_normal((3, 2, 8, 8)).astype(np.float32)
    want = _twin(conv)(x)
    got = []
    with conv._eval_ws.lent():               # this thread's forward holds it
        t = threading.Thread(target=lambda: got.append(conv(x)))
        t.start()
        t.join()
    np.testing.assert_allclose(got[0], want, rtol=1e-5, atol=1e-5)
    assert not conv._eval_ws                  # the other thread kept nothing
    conv(x)
    assert conv._eval_ws                      # free again: this forward keeps its arrays


def test_training_and_backward_forwards_never_use_the_eval_scratch():
    """A forward whose cache a backward reads (training, or eval with keep_for_backward)
    must own its columns: the eval scratch is never lent to it."""
    conv = bp.Conv2d(2, 4, 3, padding=1, rng=0)
    x = np.random.default_rng(2).standard_normal((3, 2, 8, 8)).astype(np.float32)
    conv(x)
    conv.eval()
    conv.keep_for_backward = True
    conv(x)
    assert not conv._eval_ws
    assert conv._cache is not None
