"""The inspection probe (train/inspector.py) runs its batch a few examples at a time, and
its statistics a chunk of values at a time, to bound the run's memory: every number it
records must equal the one-piece computation (np.histogram, mean and std in float64 over
the whole activation; the gradient of the batch's mean loss)."""
import numpy as np
import pytest

import bareprop as bp
from bareprop.train import inspector


def _one_piece(model, loss_fn, x, y):
    inspector._probe_mode(model)
    acts, a = {}, x
    for i, layer in enumerate(model.layers):
        a = layer.forward(a)
        v = np.asarray(a, np.float64)
        counts, edges = np.histogram(v, bins=40)
        h = acts[f"{i} {type(layer).__name__}"] = {
            "counts": counts, "edges": edges, "mean": v.mean(), "std": v.std(),
            "zeros": np.mean(v == 0)}
        if a.ndim == 4:
            h["channels"] = {"mean": v.mean(axis=(0, 2, 3)), "std": v.std(axis=(0, 2, 3)),
                             "zeros": np.mean(v == 0, axis=(0, 2, 3))}
    loss_fn(a, y)
    model.zero_grad()
    model.backward(loss_fn.backward())
    grads = {n: p.grad.copy() for n, p in model.named_parameters()}
    model.zero_grad()
    model.train()
    return acts, grads


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_the_probe_in_chunks_equals_the_one_piece_probe(dtype, monkeypatch):
    monkeypatch.setattr(inspector, "CHUNK", 1000)          # many value chunks per layer
    r = np.random.default_rng(0)
    model = bp.Sequential(bp.Conv2d(1, 4, 3, rng=r, dtype=dtype), bp.BatchNorm2d(4, dtype=dtype),
                          bp.ReLU(), bp.MaxPool2d(2), bp.Flatten(), bp.Dropout(0.5),
                          bp.Linear(4 * 6 * 6, 3, rng=r, dtype=dtype))
    model.layers[1].running_mean[...] = 0.2
    x = r.standard_normal((250, 1, 14, 14)).astype(dtype)     # 3 probe chunks, one short
    y = r.integers(0, 3, 250)
    loss_fn = bp.CrossEntropyLoss(label_smoothing=0.1)
    want, want_grads = _one_piece(model, loss_fn, x, y)
    got = inspector.inspect_batch(model, loss_fn, x, y)
    tol = 1e-10 if dtype == "float64" else 1e-5
    for name, h in want.items():
        g = got["activations"][name]
        assert g["counts"] == h["counts"].tolist()
        np.testing.assert_allclose(g["edges"], h["edges"], rtol=1e-12)
        np.testing.assert_allclose([g["mean"], g["std"], g["zeros"]],
                                   [h["mean"], h["std"], h["zeros"]], rtol=1e-9, atol=1e-12)
        if "channels" in h:
            for key in ("mean", "std", "zeros"):
                np.testing.assert_allclose(g["channels"][key], h["channels"][key],
                                           rtol=1e-9, atol=1e-12)
    assert set(got["gradients"]) == set(want_grads)
    for name, grad in want_grads.items():
        one = inspector.histogram(grad)
        np.testing.assert_allclose([got["gradients"][name]["std"]], [one["std"]], rtol=tol)
        np.testing.assert_allclose([got["gradients"][name]["mean"]], [one["mean"]], rtol=tol,
                                   atol=tol * one["std"])
    assert all(p.grad is None for p in model.parameters())      # left as found
    assert model.training


def test_histogram_in_chunks_is_np_histogram(monkeypatch):
    monkeypatch.setattr(inspector, "CHUNK", 7)
    r = np.random.default_rng(1)
    for a in (np.maximum(r.standard_normal(1001), 0).astype(np.float32), np.ones(10),
              r.standard_normal((3, 4, 5))):
        v = np.asarray(a, np.float64).ravel()
        counts, edges = np.histogram(v, bins=40)
        h = inspector.histogram(a)
        assert h["counts"] == counts.tolist() and h["edges"] == edges.tolist()
        np.testing.assert_allclose([h["mean"], h["std"]], [v.mean(), v.std()], rtol=1e-12,
                                   atol=1e-15)
    with pytest.raises(ValueError, match="finite"):        # np.histogram's own error
        inspector.histogram(np.array([1.0, np.nan]))
