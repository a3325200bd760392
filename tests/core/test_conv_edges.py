"""Edges of the image layers found in review: memory estimates that count the im2col
scratch, inference from several threads, model files without a recorded shape, and
inputs and calls the layers must refuse or survive."""
import threading

import numpy as np
import pytest

import bareprop as bp
from bareprop import io
from bareprop.errors import ConfigError, ModelFileError
from bareprop.experiment import arch
from bareprop.experiment.checks import arch_model, make_config
from bareprop.experiment.memory import estimated_bytes
from bareprop.inference import Predictor


def test_memory_estimate_counts_each_convs_scratch(monkeypatch):
    from bareprop.experiment import memory

    monkeypatch.setattr(memory, "memory_bound", lambda: 20 * 2**30)   # any machine alike
    big = "conv(64,3,padding=1) conv(64,15,padding=7) conv(64,15,padding=7) gap linear(10)"
    # layers 1 and 2 each keep (64*15*15) x (28*42) im2col values per example, twice
    # (columns and their gradient): 2 x 2 x 16.9 M x 128 x 4 bytes, over 32 GiB
    with pytest.raises(ConfigError, match=r"--arch with --batch-size 128 needs about 3\d\.\d GiB"):
        make_config({"arch": big, "batch_size": 128})
    small = make_config({"arch": "conv(8,3) relu flatten linear(10)", "batch_size": 128})
    params, need = estimated_bytes(small, model=arch_model(small))
    assert 2**20 < need < 2**30


def test_eval_forward_is_safe_from_several_threads():
    conv = bp.Conv2d(3, 8, 3, padding=1, rng=0).eval()
    rng = np.random.default_rng(0)
    inputs = [rng.standard_normal((16, 3, 20, 20)).astype(np.float32) for _ in range(2)]
    want = [conv(x) for x in inputs]
    wrong = [0, 0]

    def run(k):
        for _ in range(30):
            if not np.array_equal(conv(inputs[k]), want[k]):
                wrong[k] += 1
    threads = [threading.Thread(target=run, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert wrong == [0, 0]


def test_a_model_file_without_input_shape_is_size_checked_on_its_input(tmp_path):
    huge = bp.Sequential(*[bp.Conv2d(1, 1, 1, padding=1024, rng=i) for i in range(8)],
                         bp.GlobalAvgPool2d(), bp.Linear(1, 2, rng=0))
    path = tmp_path / "m.npz"
    io.save(huge, path)                                   # never built: no input shape
    predictor = Predictor.from_file(path)
    with pytest.raises(ModelFileError, match="values per example"):
        predictor.prepare(np.zeros((1, 28, 28), np.uint8))


def test_a_number_python_cannot_hold_is_one_line():
    with pytest.raises(ConfigError, match="number at character 5 is too long"):
        arch.parse("conv(" + "9" * 5000 + ",3) flatten linear(10)")


def test_batchnorm_computes_integer_inputs_in_its_dtype():
    x = np.random.default_rng(0).integers(0, 256, (300, 4)).astype(np.uint8)
    a, b = bp.BatchNorm1d(4), bp.BatchNorm1d(4)
    np.testing.assert_array_equal(a(x), b(x.astype(np.float32)))
    np.testing.assert_array_equal(a.running_mean, b.running_mean)
    assert abs(float(a(x).mean())) < 1e-5


@pytest.mark.parametrize("kwargs", [{"eps": -1.0}, {"eps": 0.0}, {"momentum": 5.0},
                                    {"momentum": -0.1}])
def test_batchnorm_refuses_settings_that_make_nan(kwargs):
    with pytest.raises(ConfigError, match="eps > 0 and momentum in"):
        bp.BatchNorm2d(4, **kwargs)


def test_maxpool_windows_wider_than_256():
    x = np.random.default_rng(0).standard_normal((2, 1, 1, 300))
    pool = bp.MaxPool2d((1, 300))
    y = pool(x)
    np.testing.assert_array_equal(y[:, :, 0, 0], x.max(axis=-1)[:, :, 0])
    dx = pool.backward(np.ones_like(y))
    np.testing.assert_array_equal(dx[0, 0, 0] != 0, np.arange(300) == x[0, 0, 0].argmax())


def test_conv_input_grad_uses_its_own_dout():
    conv = bp.Conv2d(2, 3, 3, rng=0, dtype=np.float64)
    y = conv(np.random.default_rng(1).standard_normal((2, 2, 6, 6)))
    conv.accumulate_grads(np.ones_like(y))
    assert np.abs(conv.input_grad(np.zeros_like(y))).max() == 0.0


@pytest.mark.parametrize("layer", [bp.MaxPool2d(2), bp.AvgPool2d(2), bp.GlobalAvgPool2d(),
                                   bp.BatchNorm2d(3), bp.Conv2d(3, 2, 2)])
def test_backward_before_forward_says_so(layer):
    with pytest.raises(RuntimeError, match="backward needs a forward"):
        layer.input_grad(np.ones((2, 3, 2, 2), np.float32))
