"""Weights to and from PyTorch and Keras: the safetensors export loads into the PyTorch
twin with torch's own loader and gives bareprop's logits; the import path reads PyTorch,
Keras, bareprop's own exports and ONNX initializers back bit for bit; hostile files are
one line, never a traceback, and leave the model as it was."""
import json
import os
import pickle

import numpy as np
import pytest

import bareprop as bp
from bareprop import io
from bareprop.cli.main import main
from bareprop.data import Scaler
from bareprop.errors import ModelFileError
from bareprop.interop.weights import load_state_dict_from, save_safetensors, torch_state_dict

from interop_models import DATA, MODELS, logits, real_test_images, trained

torch = pytest.importorskip("torch")
safetensors_torch = pytest.importorskip("safetensors.torch")
real = pytest.mark.skipif(DATA is None, reason="real MNIST files not found")


def fresh(model) -> bp.Sequential:
    """The same architecture, other weights (rebuilt from its spec, as io.load does)."""
    out = io.build(io.architecture(model), model.dtype)
    out.build(model.input_shape)
    return out


def twin_logits(twin, predictor, raw):
    twin.eval()
    with torch.no_grad():
        return twin(torch.from_numpy(predictor.prepare(raw))).numpy()


@real
@pytest.mark.parametrize("name,dtype", [(m, "float32") for m in MODELS] +
                         [("cnn", "float64"), ("mlp-batchnorm", "float64")])
def test_safetensors_load_into_the_pytorch_twin_with_torchs_own_loader(name, dtype, tmp_path):
    from bareprop.reference.torch_twin import torch_module

    predictor = trained(name, dtype)
    path = save_safetensors(predictor.model, tmp_path / "w.safetensors")
    twin = torch_module(fresh(predictor.model))          # torch's layers, other weights
    state = safetensors_torch.load_file(str(path))
    assert {k: (tuple(v.shape), v.dtype) for k, v in state.items()} == \
        {k: (tuple(v.shape), v.dtype) for k, v in twin.state_dict().items()}
    twin.load_state_dict(state)                          # strict: every name, no extra
    raw = real_test_images(200)
    got, want = twin_logits(twin, predictor, raw), logits(predictor, raw)
    scale = np.abs(want).max(axis=1)
    worst = (np.abs(got - want).max(axis=1) / scale).max()
    assert worst <= (1e-12 if dtype == "float64" else 1e-5)   # summation order only
    np.testing.assert_array_equal(got.argmax(1), want.argmax(1))


@real
@pytest.mark.parametrize("fmt", ["safetensors", "npz", "onnx"])
@pytest.mark.parametrize("name", ["cnn", "mlp-batchnorm", "lenet5"])
def test_the_import_path_reads_every_export_back_bit_for_bit(name, fmt, tmp_path):
    predictor = trained(name)
    model = predictor.model
    path = tmp_path / f"w.{fmt}"
    if fmt == "safetensors":
        save_safetensors(model, path)
    elif fmt == "npz":
        np.savez(path, **torch_state_dict(model))
    else:
        bp.save_onnx(predictor, path)
    back = load_state_dict_from(fresh(model), path)
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(back.state_dict()[k], v)
    raw = real_test_images(100)
    np.testing.assert_array_equal(logits(bp.Predictor(back, predictor.scaler), raw),
                                  logits(predictor, raw))


class Wrapped(torch.nn.Module if torch else object):
    """A PyTorch model as people write them: its layers in ``self.net``."""

    def __init__(self):
        super().__init__()
        nn = torch.nn
        self.net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4),
                                 nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(784, 10))

    def forward(self, x):
        return self.net(x)


@real
def test_a_pytorch_models_weights_become_a_bareprop_model_file(tmp_path, capsys):
    torch.manual_seed(0)
    tm = Wrapped()
    tm.train()
    with torch.no_grad():                               # move BatchNorm's running stats
        tm(torch.rand(64, 1, 28, 28) * 3)
    tm.eval()
    safetensors_torch.save_file(tm.state_dict(), str(tmp_path / "t.safetensors"))
    arch = "conv(4,3,padding=1,bias=False) batchnorm relu maxpool(2) flatten linear(10)"
    assert main(["import", str(tmp_path / "t.safetensors"), "--arch", arch, "--scale", "unit",
                 "--out", str(tmp_path / "m.npz")]) == 0
    assert "wrote" in capsys.readouterr().out
    p = bp.Predictor.from_file(tmp_path / "m.npz")
    raw = real_test_images(100)
    with torch.no_grad():
        want = tm(torch.from_numpy(raw[:, None].astype(np.float32) / 255)).numpy()
    got = logits(p, raw)
    assert (np.abs(got - want).max(1) / np.abs(want).max(1)).max() <= 1e-5
    assert p.meta["extra"]["imported_from"].endswith("t.safetensors")


