"""The fused SGD step (fast/sgd.py) equals the unfused one within float rounding, for
every variant of torch's SGD rule, fuses only when nothing reads the gradients, and
never in float64 (the verification dtype runs the reference step)."""
import numpy as np
import pytest

import bareprop as bp
from bareprop.fast import cblas
from bareprop.fast import sgd as fused_mod
from bareprop.fast.sgd import blas
from bareprop.train import Callback, fit
from bareprop.train.step import TrainStep


def setup_module():
    if blas(np.float32) is None:   # NumPy's wheels bundle OpenBLAS; other builds may not
        pytest.skip("NumPy's BLAS cannot be called here (fast/cblas.py)")

@pytest.fixture(autouse=True)
def fuse_tiny_weights(monkeypatch):
    """These nets are tiny so that each test is quick: fuse every weight, whatever its size
    (by default only those of fused.MIN_ELEMENTS and up, where it pays)."""
    monkeypatch.setattr(fused_mod, "MIN_ELEMENTS", 0)


VARIANTS = [{}, {"weight_decay": 0.01}, {"momentum": 0.9},
            {"momentum": 0.9, "dampening": 0.3, "weight_decay": 0.01},
            {"momentum": 0.9, "nesterov": True},
            {"momentum": 0.8, "nesterov": True, "weight_decay": 0.05}]


def _model(dtype):
    # a BatchNorm1d between the Linears: its parameters are stepped the unfused way
    return bp.Sequential(bp.Linear(20, 16, bias=False, rng=1, dtype=dtype), bp.BatchNorm1d(16), bp.ReLU(),
                         bp.Linear(16, 12, rng=2, dtype=dtype), bp.Tanh(),
                         bp.Linear(12, 5, rng=3, dtype=dtype), dtype=dtype)


def _run(fuse, dtype, steps=25, lr_schedule=False, **hyper):
    rng = np.random.default_rng(0)
    model = _model(dtype)
    opt = bp.optim.SGD(model.parameters(), lr=0.1, **hyper)
    step = TrainStep(model, bp.CrossEntropyLoss(), opt, fuse=fuse)
    for i in range(steps):
        if lr_schedule:
            opt.lr = 0.1 / (1 + i)            # read by the fused rule at each call
        n = 8 if i % 3 else 5                  # a short batch now and then (the GEMV's ones)
        x = rng.standard_normal((n, 20)).astype(dtype)
        step(x, rng.integers(0, 5, n))
    return model, opt, step


def _rel(a, b):
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-30))


@pytest.mark.parametrize("hyper", VARIANTS, ids=lambda h: ",".join(h) or "plain")
@pytest.mark.parametrize("dtype,tol", [(np.float64, 0.0), (np.float32, 2e-5)])
def test_fused_equals_unfused(hyper, dtype, tol):
    fused, fopt, fstep = _run(True, dtype, **hyper)
    plain, popt, pstep = _run(False, dtype, **hyper)
    # the Linears' weights (biases, and BatchNorm's parameters, are left to the step);
    # float64 is never fused, so its weights are the reference step's bit for bit
    assert len(fstep.plan.fused) == (3 if dtype == np.float32 else 0)
    assert not pstep.plan.fused
    for (name, a), (_, b) in zip(fused.named_parameters(), plain.named_parameters()):
        assert a.data.dtype == dtype
        assert _rel(a.data, b.data) <= tol, name
    # the momentum buffers, as checkpoints save them, agree too
    for sa, sb in zip(fopt.state_dict()["state"], popt.state_dict()["state"]):
        assert sa.keys() == sb.keys()
        for k in sa:
            assert _rel(sa[k], sb[k]) <= tol


def test_fused_follows_the_learning_rate_set_between_steps():
    a, _, _ = _run(True, np.float32, lr_schedule=True, momentum=0.9)
    b, _, _ = _run(False, np.float32, lr_schedule=True, momentum=0.9)
    c, _, _ = _run(False, np.float32, momentum=0.9)       # the schedule changes the weights
    pa, pb, pc = (m.parameters()[0].data for m in (a, b, c))
    assert _rel(pa, pb) < 2e-5 and _rel(pa, pc) > 1e-3


def test_fused_weights_keep_no_grad_and_unfused_ones_do():
    model, _, step = _run(True, np.float32, momentum=0.9)
    grads = {n: p.grad for n, p in model.named_parameters()}
    linear_w = [f"{i}.weight" for i, m in enumerate(model.layers) if isinstance(m, bp.Linear)]
    assert len(linear_w) == 3 and all(grads[n] is None for n in linear_w)
    assert all(grads[n] is not None for n in grads if n not in linear_w)
    # the model itself stays the reference: its own forward and backward are the plain ones
    assert step.plan.net is not model and all(
        type(m).__module__.startswith("bareprop.core") for m in model.modules())


