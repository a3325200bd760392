"""The shape-aware core and the library API: shapes inferred and refused at construction,
one backward contract for every layer, model file v2 and the layer registry, Predictor,
fit with arrays, Parameter.data checks."""
import json

import numpy as np
import pytest

import bareprop as bp
from bareprop.archive import write_archive
from bareprop.data import Scaler

from synthetic import digits_like


def test_shapes_are_inferred_at_construction_and_summary_prints_tuples():
    net = bp.Sequential(bp.Flatten(), bp.Linear(784, 128, rng=0), bp.ReLU(), bp.Linear(128, 10, rng=1),
                        input_shape=(28, 28))
    assert net.input_shape == (28, 28)
    assert net.shapes == [(784,), (128,), (128,), (10,)]
    text = net.summary(print_fn=None)
    assert "(None, 784)" in text and "(None, 128)" in text and "(None, 10)" in text
    # the first Linear fixes the input when none is given, past shape-keeping layers
    assert bp.Sequential(bp.Dropout(0.2), bp.Linear(5, 3, rng=0)).input_shape == (5,)


def test_impossible_shapes_are_refused_naming_the_layer():
    with pytest.raises(bp.ConfigError, match=r"layer 2 \(Linear\).*expects inputs of shape \(64,\)"):
        bp.Sequential(bp.Linear(10, 32, rng=0), bp.ReLU(), bp.Linear(64, 10, rng=1))
    with pytest.raises(bp.ConfigError, match=r"layer 0 \(Linear\).*add bp.Flatten\(\)"):
        bp.Sequential(bp.Linear(784, 10, rng=0), input_shape=(28, 28))
    with pytest.raises(bp.ConfigError, match=r"BatchNorm1d\(7\)"):
        bp.Sequential(bp.Flatten(), bp.BatchNorm1d(7), input_shape=(2, 3))


def test_shapes_are_recorded_from_the_first_batch():
    net = bp.Sequential(bp.Flatten(), bp.ReLU())
    assert net.input_shape is None and "not built" in net.summary(print_fn=None)
    out = net(np.ones((4, 3, 5, 2)))
    assert out.shape == (4, 30) and net.input_shape == (3, 5, 2) and net.shapes[-1] == (30,)


def test_flatten_gradcheck_and_input_grad(rng):
    net = bp.Sequential(bp.Flatten(), bp.Linear(12, 5, rng=0, dtype=np.float64), bp.Tanh(),
                        bp.Linear(5, 3, rng=1, dtype=np.float64))
    x, y = rng.normal(size=(4, 3, 4)), rng.integers(0, 3, 4)
    errors = bp.gradcheck(net, bp.CrossEntropyLoss(), x, y)
    assert max(errors.values()) < 1e-6
    loss = bp.CrossEntropyLoss()
    loss(net(x), y)
    dx = net.backward(loss.backward(), need_dx=True)              # back through Flatten
    num = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        e = np.zeros_like(x)
        e[i] = 1e-6
        num[i] = (loss(net(x + e), y) - loss(net(x - e), y)) / 2e-6
    assert dx.shape == x.shape and np.abs(dx - num).max() / np.abs(num).max() < 1e-6


def test_dtype_casts_every_layer_and_parameter_data_is_checked():
    net = bp.Sequential(bp.Linear(4, 3, rng=0), bp.BatchNorm1d(3), bp.Linear(3, 2, rng=1),
                        dtype=np.float64)
    assert {p.dtype for p in net.parameters()} == {np.dtype(np.float64)}
    assert net[1].running_mean.dtype == np.float64
    w = net[0].weight
    with pytest.raises(ValueError, match="float64 of shape \\(3, 4\\)"):
        w.data = np.zeros((3, 4), np.float32)            # would silently compute in float32
    with pytest.raises(ValueError, match="shape"):
        w.data = np.zeros((4, 3))
    w.data = np.ones((3, 4))                              # the same shape and dtype is fine
    assert np.all(w.data == 1)


def test_custom_layer_registered_saves_and_loads(tmp_path, rng):
    @bp.register_layer
    class Scale(bp.Module):
        """y = k x (a user's own layer)."""

        preserves_shape = True

        def __init__(self, k=2.0):
            self.k = float(k)

        def forward(self, x):
            return x * self.k

        def input_grad(self, dout):
            return dout * self.k

        def spec(self):
            return {"k": self.k}

    model = bp.Sequential(bp.Linear(3, 4, rng=0), Scale(3.0), bp.Linear(4, 2, rng=1))
    back = bp.load(bp.save(model, tmp_path / "m.npz"))
    assert isinstance(back[1], Scale) and back[1].k == 3.0
    x = rng.normal(size=(5, 3)).astype(np.float32)
    np.testing.assert_array_equal(back(x), model(x))
    with pytest.raises(bp.ConfigError, match="already registered"):
        bp.register_layer(type("Scale", (bp.Module,), {}))


def test_unregistered_layer_type_in_a_file_is_one_clear_error(tmp_path):
    model = bp.Sequential(bp.Linear(3, 2, rng=0))
    path = bp.save(model, tmp_path / "m.npz")
    meta, arrays = bp.io.read_archive(path, "model.npz", "bareprop-model", (1, 2), "model file")
    meta["architecture"]["layers"][0]["type"] = "Lineer"
    write_archive(path, meta, arrays)
    with pytest.raises(bp.ModelFileError, match="unknown layer type 'Lineer'.*Did you mean 'Linear'"):
        bp.load(path)


