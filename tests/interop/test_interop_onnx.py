"""ONNX export: every preset's model, run by onnxruntime on 1,000 real test images, gives
bareprop's logits (float32) and the same predicted classes; the graph passes
onnx.checker's full check; every layer maps; a layer that cannot be exported is one line."""
import json

import numpy as np
import pytest

import bareprop as bp
from bareprop.cli.main import main
from bareprop.data import Scaler
from bareprop.interop.onnx_export import ExportError, image_shape, save_onnx, to_onnx

from interop_models import DATA, MODELS, logits, mnist, real_test_images, trained

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
real = pytest.mark.skipif(DATA is None, reason="real MNIST files not found")
RTOL = 1e-5         # float32: per image, max |onnx - bareprop| <= RTOL * max |logit|


def run_onnx(path_or_proto, raw: np.ndarray) -> np.ndarray:
    """onnxruntime's logits for raw uint8 images (N, H, W), fed as float32 (N, 1, H, W)."""
    model = path_or_proto if isinstance(path_or_proto, str) else \
        path_or_proto.SerializeToString()
    sess = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    (inp,), (out,) = sess.get_inputs(), sess.get_outputs()
    assert (inp.name, inp.type, out.name) == ("image", "tensor(float)", "logits")
    return sess.run(["logits"], {"image": raw[:, None].astype(np.float32)})[0]


def assert_same_logits(got, want, rtol=RTOL):
    """Per image, the largest difference is within rtol of the image's largest logit
    (an elementwise rtol would fail on logits near 0, where float32's rounding of the
    GEMMs' different summation orders is all there is), and every argmax agrees."""
    assert got.shape == want.shape and got.dtype == np.float32
    scale = np.abs(want).max(axis=1)
    worst = (np.abs(got - want).max(axis=1) / scale).max()
    assert worst <= rtol, f"logits differ by {worst:.2e} of their scale"
    np.testing.assert_array_equal(got.argmax(axis=1), want.argmax(axis=1))


