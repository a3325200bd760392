"""Every layer the catalog declares (core/catalog.py), through every place that reads its
declaration: built from --arch and written back, saved and loaded, exported to ONNX and
run by onnxruntime, its PyTorch twin (bareprop's state_dict loaded strictly, forward and
every gradient equal in float64), its Keras twin, and the web app's look inside the
network. A layer declared in the catalog is covered here with no list to update."""
import numpy as np
import pytest

import bareprop as bp
from bareprop import core
from bareprop.core.catalog import REQUIRED
from bareprop.errors import ConfigError
from bareprop.experiment import arch

#: a value for each --arch argument type a layer may require
SAMPLE = {"int": 3, "pair": 3, "number": 0.5, "bool": True, "word": "none", "padding": 1,
          "stride": 2}
#: the input shapes tried, images first, then flat features, then a sequence of 28 steps
#: of 28 features (an image read row by row): each layer is built on the first it takes
SHAPES = [(1, 28, 28), (784,), (28, 28)]
DECLARED = [e for e in core.catalog.entries() if e.public and e.arch is not None]


def _call(entry) -> str:
    args = [str(SAMPLE[a.type]) for a in entry.arch.args if a.default is REQUIRED]
    return f"{entry.arch.name}({','.join(args)})" if args else entry.arch.name


def _model(entry, dtype=np.float64):
    """The smallest model --arch builds around the layer: it, then flatten linear(10)."""
    for shape in SHAPES:
        try:
            model = arch.build(f"{_call(entry)} flatten linear(10)", shape, dtype=dtype,
                               seed=0)
        except ConfigError:
            continue
        if type(model.layers[0]) is entry.cls:
            return model
    raise AssertionError(f"--arch builds no model around {entry.name} ({_call(entry)})")


def _x(model, n=4, seed=0):
    return np.random.default_rng(seed).standard_normal((n, *model.input_shape))


params = pytest.mark.parametrize("entry", DECLARED, ids=lambda e: e.name)


def test_the_catalog_holds_every_public_layer_and_nothing_else_lists_them():
    names = {e.name for e in core.catalog.entries() if e.public}
    assert {"Linear", "Conv2d", "ReLU", "BatchNorm2d", "Sequential"} <= names
    assert names <= set(bp.__all__) and names <= set(dir(bp))
    assert all(getattr(bp, n) is core.LAYERS[n] for n in names)
    assert {e.arch.name for e in DECLARED} == set(arch.KINDS)


@params
def test_arch_builds_it_and_writes_it_back(entry):
    model = _model(entry)
    again = arch.build(arch.format_arch(model), model.input_shape)
    assert [type(m) for m in again.layers] == [type(m) for m in model.layers]
    assert again.layers[0].spec() == model.layers[0].spec()


@params
def test_declared_shapes_are_the_arrays_it_allocates(entry, tmp_path):
    """The model-file checks and the memory estimate count what ``params`` declares:
    it must be exactly the layer's state dict."""
    layer = _model(entry).layers[0]
    declared = entry.param_shapes(layer.spec())
    assert declared == {k: v.shape for k, v in layer.state_dict().items()}
    assert entry.param_count(layer.spec()) == sum(v.size for v in layer.state_dict().values())


@params
def test_a_model_file_round_trip_keeps_every_output(entry, tmp_path):
    model = _model(entry).eval()
    back = bp.load(bp.save(model, tmp_path / "m.npz")).eval()
    x = _x(model)
    np.testing.assert_array_equal(back(x), model(x))


@params
def test_onnx_export_computes_what_bareprop_computes(entry):
    ort = pytest.importorskip("onnxruntime")
    from bareprop.interop.onnx_export import to_onnx

    model = _model(entry, np.float32).eval()
    proto = to_onnx(bp.Predictor(model))
    session = ort.InferenceSession(proto.SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    x = _x(model).astype(np.float32)
    raw = x.reshape(len(x), 1, 28, 28)                   # the graph takes images
    got = session.run(None, {"image": raw})[0]
    np.testing.assert_allclose(got, model(x), rtol=1e-4, atol=1e-5)


@params
def test_the_pytorch_twin_loads_its_state_dict_and_matches_every_gradient(entry):
    torch = pytest.importorskip("torch")
    from bareprop.reference.torch_twin import torch_module

    model = _model(entry)
    model.train()
    x = _x(model)
    y = model(x)                                          # draws any dropout mask first
    twin = torch_module(model, replay_masks=True).train()
    tx = torch.tensor(x, requires_grad=True)
    ty = twin(tx)
    np.testing.assert_allclose(ty.detach().numpy(), y, rtol=1e-10, atol=1e-12)
    r = np.random.default_rng(1).standard_normal(y.shape)
    model.zero_grad()
    dx = model.backward(r, need_dx=True)
    (ty * torch.tensor(r)).sum().backward()
    np.testing.assert_allclose(tx.grad.numpy(), dx, rtol=1e-9, atol=1e-12)
    grads = dict(twin.named_parameters())
    for name, p in model.named_parameters():
        np.testing.assert_allclose(grads[name].grad.numpy(), p.grad, rtol=1e-9, atol=1e-12,
                                   err_msg=name)


@params
def test_the_keras_twin_computes_the_same_outputs(entry, monkeypatch):
    monkeypatch.setenv("KERAS_BACKEND", "torch")        # as the twin runs it
    pytest.importorskip("keras")
    from bareprop.reference.keras_twin import KerasTwin, to_nhwc

    model = _model(entry, np.float32)
    if entry.keras is None:                              # declared without a Keras twin:
        with pytest.raises(ConfigError, match=entry.cls.__name__):   # refused, named
            KerasTwin(model, bp.SGD(model.parameters(), lr=0.1), bp.CrossEntropyLoss())
        return
    twin = KerasTwin(model, bp.SGD(model.parameters(), lr=0.1), bp.CrossEntropyLoss())
    x = _x(model).astype(np.float32)
    got = twin.keras.ops.convert_to_numpy(twin.model(to_nhwc(x), training=False))
    np.testing.assert_allclose(got, model.eval()(x), rtol=1e-4, atol=1e-5)


@params
def test_the_web_apps_look_inside_shows_it(entry, tmp_path):
    pytest.importorskip("starlette")
    from bareprop.web.infer import LoadedModel

    model = _model(entry, np.float32)
    path = bp.save(model, tmp_path / "model.npz")
    loaded = LoadedModel("run", path)
    layers = loaded.description["layers"]
    assert layers[0]["type"] == entry.cls.__name__
    assert layers[0]["output_shape"] == list(model.shapes[0])
    image = np.random.default_rng(0).integers(0, 256, (28, 28)).astype(np.uint8)
    shown = [a["layer"] for a in loaded.predict(image)["activations"]]
    assert (0 in shown) == entry.shows_output
