"""Recurrent models outside bareprop: ONNX's RNN/LSTM/GRU operators run by onnxruntime
(stacked, bidirectional, every step's output or the final state, rows and cols), on
1,000 real MNIST test images for a model trained a little; Keras' own LSTM, GRU and
SimpleRNN with the converted weights; Keras-layout and safetensors weights files."""
import numpy as np
import pytest

import bareprop as bp
from bareprop.data import Scaler
from bareprop.experiment import arch
from bareprop.interop.onnx_export import to_onnx
from bareprop.interop.weights import load_state_dict_from, save_safetensors

from conftest import real_data_dir

RTOL = 1e-5         # float32: per image, max |onnx - bareprop| <= RTOL * max |output|
ARCHS = ["rows lstm(6) linear(10)",
         "rows lstm(5,layers=2,bidirectional=true) linear(10)",
         "cols gru(7,bidirectional=true,sequences=true) flatten linear(10)",
         "rows gru(4,layers=3) linear(10)",
         "rows rnn(6,nonlinearity=relu,bidirectional=true,sequences=true) lstm(5) linear(10)",
         "cols rnn(5,layers=2,bias=false) linear(10)",
         "rows lstm(4,bias=false,bidirectional=true,sequences=true) gru(3,sequences=true) "
         "flatten linear(10)"]


def model_of(text, seed=0, shape=(1, 28, 28)):
    """The model, its weights moved off their initial draw so every bias matters."""
    model = arch.build(text, shape, seed=seed)
    rng = np.random.default_rng(seed + 1)
    for p in model.parameters():
        p.data += rng.normal(scale=0.2, size=p.shape).astype(p.dtype)
    return model.eval()


def images(n=6, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, 1, 28, 28)).astype(np.float32)


def assert_close(got, want, rtol=RTOL):
    scale = np.abs(want).max(axis=1)
    worst = (np.abs(got - want).max(axis=1) / scale).max()
    assert worst <= rtol, f"outputs differ by {worst:.2e} of their scale"


@pytest.mark.parametrize("text", ARCHS)
def test_onnxruntime_computes_what_bareprop_computes(text):
    ort = pytest.importorskip("onnxruntime")
    model = model_of(text)
    proto = to_onnx(model)                                # checked by onnx.checker
    ops = [n.op_type for n in proto.graph.node]
    assert {"LSTM", "GRU", "RNN"} & set(ops)
    session = ort.InferenceSession(proto.SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    x = images() / 255.0
    got = session.run(None, {"image": x.astype(np.float32)})[0]
    assert_close(got, model(x.astype(np.float32)))


def test_onnx_on_1000_real_test_images_of_a_trained_model():
    """rows lstm(32) linear(10), trained two epochs on 2,000 real images, scaled as the CLI
    scales: onnxruntime's logits within 1e-5 of bareprop's and the same classes."""
    ort = pytest.importorskip("onnxruntime")
    data = real_data_dir()
    if data is None:
        pytest.skip("real MNIST files not found")
    from bareprop.data import load

    ds = load("mnist", data_dir=data / "mnist", download_missing=False)
    model = arch.build("rows lstm(32) linear(10)", (1, 28, 28), seed=0)
    scaler = Scaler.fit("standard", ds.x_train[:2000])
    x = scaler.apply(ds.x_train[:2000, None], np.float32)
    bp.fit(model, bp.CrossEntropyLoss(), bp.Adam(model.parameters(), lr=1e-2),
           (x, ds.y_train[:2000]), epochs=2, batch_size=64, seed=0, verbose=False)
    predictor = bp.Predictor(model, scaler, ds.classes, model.input_shape)
    raw = ds.x_test[:1000]
    session = ort.InferenceSession(to_onnx(predictor).SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    got = session.run(None, {"image": raw[:, None].astype(np.float32)})[0]
    model.eval()
    want = model(predictor.prepare(raw))
    assert_close(got, want)
    np.testing.assert_array_equal(got.argmax(1), want.argmax(1))
    assert np.mean(want.argmax(1) == ds.y_test[:1000]) > 0.5        # it did learn


@pytest.mark.parametrize("text", ARCHS)
def test_keras_layers_compute_the_same_outputs(text, monkeypatch):
    monkeypatch.setenv("KERAS_BACKEND", "torch")
    pytest.importorskip("keras")
    from bareprop.reference.keras_twin import KerasTwin, to_nhwc

    model = model_of(text)
    twin = KerasTwin(model, bp.SGD(model.parameters(), lr=0.1), bp.CrossEntropyLoss())
    x = images() / 255.0
    got = twin.keras.ops.convert_to_numpy(twin.model(to_nhwc(x), training=False))
    assert_close(got, model(x.astype(np.float32)), rtol=1e-4)


@pytest.mark.parametrize("text", ARCHS[:5])
def test_keras_weights_files_load_into_the_same_model(text, tmp_path, monkeypatch):
    """np.savez(path, *keras_model.get_weights()) of the Keras twin, read back with the
    keras layout: kernels transposed back, GRU's gates reordered, LSTM's and SimpleRNN's
    one bias as b_ih (b_hh = 0): the same outputs."""
    monkeypatch.setenv("KERAS_BACKEND", "torch")
    pytest.importorskip("keras")
    from bareprop.reference.keras_twin import KerasTwin

    model = model_of(text)
    twin = KerasTwin(model, bp.SGD(model.parameters(), lr=0.1), bp.CrossEntropyLoss())
    np.savez(tmp_path / "keras.npz", *twin.model.get_weights())
    fresh = model_of(text, seed=5)
    load_state_dict_from(fresh, tmp_path / "keras.npz", layout="keras")
    x = images() / 255.0
    assert_close(fresh(x.astype(np.float32)), model(x.astype(np.float32)))


def test_a_keras_file_of_another_recurrent_model_is_refused(tmp_path):
    from bareprop.errors import ModelFileError

    small = model_of("rows lstm(4) linear(10)")
    arrays = [a.T if a.ndim == 2 else a for a in small.state_dict().values()]
    np.savez(tmp_path / "k.npz", arrays[0].T, arrays[1].T, arrays[2], *arrays[4:])
    with pytest.raises(ModelFileError, match=r"arr_0 .* should be of shape \(28, 20\)"):
        load_state_dict_from(model_of("rows lstm(5) linear(10)"), tmp_path / "k.npz")


def test_safetensors_load_into_the_pytorch_twin(tmp_path):
    torch = pytest.importorskip("torch")
    pytest.importorskip("safetensors")
    from safetensors.torch import load_file

    from bareprop.reference.torch_twin import torch_module

    model = model_of(ARCHS[1])
    path = save_safetensors(model, tmp_path / "w.safetensors")
    twin = torch_module(model).eval()
    twin.load_state_dict(load_file(path))                          # strict: PyTorch's names
    assert "1.weight_hh_l1_reverse" in load_file(path)
    x = images() / 255.0
    with torch.no_grad():
        got = twin(torch.from_numpy(x.astype(np.float32))).numpy()
    assert_close(got, model(x.astype(np.float32)))