@real
@pytest.mark.parametrize("name", MODELS)
def test_onnxruntime_gives_bareprops_logits_on_1000_real_test_images(name, tmp_path):
    predictor = trained(name)
    path = tmp_path / f"{name}.onnx"
    save_onnx(predictor, path)
    onnx.checker.check_model(str(path), full_check=True)
    proto = onnx.load(str(path))
    assert proto.opset_import[0].version >= 17
    dims = [d.dim_param or d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["N", 1, 28, 28]
    props = {p.key: p.value for p in proto.metadata_props}
    assert json.loads(props["classes"]) == list(predictor.classes)
    assert json.loads(props["input_scaling"]) == predictor.scaler.to_dict()
    raw = real_test_images()
    got, want = run_onnx(str(path), raw), logits(predictor, raw)
    assert_same_logits(got, want)
    y = mnist().y_test[:len(raw)]
    assert np.mean(got.argmax(1) == y) == np.mean(want.argmax(1) == y)   # same accuracy
    # no Dropout in the inference graph; BatchNorm is BatchNormalization with running stats
    ops = {n.op_type for n in proto.graph.node}
    assert "Dropout" not in ops
    has_bn = any(isinstance(m, (bp.BatchNorm1d, bp.BatchNorm2d)) for m in predictor.model.modules())
    assert ("BatchNormalization" in ops) == has_bn


def every_layer_model(dtype=np.float32):
    """A model with every exportable layer (BatchNorm running stats set off 0/1)."""
    rng = np.random.default_rng(0)
    model = bp.Sequential(
        bp.Conv2d(1, 4, 3, padding="same", rng=0), bp.BatchNorm2d(4), bp.ReLU(),
        bp.MaxPool2d(2), bp.Conv2d(4, 6, (3, 2), stride=2, padding=(1, 0), bias=False, rng=1),
        bp.GELU(), bp.AvgPool2d(2, stride=1), bp.Dropout2d(0.2),
        bp.Sequential(bp.Conv2d(6, 8, 2, rng=2), bp.LeakyReLU(0.2)),
        bp.GlobalAvgPool2d(), bp.Linear(8, 16, rng=3), bp.BatchNorm1d(16), bp.GELU("tanh"),
        bp.Sigmoid(), bp.Dropout(0.3), bp.Identity(), bp.Linear(16, 12, rng=4), bp.Tanh(),
        bp.Linear(12, 10, rng=5), bp.Softmax(), input_shape=(1, 28, 28), dtype=dtype)
    for m in model.modules():
        if isinstance(m, (bp.BatchNorm1d, bp.BatchNorm2d)):
            m.running_mean[:] = rng.normal(size=m.num_features)
            m.running_var[:] = rng.uniform(0.5, 2.0, m.num_features)
            m.weight.data[:] = rng.uniform(0.5, 1.5, m.num_features)
    return model


@pytest.mark.parametrize("opset", [17, 20])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_every_layer_maps_to_standard_operators(opset, dtype):
    model = every_layer_model(dtype)
    p = bp.Predictor(model, Scaler("standard", 33.3, 78.6))
    proto = to_onnx(p, opset)
    ops = {n.op_type for n in proto.graph.node}
    assert {"Conv", "BatchNormalization", "Relu", "MaxPool", "AveragePool", "LeakyRelu",
            "GlobalAveragePool", "Gemm", "Sigmoid", "Tanh", "Softmax", "Mul", "Add"} <= ops
    assert ("Gelu" in ops) == (opset >= 20) and ("Erf" in ops) == (opset < 20)
    raw = np.random.default_rng(1).integers(0, 256, (64, 28, 28)).astype(np.uint8)
    got = run_onnx(proto, raw)
    assert_same_logits(got, logits(p, raw).astype(np.float32), rtol=1e-5)


def test_mlp_models_take_images_too():
    """An MLP of input (784,) (a version 1 file) or (28, 28) takes (N, 1, 28, 28) images;
    a scaling of 'raw' adds no node, 'unit' one Mul."""
    for shape, first in (((784,), bp.Linear(784, 10, rng=0)), ((28, 28), bp.Flatten())):
        layers = [first] if shape == (784,) else [first, bp.Linear(784, 10, rng=0)]
        model = bp.Sequential(*layers, input_shape=shape)
        assert image_shape(shape) == (1, 28, 28)
        for kind, scale_ops in (("raw", []), ("unit", ["Mul"])):
            p = bp.Predictor(model, Scaler(kind))
            proto = to_onnx(p)
            assert [n.op_type for n in proto.graph.node][:len(scale_ops)] == scale_ops
            raw = np.random.default_rng(2).integers(0, 256, (8, 28, 28)).astype(np.uint8)
            assert_same_logits(run_onnx(proto, raw), logits(p, raw))


@bp.register_layer
class Doubler(bp.Module):
    """y = 2 x: a user's layer, which no ONNX operator is known to compute."""

    preserves_shape = True

    def forward(self, x):
        return 2 * x

    def input_grad(self, dout):
        return 2 * dout


def test_a_layer_without_an_operator_is_named_in_one_line(tmp_path, capsys):
    model = bp.Sequential(bp.Flatten(), Doubler(), bp.Linear(784, 10, rng=0),
                          input_shape=(28, 28))
    with pytest.raises(ExportError, match=r"^layer 1 \(Doubler\) cannot be exported to ONNX"):
        to_onnx(bp.Predictor(model, Scaler("unit")))
    bp.save(model, tmp_path / "m.npz", scaling=Scaler("unit").to_dict())
    assert main(["export", str(tmp_path / "m.npz"), "--onnx", str(tmp_path / "m.onnx")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "layer 1 (Doubler)" in err and "Traceback" not in err
    assert not (tmp_path / "m.onnx").exists()


def test_export_refusals_are_one_line(tmp_path, capsys):
    model = bp.Sequential(bp.Flatten(), bp.Linear(784, 10, rng=0), input_shape=(28, 28))
    bp.save(model, tmp_path / "m.npz", scaling=Scaler("unit").to_dict())
    m = str(tmp_path / "m.npz")
    (tmp_path / "old.onnx").write_bytes(b"keep me")
    cases = [
        (["export", m], "nothing to export"),
        (["export", m, "--onnx", str(tmp_path / "old.onnx")], "exists"),
        (["export", m, "--onnx", str(tmp_path / "a"), "--safetensors", str(tmp_path / "a")],
         "the same file"),
        (["export", m, "--onnx", str(tmp_path / "no" / "x.onnx")], "does not exist"),
        (["export", m, "--onnx", str(tmp_path / "x.onnx"), "--opset", "16"], ">= 17"),
        (["export", m, "--onnx", str(tmp_path / "x.onnx"), "--opset", "999"], "newer"),
        (["export", str(tmp_path / "missing.npz"), "--onnx", str(tmp_path / "x.onnx")],
         "no such model file"),
    ]
    for argv, words in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith("bareprop: error:") and err.count("\n") == 1, err
        assert words in err and "Traceback" not in err
    assert (tmp_path / "old.onnx").read_bytes() == b"keep me"
    assert not (tmp_path / "x.onnx").exists()
    with pytest.raises(ExportError, match="records no input shape"):
        to_onnx(bp.Predictor(bp.Sequential(bp.ReLU())))        # nothing fixes its input


def test_to_onnx_takes_a_model_file_a_predictor_or_a_bare_model(tmp_path):
    model = bp.Sequential(bp.Flatten(), bp.Linear(784, 10, rng=0), input_shape=(28, 28))
    bp.save(model, tmp_path / "model.npz", classes=list("abcdefghij"),
            scaling=Scaler("unit").to_dict())

    def props(proto):
        return {p.key: json.loads(p.value) for p in proto.metadata_props if p.key != "dataset"}

    from_file = to_onnx(tmp_path / "model.npz")
    assert props(from_file) == {"classes": list("abcdefghij"), "input_shape": [28, 28],
                                "input_scaling": Scaler("unit").to_dict()}
    assert props(to_onnx(bp.Predictor.from_file(tmp_path))) == props(from_file)   # run folder
    bare = to_onnx(model)                    # no recorded scaling: inputs used as given
    assert props(bare)["input_scaling"] is None
    assert "Mul" in {n.op_type for n in from_file.graph.node}
    assert "Mul" not in {n.op_type for n in bare.graph.node}
