"""A bareprop model as one ONNX graph of standard operators (opset 17 or newer).

The graph takes what a camera or an IDX file gives: input ``image``, float32 raw pixels
0..255 of shape (N, C, H, W) ((N, 1, 28, 28) for MNIST), and returns ``logits`` (N,
classes). Everything between is in the graph, so a runtime needs no bareprop code:

  image (N, 1, H, W) --Mul(a)--Add(b)-->            the recorded scaling x = a p + b
        --Reshape(N, *input_shape)-->               only when the model takes (H, W) or (H*W,)
        --the layers, one to three nodes each--> logits (N, classes)

Each layer's nodes are what its catalog entry declares (core/catalog.py: ``onnx``), on
weights in bareprop's layout, which is PyTorch's and ONNX's; Dropout and the like add no
node (the identity at inference). A layer without an operator (a user's registered layer)
is refused in one line that names it. Weights are exported as float32 whatever the
model's dtype.
Not here: running the graph (onnxruntime does), weights files (weights.py).
"""
from __future__ import annotations

import json
import math

import numpy as np

from .. import __version__, core
from ..errors import BarepropError, ConfigError, first_line

OPSET = 17              # the default: onnxruntime >= 1.14 and most runtimes run it
MIN_OPSET = 17          # the floor (BatchNormalization-15, Softmax-13 semantics)


class ExportError(BarepropError):
    """A model that cannot be written as ONNX (a layer without an operator, no shape)."""


def _onnx():
    try:
        import onnx
    except ImportError:
        raise ConfigError("ONNX export needs the onnx package: pip install "
                          "'bareprop[onnx]'") from None
    return onnx


def image_shape(input_shape) -> tuple[int, ...]:
    """The (C, H, W) raw-image shape a model of ``input_shape`` is fed from: (C, H, W) as
    it is, (H, W) -> (1, H, W), (D,) with D a square -> (1, sqrt D, sqrt D); other flat
    shapes are kept (such a model is not an image model: its input is (N, D))."""
    shape = tuple(int(d) for d in input_shape)
    if len(shape) == 2:
        return (1, *shape)
    if len(shape) == 1 and math.isqrt(shape[0]) ** 2 == shape[0]:
        side = math.isqrt(shape[0])
        return (1, side, side)
    return shape


class _Graph:
    """Nodes and initializers in the order they are made; every tensor named once."""

    def __init__(self, onnx, opset: int):
        self.onnx, self.opset = onnx, opset
        self.nodes, self.inits, self._names = [], [], set()

    def _unique(self, name: str) -> str:
        base, k = name, 1
        while name in self._names:
            k += 1
            name = f"{base}_{k}"
        self._names.add(name)
        return name

    def const(self, name: str, array) -> str:
        name = self._unique(name)
        self.inits.append(self.onnx.numpy_helper.from_array(np.asarray(array), name))
        return name

    def weight(self, name: str, array) -> str:
        """A parameter or buffer as float32, named as in the state dict (``1.weight``)."""
        return self.const(name, np.ascontiguousarray(array, dtype=np.float32))

    def node(self, op: str, inputs: list[str], name: str, **attrs) -> str:
        out = self._unique(name)
        self.nodes.append(self.onnx.helper.make_node(op, inputs, [out], name=out, **attrs))
        return out


class LayerGraph:
    """The builder a layer's ``onnx`` declaration writes its nodes with: names are made
    from the layer's state-dict prefix ``where`` (``3_gemm``, ``3.weight``)."""

    def __init__(self, g: _Graph, layer, where: str):
        self._g, self._layer, self._where = g, layer, where
        self.opset = g.opset
        self._state = layer.state_dict()

    def node(self, op: str, inputs: list[str], name: str | None = None, **attrs) -> str:
        """Append one ``op`` node on ``inputs``; returns its output's name."""
        return self._g.node(op, inputs, f"{self._where}_{name or op.lower()}", **attrs)

    def params(self, *names: str) -> list[str]:
        """The initializers of the layer's arrays ``names`` that it has (a layer without a
        bias has no ``bias``), named as in the state dict."""
        p = f"{self._where}." if self._where else ""
        return [self._g.weight(p + n, self._state[n]) for n in names if n in self._state]

    def const(self, name: str, value) -> str:
        """An initializer holding ``value`` (a constant of the formula, not a weight)."""
        return self._g.const(f"{self._where}.{name}", value)