def test_env_switch_and_grad_hook_keep_every_gradient(monkeypatch):
    seen = []
    model = _model(np.float32)
    opt = bp.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    hook = TrainStep(model, bp.CrossEntropyLoss(), opt,
                     grad_hook=lambda m, o: seen.append([p.grad is not None
                                                         for p in m.parameters()]))
    x = np.random.default_rng(0).standard_normal((8, 20)).astype(np.float32)
    hook(x, np.arange(8) % 5)
    assert not hook.plan.fused and seen == [[True] * len(model.parameters())]
    monkeypatch.setenv("BAREPROP_FUSED", "0")
    assert blas(np.float32) is None
    assert not TrainStep(model, bp.CrossEntropyLoss(), opt).plan.fused
    monkeypatch.setenv("BAREPROP_FUSED", "1")
    assert TrainStep(model, bp.CrossEntropyLoss(), opt).plan.fused


def test_adam_and_the_notebook_order_are_never_fused():
    model = _model(np.float32)
    adam = TrainStep(model, bp.CrossEntropyLoss(), bp.optim.Adam(model.parameters()))
    assert not adam.plan.fused
    sgd = bp.optim.SGD(model.parameters(), lr=0.1)
    assert not TrainStep(model, bp.CrossEntropyLoss(), sgd, update_order="notebook").plan.fused


class _GradReader(Callback):
    """A user's callback that reads gradients after each batch (needs_grads by default)."""

    def __init__(self):
        self.norms = []

    def on_batch_end(self, state, loss, n):
        self.norms.append(sum(float(np.sum(p.grad ** 2)) for p in state.model.parameters()))


class _Quiet(Callback):
    needs_grads = False

    def on_batch_end(self, state, loss, n):
        self.grads = [p.grad is None for p in state.model.parameters()]


def test_fit_fuses_only_when_no_callback_reads_gradients():
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((64, 20)).astype(np.float32), rng.integers(0, 5, 64)
    reader = _GradReader()
    model = _model(np.float32)
    fit(model, bp.CrossEntropyLoss(), bp.optim.SGD(model.parameters(), lr=0.1), (x, y), 1,
        batch_size=16, callbacks=[reader])
    assert len(reader.norms) == 4 and all(np.isfinite(reader.norms))
    quiet = _Quiet()
    model = _model(np.float32)
    fit(model, bp.CrossEntropyLoss(), bp.optim.SGD(model.parameters(), lr=0.1), (x, y), 1,
        batch_size=16, callbacks=[quiet])
    assert quiet.grads[0] is True                      # the first Linear's weight: fused



def test_a_model_cast_after_fused_steps_keeps_training_right():
    """astype(float64) after float32 steps leaves float32 momentum buffers: the fused rule
    must not hand them to float64 BLAS (it wrote doubles into floats: NaN, then a crash)."""
    runs = []
    for fuse in (True, False):
        rng = np.random.default_rng(0)
        model = _model(np.float32)
        opt = bp.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        step = TrainStep(model, bp.CrossEntropyLoss(), opt, fuse=fuse)
        for _ in range(3):
            step(rng.standard_normal((8, 20)).astype(np.float32), rng.integers(0, 5, 8))
        model.astype(np.float64)
        step = TrainStep(model, bp.CrossEntropyLoss(), opt, fuse=fuse)
        for _ in range(3):
            step(rng.standard_normal((8, 20)), rng.integers(0, 5, 8))
        runs.append([p.data.copy() for p in model.parameters()])
    for a, b in zip(*runs):
        assert np.all(np.isfinite(a)) and _rel(a, b) < 1e-6


def test_read_only_weights_are_not_written_by_the_fused_step():
    model = _model(np.float32)
    w = model.layers[0].weight.data
    w.flags.writeable = False
    step = TrainStep(model, bp.CrossEntropyLoss(), bp.optim.SGD(model.parameters(), lr=0.1))
    before = w.copy()
    with pytest.raises(ValueError, match="read-only"):      # the unfused rule's own refusal
        step(np.ones((4, 20), np.float32), np.arange(4))
    assert np.array_equal(w, before)


class _Block(bp.Module):
    """A user's layer written to the one-call backward contract around a Linear."""

    def __init__(self):
        self.lin = bp.Linear(20, 16, rng=7)

    def forward(self, x):
        return self.lin(x)

    def backward(self, dout, need_dx=True):
        return self.lin.backward(dout, need_dx)

    def output_shape(self, in_shape):
        return (16,)


def _tied_or_block(kind, fuse):
    rng = np.random.default_rng(0)
    if kind == "block":
        model = bp.Sequential(bp.Linear(20, 20, rng=1), bp.ReLU(), _Block(), bp.ReLU(),
                              bp.Linear(16, 5, rng=2))
    else:                                           # one Parameter in two Linears
        a, b = bp.Linear(20, 20, rng=1), bp.Linear(20, 20, rng=2)
        b.weight = a.weight
        model = bp.Sequential(a, bp.Tanh(), b, bp.Tanh(), bp.Linear(20, 5, rng=3))
    params = list({id(p): p for p in model.parameters()}.values())   # the tied one once
    opt = bp.optim.SGD(params, lr=0.1, momentum=0.9, weight_decay=0.01)
    step = TrainStep(model, bp.CrossEntropyLoss(), opt, fuse=fuse)
    for _ in range(5):
        step(rng.standard_normal((8, 20)).astype(np.float32), rng.integers(0, 5, 8))
    return [p.data.copy() for p in model.parameters()], step