def test_model_file_v2_records_inference_facts_and_v1_still_loads(tmp_path, rng):
    model = bp.Sequential(bp.Flatten(), bp.Linear(4, 3, rng=0), input_shape=(2, 2))
    scaler = Scaler("standard", 10.0, 5.0)
    path = bp.save(model, tmp_path / "v2.npz", classes=["a", "b", "c"], scaling=scaler.to_dict())
    back, meta = bp.load(path, with_meta=True)
    assert meta["version"] == 2 and meta["input_shape"] == [2, 2]
    assert meta["classes"] == ["a", "b", "c"] and meta["scaling"]["kind"] == "standard"
    assert back.input_shape == (2, 2)
    # a version 1 file, as bareprop 0.1 wrote it: no Flatten, facts in "extra"
    old = bp.Sequential(bp.Linear(4, 3, rng=0))
    v1 = {"format": "bareprop-model", "version": 1, "dtype": "float32",
          "architecture": {"type": "Sequential", "clip_delta": None,
                           "layers": [{"type": "Linear", "in_features": 4, "out_features": 3,
                                       "bias": True}]},
          "extra": {"scaler": scaler.to_dict(), "classes": ["a", "b", "c"], "input_shape": [2, 2]}}
    write_archive(tmp_path / "v1.npz", v1, old.state_dict())
    pred = bp.Predictor.from_file(tmp_path / "v1.npz")
    raw = rng.integers(0, 256, (5, 2, 2)).astype(np.uint8)
    expect = bp.predict_proba(old, scaler.apply(raw.reshape(5, 4), np.float32))
    np.testing.assert_allclose(pred.predict_proba(raw), expect, rtol=1e-6)
    assert pred.classes == ["a", "b", "c"]


def test_predictor_refuses_an_unknown_scaling_kind(tmp_path):
    path = bp.save(bp.Sequential(bp.Linear(4, 3, rng=0)), tmp_path / "m.npz",
                   scaling={"kind": "whitened", "mean": 0, "std": 1})
    with pytest.raises(bp.ModelFileError, match="m.npz: unknown scaler kind 'whitened'"):
        bp.Predictor.from_file(path)


def test_predict_proba_leaves_the_mode_and_rows_sum_to_one(rng):
    net = bp.Sequential(bp.Linear(6, 8, rng=0), bp.Dropout(0.5, rng=0), bp.Linear(8, 3, rng=1))
    x = rng.normal(size=(2500, 6)).astype(np.float32)
    p = bp.predict_proba(net, x)
    assert p.shape == (2500, 3) and np.allclose(p.sum(1), 1) and net.training
    net.eval()
    np.testing.assert_allclose(p, bp.predict_proba(net, x))          # eval mode inside: no dropout
    assert not net.training


def test_fit_takes_arrays_as_given_with_validation_data():
    x, y = digits_like(400, 1)
    x = x.reshape(400, -1) / np.float32(255)                        # float: used as given
    model = bp.Sequential(bp.Linear(784, 32, rng=0), bp.ReLU(), bp.Linear(32, 10, rng=1))
    h = bp.fit(model, bp.CrossEntropyLoss(), bp.Adam(model.parameters(), lr=3e-3),
               (x[:300], y[:300]), epochs=3, batch_size=50, validation_data=(x[300:], y[300:]),
               callbacks=[bp.EarlyStopping(patience=2)])
    assert len(h.batch_loss) == 3 * 6 and "val_accuracy" in h.epochs[-1]
    assert h.epochs[-1]["val_accuracy"] > 0.5
    with pytest.raises(bp.ConfigError, match="Batches or an \\(x, y\\) pair"):
        bp.fit(model, bp.CrossEntropyLoss(), bp.SGD(model.parameters()), x, epochs=1)


def test_train_step_grad_hook_runs_between_backward_and_step(rng):
    net = bp.Sequential(bp.Linear(3, 2, rng=0, dtype=np.float64))
    opt = bp.SGD(net.parameters(), lr=1.0)
    seen = []

    def hook(model, optimizer):
        seen.append(model[0].weight.grad.copy())
        bp.clip_grad_value_(model.parameters(), 1e-3)     # clipping plugs in here

    before = net[0].weight.data.copy()
    bp.train_step(net, bp.CrossEntropyLoss(), opt, rng.normal(size=(4, 3)) * 100,
                  np.array([0, 1, 0, 1]), grad_hook=hook)
    assert len(seen) == 1 and np.abs(seen[0]).max() > 1e-3
    assert np.abs(net[0].weight.data - before).max() <= 1e-3 + 1e-15
    with pytest.raises(bp.ConfigError, match="grad_hook needs update_order 'standard'"):
        bp.TrainStep(net, bp.CrossEntropyLoss(), opt, update_order="notebook", grad_hook=hook)


def test_history_plot_returns_a_figure():
    h = bp.History([1.0, 0.5], [{"epoch": 1, "train_loss": 0.7, "train_accuracy": 0.5}])
    fig = h.plot()
    assert len(fig.axes) == 3


def test_callbacks_are_importable_from_the_top():
    for name in ("EarlyStopping", "ModelCheckpoint", "ProgressBar", "LRSchedule", "MaxNorm",
                 "Callback", "History"):
        assert hasattr(bp, name) and name in bp.__all__


def test_model_file_meta_is_json(tmp_path):
    path = bp.save(bp.Sequential(bp.Flatten(), bp.Linear(4, 2, rng=0), input_shape=(2, 2)),
                   tmp_path / "m.npz")
    with np.load(path) as npz:
        meta = json.loads(npz["__meta__"].tobytes())
    assert meta["architecture"]["layers"][0] == {"type": "Flatten"}