@real
def test_a_keras_models_weights_load_with_channels_last_flatten(tmp_path):
    """A Keras model as Keras users write it (NHWC, Flatten of (H, W, C)): its
    get_weights() saved with np.savez read into the bareprop model of the same layers."""
    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    L = keras.layers
    km = keras.Sequential([keras.Input((28, 28, 1)), L.Conv2D(3, 3, padding="same"),
                           L.BatchNormalization(), L.ReLU(), L.MaxPooling2D(2), L.Flatten(),
                           L.Dense(8), L.BatchNormalization(), L.Activation("tanh"),
                           L.Dense(10)])
    rng = np.random.default_rng(0)
    km.set_weights([w + rng.normal(0, 0.3, w.shape).astype(w.dtype) if w.ndim == 1 else w
                    for w in km.get_weights()])          # BatchNorm off its initial 0/1
    km.set_weights([np.abs(w) + 0.5 if i in (5, 13) else w      # variances stay positive
                    for i, w in enumerate(km.get_weights())])
    np.savez(tmp_path / "k.npz", *km.get_weights())
    model = bp.Sequential(bp.Conv2d(1, 3, 3, padding="same", rng=0), bp.BatchNorm2d(3, eps=1e-3),
                          bp.ReLU(), bp.MaxPool2d(2), bp.Flatten(), bp.Linear(588, 8, rng=1),
                          bp.BatchNorm1d(8, eps=1e-3), bp.Tanh(), bp.Linear(8, 10, rng=2),
                          input_shape=(1, 28, 28))
    load_state_dict_from(model, tmp_path / "k.npz")
    raw = real_test_images(50)
    x = raw[:, None].astype(np.float32) / 255
    want = keras.ops.convert_to_numpy(km(x.transpose(0, 2, 3, 1), training=False))
    model.eval()
    got = model(x)
    assert (np.abs(got - want).max(1) / np.abs(want).max(1)).max() <= 1e-5


# -- hostile files ------------------------------------------------------------------------------
def _safetensors(header: dict, data: bytes = b"", length=None) -> bytes:
    h = json.dumps(header).encode()
    return (len(h) if length is None else length).to_bytes(8, "little") + h + data