@pytest.mark.parametrize("kind", ["block", "tied"])
def test_nested_backward_and_tied_weights_equal_the_unfused_step(kind):
    fused, step = _tied_or_block(kind, True)
    plain, _ = _tied_or_block(kind, False)
    assert step.plan.fused                           # the rest of the net is still fused
    for a, b in zip(fused, plain):
        assert _rel(a, b) < 2e-5


def test_by_default_only_large_weights_are_fused(monkeypatch):
    """Where a ctypes call costs more than the passes it saves (small weights, biases),
    the step stays unfused; 784-128-10's first weight (100,352 elements) is fused."""
    monkeypatch.setattr(fused_mod, "MIN_ELEMENTS", 32_768)
    model = bp.Sequential(bp.Linear(784, 128, rng=0), bp.ReLU(), bp.Linear(128, 10, rng=1))
    step = TrainStep(model, bp.CrossEntropyLoss(), bp.optim.SGD(model.parameters(), lr=0.1))
    assert step.plan.fused == [model.layers[0].weight]
    rng = np.random.default_rng(0)
    step(rng.random((16, 784), dtype=np.float32), rng.integers(0, 10, 16))
    assert model.layers[0].weight.grad is None          # stepped inside its GEMM
    assert model.layers[0].bias.grad is not None and model.layers[2].weight.grad is not None


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("a_layout", ["C", "F", "strided"])
@pytest.mark.parametrize("b_layout", ["C", "F", "strided"])
def test_blas_gemm_takes_every_operand_layout(a_layout, b_layout, dtype):
    """cblas.gemm: c <- alpha a b + beta c, with a and b C- or F-contiguous (passed to BLAS
    transposed, no copy) or anything else (copied first), as NumPy's matmul computes."""
    rng = np.random.default_rng(0)

    def laid(shape, layout):
        big = rng.normal(size=(shape[0], 2 * shape[1])).astype(dtype)
        return {"C": np.ascontiguousarray(big[:, :shape[1]]),
                "F": np.asfortranarray(big[:, :shape[1]]), "strided": big[:, ::2]}[layout]
    a, b = laid((5, 7), a_layout), laid((7, 3), b_layout)
    c = rng.normal(size=(5, 3)).astype(dtype)
    want = -0.5 * (a.astype(np.float64) @ b) + 0.25 * c
    blas(dtype).gemm(-0.5, a, b, 0.25, c)
    np.testing.assert_allclose(c, want, rtol=1e-5 if dtype == np.float32 else 1e-12, atol=1e-5)


def test_blas_gemm_refuses_wrong_shapes_and_outputs():
    fns = blas(np.float32)
    a, b = np.ones((4, 3), np.float32), np.ones((3, 2), np.float32)
    with pytest.raises(ValueError, match="shapes"):
        fns.gemm(1.0, a, b.T, 0.0, np.zeros((4, 2), np.float32))
    with pytest.raises(ValueError, match="writable C-contiguous"):
        fns.gemm(1.0, a, b, 0.0, np.zeros((2, 4), np.float32).T)
    c = np.full((4, 2), 3.0, np.float32)
    fns.gemm(1.0, np.ones((4, 0), np.float32), np.ones((0, 2), np.float32), 0.5, c)   # K = 0
    np.testing.assert_array_equal(c, 1.5)


def test_blas_gemm_passes_f_contiguous_operands_transposed_without_a_copy():
    fns = blas(np.float32)
    a = np.ones((6, 4), np.float32)
    for view, trans in ((a, False), (a.T, True)):               # C, then F-contiguous
        got, flag, ld = fns._operand(view)
        assert got is view and (flag == cblas._TRANS) == trans
        assert ld == (view.shape[0] if trans else view.shape[1])
    strided = a[:, ::2]
    got, flag, _ = fns._operand(strided)
    assert got is not strided and got.flags.c_contiguous and flag == cblas._NO_TRANS


@pytest.mark.parametrize("m,k,n", [(1, 5, 3), (4, 5, 1), (1, 1, 1), (0, 3, 2), (3, 2, 0)])
@pytest.mark.parametrize("order", ["C", "F"])
def test_blas_gemm_degenerate_shapes(m, k, n, order):
    """Single rows and columns (both C- and F-contiguous) and empty outputs."""
    rng = np.random.default_rng(1)
    a = np.asarray(rng.normal(size=(m, k)), np.float64, order=order)
    b = np.asarray(rng.normal(size=(k, n)), np.float64, order=order)
    c = rng.normal(size=(m, n))
    want = 2.0 * (a @ b) - c
    blas(np.float64).gemm(2.0, a, b, -1.0, c)
    np.testing.assert_allclose(c, want, rtol=1e-12, atol=1e-12)