def _emit(g: _Graph, model, x: str) -> str:
    """Append the nodes of every layer of ``model`` on tensor ``x``; returns the output."""
    for step in core.walk(model):
        entry = core.info(step.layer)
        if entry is None or entry.onnx is None:
            raise ExportError(
                f"layer {step.where or 0} ({type(step.layer).__name__}) cannot be exported to "
                "ONNX: no standard operator computes it (exportable: "
                f"{', '.join(_exportable())})")
        x = entry.onnx(LayerGraph(g, step.layer, step.where), step.layer, x)
    return x


def _exportable() -> list[str]:
    return sorted(e.name for e in core.catalog.entries() if e.onnx is not None)


def as_predictor(source):
    """A Predictor from a Predictor, a model file or run folder (its recorded scaling and
    classes), or a bare model (inputs used as given: no scaling nodes)."""
    from ..inference import Predictor

    if isinstance(source, Predictor):
        return source
    if isinstance(source, core.Module):
        return Predictor(source)
    return Predictor.from_file(source)


def to_onnx(source, opset: int = OPSET):
    """The ONNX ModelProto of ``source`` (a Predictor: a model with its recorded input
    shape, scaling and class names; a model file or run folder; or a bare model),
    checked by ``onnx.checker`` with full checks.

    >>> proto = to_onnx("runs/x/model.npz")                 # doctest: +SKIP
    """
    predictor = as_predictor(source)
    onnx = _onnx()
    helper = onnx.helper
    if not isinstance(opset, int) or opset < MIN_OPSET:
        raise ConfigError(f"--opset must be an integer >= {MIN_OPSET}, got {opset!r}")
    newest = onnx.defs.onnx_opset_version()
    if opset > newest:
        raise ConfigError(f"--opset {opset} is newer than this onnx package knows "
                          f"({newest}); use {MIN_OPSET}..{newest}")
    model = predictor.model
    if predictor.input_shape is None:
        raise ExportError("the model records no input shape, so the graph's input cannot "
                          "be declared; build it with Sequential(..., input_shape=...) or "
                          "save it with bp.save(model, path, input_shape=...)")
    shape = tuple(predictor.input_shape)
    raw = image_shape(shape)
    g = _Graph(onnx, opset)
    x = "image"
    scaler = predictor.scaler
    if scaler is not None:                  # x = a p + b in float32, as Scaler.apply
        a, b = scaler.coefficients
        if a != 1.0:
            x = g.node("Mul", [x, g.const("input_scale", np.float32(a))], "scale")
        if b != 0.0:
            x = g.node("Add", [x, g.const("input_shift", np.float32(b))], "shift")
    if raw != shape:                        # (N, 1, 28, 28) -> (N, 28, 28) or (N, 784)
        x = g.node("Reshape", [x, g.const("input_shape", np.array((0, *shape), np.int64))],
                   "reshape")
    x = _emit(g, model, x)
    classes = predictor.classes
    out_shape = model.output_shape(shape)
    if x == "image" or not g.nodes:         # a model of dropout alone: still one node
        x = g.node("Identity", [x], "identity")
    g.nodes[-1].output[0] = "logits"
    graph = helper.make_graph(
        g.nodes, "bareprop",
        [helper.make_tensor_value_info("image", onnx.TensorProto.FLOAT, ["N", *raw])],
        [helper.make_tensor_value_info("logits", onnx.TensorProto.FLOAT, ["N", *out_shape])],
        g.inits)
    proto = helper.make_model(graph, producer_name="bareprop", producer_version=__version__,
                              opset_imports=[helper.make_opsetid("", opset)],
                              doc_string="exported by bareprop: input raw pixels 0..255, "
                                         "output logits (softmax gives probabilities)")
    # the oldest IR that holds the opset, so a runtime that knows the opset reads the file
    proto.ir_version = helper.find_min_ir_version_for(list(proto.opset_import))
    helper.set_model_props(proto, {
        "classes": json.dumps(list(classes)),
        "input_scaling": json.dumps(scaler.to_dict() if scaler is not None else None),
        "input_shape": json.dumps(list(shape)),
        "dataset": str((predictor.meta.get("extra") or {}).get("dataset", "")),
    })
    try:
        onnx.checker.check_model(proto, full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        raise ExportError(f"the exported graph fails onnx.checker: {first_line(exc)}") \
            from None
    return proto


def save_onnx(source, path, opset: int = OPSET):
    """Write ``to_onnx(source, opset)`` to ``path`` atomically; returns the proto."""
    from ..archive import atomic_write

    proto = to_onnx(source, opset)
    atomic_write(path, proto.SerializeToString())
    return proto