def hostile_files(tmp_path, good: bytes):
    """name -> a path of a hostile or wrong weights file, for a Linear(4, 3) model."""
    d = tmp_path / "hostile"
    d.mkdir()
    f32 = lambda n: np.zeros(n, np.float32).tobytes()          # noqa: E731
    cases = {
        "truncated": good[:len(good) // 2],
        "empty": b"",
        "header length beyond the file": _safetensors({}, length=1 << 40),
        "header not JSON": (10).to_bytes(8, "little") + b"{not json!",
        "huge declared shape": _safetensors(
            {"0.weight": {"dtype": "F32", "shape": [1 << 30, 1 << 30], "data_offsets": [0, 48]},
             "0.bias": {"dtype": "F32", "shape": [3], "data_offsets": [48, 60]}}, f32(15)),
        "offsets past the data": _safetensors(
            {"0.weight": {"dtype": "F32", "shape": [3, 4], "data_offsets": [0, 480]},
             "0.bias": {"dtype": "F32", "shape": [3], "data_offsets": [480, 492]}}, f32(15)),
        "bfloat16": _safetensors(
            {"0.weight": {"dtype": "BF16", "shape": [3, 4], "data_offsets": [0, 24]},
             "0.bias": {"dtype": "BF16", "shape": [3], "data_offsets": [24, 30]}}, b"\0" * 30),
        "integer weights": _safetensors(
            {"0.weight": {"dtype": "I32", "shape": [3, 4], "data_offsets": [0, 48]},
             "0.bias": {"dtype": "I32", "shape": [3], "data_offsets": [48, 60]}}, b"\0" * 60),
        "a missing name": _safetensors(
            {"0.weight": {"dtype": "F32", "shape": [3, 4], "data_offsets": [0, 48]}}, f32(12)),
        "an extra name": _safetensors(
            {"0.weight": {"dtype": "F32", "shape": [3, 4], "data_offsets": [0, 48]},
             "0.bias": {"dtype": "F32", "shape": [3], "data_offsets": [48, 60]},
             "9.weight": {"dtype": "F32", "shape": [1], "data_offsets": [60, 64]}}, f32(16)),
        "a wrong shape": _safetensors(
            {"0.weight": {"dtype": "F32", "shape": [4, 3], "data_offsets": [0, 48]},
             "0.bias": {"dtype": "F32", "shape": [3], "data_offsets": [48, 60]}}, f32(15)),
        "NaN weights": _safetensors(
            {"0.weight": {"dtype": "F32", "shape": [3, 4], "data_offsets": [0, 48]},
             "0.bias": {"dtype": "F32", "shape": [3], "data_offsets": [48, 60]}},
            np.full(15, np.nan, np.float32).tobytes()),
        "a pickle": pickle.dumps({"0.weight": np.zeros((3, 4))}),
        "an HDF5 file": b"\x89HDF\r\n\x1a\n" + b"\0" * 64,
        "random bytes": bytes(range(256)),
        "a damaged ONNX file": b"\x08\x07\x12\x05junk\xff\xff\xff",
        "keras arrays of another model": None,
    }
    paths = {}
    for name, data in cases.items():
        paths[name] = d / name.replace(" ", "_")
        if data is not None:
            paths[name].write_bytes(data)
    with open(paths["keras arrays of another model"], "wb") as f:   # np.savez adds .npz
        np.savez(f, np.zeros((4, 3)), np.zeros(3), np.zeros(2))
    paths["an npz of pickled objects"] = d / "objects.npz"
    np.savez(paths["an npz of pickled objects"], **{"0.weight": np.array([{}, print], object),
                                                    "0.bias": np.zeros(3, np.float32)})
    paths.update(hostile_onnx(d))
    buf = d / "torch_save.pt"
    torch.save({"0.weight": torch.zeros(3, 4), "0.bias": torch.zeros(3)}, buf)
    paths["a torch.save file"] = buf
    paths["a directory"] = d / "folder"
    paths["a directory"].mkdir()
    paths["a dangling symlink"] = d / "dangling"
    paths["a dangling symlink"].symlink_to(d / "nowhere")
    paths["a symlink to a directory"] = d / "dirlink"
    paths["a symlink to a directory"].symlink_to(paths["a directory"])
    paths["a symlink loop"] = d / "loop"
    paths["a symlink loop"].symlink_to(d / "loop")
    paths["a missing file"] = d / "missing.safetensors"
    return paths


def hostile_onnx(d):
    """ONNX files whose initializers lie: a huge declared shape, data kept in another
    file, the weights of another model."""
    pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    def model_with(*inits):
        graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g",
                                  [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
                                  list(inits))
        return helper.make_model(graph).SerializeToString()

    def tensor(dims, raw):              # by hand: helper.make_tensor checks the sizes
        t = TensorProto(name="0.weight", data_type=TensorProto.FLOAT, raw_data=raw)
        t.dims.extend(dims)
        return t

    huge = tensor([1 << 20, 1 << 20], b"\0" * 48)
    external = tensor([3, 4], b"")
    external.data_location = TensorProto.EXTERNAL
    external.external_data.add(key="location", value="/etc/passwd")
    other = bp.Predictor(bp.Sequential(bp.Linear(4, 2, rng=0), input_shape=(4,)))
    from onnx import numpy_helper

    twice = [numpy_helper.from_array(np.full((3, 4), v, np.float32), "0.weight")
             for v in (1.0, 2.0)] + [numpy_helper.from_array(np.zeros(3, np.float32), "0.bias")]
    cases = {"an ONNX initializer of a huge shape": model_with(huge),
             "an ONNX initializer in another file": model_with(external),
             "an ONNX file naming an initializer twice": model_with(*twice),
             "the ONNX file of another model": bp.to_onnx(other).SerializeToString()}
    paths = {}
    for name, data in cases.items():
        paths[name] = d / (name.replace(" ", "_") + ".onnx")
        paths[name].write_bytes(data)
    return paths


def test_hostile_weights_are_one_line_and_leave_the_model_unchanged(tmp_path, capsys):
    model = bp.Sequential(bp.Linear(4, 3, rng=0), input_shape=(4,))
    bp.save(model, tmp_path / "m.npz", scaling=Scaler("unit").to_dict())
    good = tmp_path / "good.safetensors"
    save_safetensors(bp.Sequential(bp.Linear(4, 3, rng=1)), good)
    before, messages = model.state_dict(), {}
    for name, path in hostile_files(tmp_path, good.read_bytes()).items():
        with pytest.raises(ModelFileError) as info:
            load_state_dict_from(model, path)
        messages[name] = str(info.value)
        assert "\n" not in messages[name] and str(path) in messages[name], name
        for k, v in model.state_dict().items():
            np.testing.assert_array_equal(v, before[k])
        out = tmp_path / "out.npz"
        assert main(["import", str(path), "--like", str(tmp_path / "m.npz"),
                     "--out", str(out)]) == 2, name
        err = capsys.readouterr().err
        assert err.startswith("bareprop: error:") and err.count("\n") == 1, (name, err)
        assert "Traceback" not in err and not out.exists(), name
    # the refusals say what is wrong, not only that something is
    for name, words in [("a pickle", "never unpickles"), ("a torch.save file", "never unpickles"),
                        ("a missing name", "missing 0.bias"), ("an extra name",
                                                              "unexpected 9.weight"),
                        ("a wrong shape", "shape (4, 3)"), ("bfloat16", "'BF16'"),
                        ("integer weights", "floating point"), ("NaN weights", "NaN"),
                        ("a directory", "a directory"), ("a dangling symlink", "broken symlink"),
                        ("an HDF5 file", "HDF5"), ("huge declared shape", "safetensors"),
                        ("keras arrays of another model", "3 Keras arrays"),
                        ("an ONNX initializer of a huge shape", "beyond what"),
                        ("an ONNX initializer in another file", "another file"),
                        ("the ONNX file of another model", "shape (2, 4)"),
                        ("an ONNX file naming an initializer twice",
                         "initializer '0.weight' appears more than once"),
                        ("an npz of pickled objects", "Python objects")]:
        assert words in messages[name], (name, messages[name])
    # a good file through a symlink is read like the file
    (tmp_path / "link.safetensors").symlink_to(good)
    load_state_dict_from(model, tmp_path / "link.safetensors")
    np.testing.assert_array_equal(model.state_dict()["0.weight"],
                                  bp.Sequential(bp.Linear(4, 3, rng=1)).state_dict()["0.weight"])


def test_import_refusals_are_one_line(tmp_path, capsys):
    model = bp.Sequential(bp.Linear(4, 3, rng=0), input_shape=(4,))
    bp.save(model, tmp_path / "m.npz")
    save_safetensors(model, tmp_path / "w.safetensors")
    w, m = str(tmp_path / "w.safetensors"), str(tmp_path / "m.npz")
    (tmp_path / "taken.npz").write_bytes(b"keep")
    for argv, words in [
        (["import", w, "--out", str(tmp_path / "o.npz")], "--like MODEL"),
        (["import", w, "--like", m, "--preset", "cnn", "--out", str(tmp_path / "o.npz")],
         "drop --preset"),
        (["import", w, "--like", m, "--out", str(tmp_path / "taken.npz")], "exists"),
        (["import", w, "--preset", "lenet5", "--out", str(tmp_path / "o.npz")], "missing"),
        (["import", w, "--preset", "lenet", "--out", str(tmp_path / "o.npz")], "lenet5"),
    ]:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith("bareprop: error:") and err.count("\n") == 1, err
        assert words in err and "Traceback" not in err, err
    assert (tmp_path / "taken.npz").read_bytes() == b"keep"
    assert not (tmp_path / "o.npz").exists()


def test_export_mentions_batchnorms_counters_only_for_a_model_with_batchnorm(tmp_path, capsys):
    pytest.importorskip("safetensors")
    plain = bp.Sequential(bp.Flatten(), bp.Linear(784, 10, rng=0), input_shape=(28, 28))
    with_bn = bp.Sequential(bp.Flatten(), bp.Linear(784, 8, rng=0), bp.BatchNorm1d(8),
                            bp.Linear(8, 10, rng=1), input_shape=(28, 28))
    for name, model, tail in [
            ("plain", plain, ": 2 arrays named as the PyTorch twin's state_dict\n"),
            ("bn", with_bn, ": 8 arrays named as the PyTorch twin's state_dict (plus 1 "
                            "num_batches_tracked, one per BatchNorm)\n")]:
        bp.save(model, tmp_path / f"{name}.npz")
        assert main(["export", str(tmp_path / f"{name}.npz"), "--safetensors",
                     str(tmp_path / f"{name}.safetensors")]) == 0
        out = capsys.readouterr().out
        assert out.endswith(tail) and ("BatchNorm" in out) == (name == "bn"), out
