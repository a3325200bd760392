"""RNN, LSTM and GRU: recurrent layers with hand-written backpropagation through time,
as torch.nn.RNN, LSTM and GRU (parameters named, shaped and ordered as theirs), batch
first by default and returning the final hidden state unless asked for every step's,
each declared once: --arch names rnn, lstm, gru, ONNX's RNN/LSTM/GRU operators, the
PyTorch twin (reference/torch_recurrent.py) and the Keras one.

Not here: the shared layer and its BPTT (bptt.py), the cells' per-step maths
(cells.py), image-to-sequence adapters (sequence.py).
"""
from __future__ import annotations

import numpy as np

from ..errors import ConfigError
from .bptt import Recurrent, param_names, sequence_features
from .catalog import Arch, Arg, register_layer, width
from .cells import CELLS

#: the most stacked layers a model file or --arch may declare (PyTorch sets none; the
#: bound keeps an untrusted spec from naming millions of arrays before its size is read)
MAX_LAYERS = 64
_NONLINEARITIES = ("tanh", "relu")


def _params(gates: int):
    """The ``params`` declaration: every array of a layer of ``spec``, from its sizes."""
    def shapes(spec):
        f, h = width(spec, "input_size"), width(spec, "hidden_size")
        layers = width(spec, "num_layers", 1)
        if layers > MAX_LAYERS:
            raise ConfigError(f"num_layers must be at most {MAX_LAYERS}, got {layers}")
        dirs = 2 if spec.get("bidirectional") else 1
        out = {}
        for k, _, name in param_names(layers, dirs == 2, spec.get("bias", True) is not False):
            fan_in = f if k == 0 else dirs * h
            out[name] = ((gates * h, fan_in) if name.startswith("weight_ih") else
                         (gates * h, h) if name.startswith("weight_hh") else (gates * h,))
        return out
    return shapes


def _sizes(name: str):
    """The ``sizes`` declaration: input_size read off a (T, F) sequence shape."""
    def sizes(shape):
        return {"input_size": sequence_features(name, None, shape)}
    return sizes


# -- the declarations: ONNX's RNN/LSTM/GRU operators, the twins -------------------------
#: ONNX's gate order as indices into PyTorch's: LSTM (i, o, f, c) from (i, f, g, o),
#: GRU (z, r, h) from (r, z, n); an RNN has one gate
_ONNX_GATES = {"RNN": (0,), "LSTM": (0, 3, 1, 2), "GRU": (1, 0, 2)}


def _onnx(g, m, x):
    """One ONNX RNN/LSTM/GRU node per stacked layer (opset 14+, time-major, zero initial
    states), W (D, G H, F), R (D, G H, H) and B (D, 2 G H) packed per direction in ONNX's
    gate order; GRU with linear_before_reset=1, PyTorch's reset-inside-the-product. The
    final states are read off Y (T, D, N, H): the forward direction's at step T, the
    reverse one's at step 1."""
    kind, h, dirs = m._cell_name, m.hidden_size, m.directions
    gates = _ONNX_GATES[kind]

    def pack(a):              # (G H, ...) in PyTorch's gate order -> ONNX's, float32
        return a.reshape(len(gates), h, *a.shape[1:])[list(gates)].reshape(a.shape)

    def const(name, arrays):
        return g.const(name, np.stack(arrays).astype(np.float32))

    def ints(name, values):
        return g.const(name, np.array(values, np.int64))

    if m.batch_first:
        x = g.node("Transpose", [x], perm=[1, 0, 2])              # (T, N, F)
    for k in range(m.num_layers):
        ws = [m._weights(k, d) for d in range(dirs)]
        inputs = [x, const(f"W_l{k}", [pack(w[0]) for w in ws]),
                  const(f"R_l{k}", [pack(w[1]) for w in ws])]
        if m.bias:
            inputs.append(const(f"B_l{k}", [np.concatenate([pack(w[2]), pack(w[3])])
                                            for w in ws]))
        attrs = {"hidden_size": h, "direction": "bidirectional" if dirs == 2 else "forward"}
        if kind == "RNN":
            attrs["activations"] = [m.nonlinearity.capitalize()] * dirs
        if kind == "GRU":
            attrs["linear_before_reset"] = 1
        y = g.node(kind, inputs, **attrs)                          # (T, D, N, H)
        last = k == m.num_layers - 1
        if not last or m.return_sequences:
            time_major = not last or not m.batch_first
            y = g.node("Transpose", [y], perm=[0, 2, 1, 3] if time_major else [2, 0, 1, 3])
            x = g.node("Reshape", [y, ints(f"seq_shape_l{k}", [0, 0, -1])])  # (., ., D H)
    if m.return_sequences:
        return x
    final = [g.node("Gather", [g.node("Gather", [y, ints(f"step_{d}", step)], axis=0),
                               ints(f"dir_{d}", d)], axis=0)       # (N, H)
             for d, step in enumerate((-1, 0)[:dirs])]
    return final[0] if dirs == 1 else g.node("Concat", final, axis=1)


def _keras(k, m, shape):
    """Keras' own LSTM, GRU (reset_after=True, PyTorch's form) or SimpleRNN, one per
    stacked layer, in Bidirectional(merge_mode="concat") when bidirectional, inside one
    keras.Sequential that holds every weight (interop/keras_layout.py converts them:
    kernels transposed, GRU's gates reordered to (z, r, h), LSTM's and SimpleRNN's two
    biases summed into Keras' one). Forward only: Keras trains that one bias where
    PyTorch and bareprop train two, so an LSTM or RNN trains differently there."""
    if not m.batch_first:
        raise ConfigError(f"{m.short_name()}: Keras' recurrent layers take batch-first "
                          "sequences; build it with batch_first=True")
    made = []
    for i in range(m.num_layers):
        kw = {"return_sequences": m.return_sequences or i < m.num_layers - 1,
              "use_bias": m.bias}
        if m._cell_name == "LSTM":
            layer = k.layers.LSTM(m.hidden_size, **kw)
        elif m._cell_name == "GRU":
            layer = k.layers.GRU(m.hidden_size, reset_after=True, **kw)
        else:
            layer = k.layers.SimpleRNN(m.hidden_size, activation=m.nonlinearity, **kw)
        made.append(k.layers.Bidirectional(layer, merge_mode="concat")
                    if m.bidirectional else layer)
    return [k.keras.Sequential(made)]


def _arch(name: str, *extra):
    return Arch(name, Arg("hidden_size", "int"), Arg("layers", "int", 1, param="num_layers"),
                *extra, Arg("bias", "bool", True), Arg("bidirectional", "bool", False),
                Arg("sequences", "bool", False, param="return_sequences"),
                Arg("init", "word", None), sizes=_sizes(name.upper()))


def _declare(name: str, *extra):
    return dict(arch=_arch(name, *extra), params=_params(CELLS[name.upper()].gates),
                onnx=_onnx, torch=lambda t, m: t.recurrent(m), keras=_keras)


@register_layer(**_declare("rnn", Arg("nonlinearity", "word", "tanh")))
class RNN(Recurrent):
    """Elman RNN, as torch.nn.RNN: h_t = act(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh),
    act = tanh (default) or relu. Parameters weight_ih_l{k} (H, F), weight_hh_l{k} (H, H),
    bias_ih_l{k}, bias_hh_l{k} (H,), ``_reverse`` for the backward direction.

    Shapes: x (N, T, F) -> (N, H), (N, 2H) bidirectional, (N, T, D H) with
    return_sequences (stacking, directions, layouts: Recurrent in core/bptt.py).
    BPTT: da_t = dh_t act'(a_t), dh_{t-1} += da_t W_hh (core/cells.py, docs/backprop.md).

    >>> import numpy as np, bareprop as bp
    >>> bp.RNN(28, 16, rng=0)(np.zeros((2, 28, 28), np.float32)).shape
    (2, 16)
    """

    _cell_name = "RNN"

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 nonlinearity: str = "tanh", bias: bool = True, batch_first: bool = True,
                 bidirectional: bool = False, return_sequences: bool = False, init="torch",
                 rng=None, dtype=np.float32):
        if nonlinearity not in _NONLINEARITIES:
            raise ConfigError(f"RNN: nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        self.nonlinearity = nonlinearity
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first,
                         bidirectional, return_sequences, init, rng, dtype)

    def _make_cell(self):
        return CELLS["RNN"](self.nonlinearity)

    def spec(self):
        return {**super().spec(), "nonlinearity": self.nonlinearity}


@register_layer(**_declare("lstm"))
class LSTM(Recurrent):
    """Long short-term memory, as torch.nn.LSTM: gates (i, f, g, o) from
    z = x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh, c_t = f c_{t-1} + i g,
    h_t = o tanh(c_t). Parameters weight_ih_l{k} (4H, F), weight_hh_l{k} (4H, H), biases
    (4H,), the gates' rows in that order. Shapes as RNN's (core/bptt.py: Recurrent).

    BPTT: dc_t = dc_{t+1} f_{t+1} + dh_t o (1 - tanh^2 c_t): the cell state carries the
    gradient back multiplied only by the forget gates (core/cells.py, docs/backprop.md).

    >>> import numpy as np, bareprop as bp
    >>> bp.LSTM(28, 16, bidirectional=True, rng=0)(np.zeros((2, 28, 28), np.float32)).shape
    (2, 32)
    """

    _cell_name = "LSTM"


@register_layer(**_declare("gru"))
class GRU(Recurrent):
    """Gated recurrent unit, as torch.nn.GRU: gates (r, z, n),
    n = tanh(x W_in^T + b_in + r * (h W_hn^T + b_hn)), h_t = (1 - z) n + z h_{t-1}.
    Parameters weight_ih_l{k} (3H, F), weight_hh_l{k} (3H, H), biases (3H,). Shapes as
    RNN's (core/bptt.py: Recurrent).

    BPTT: the reset gate multiplies the recurrent product, so the recurrent weights'
    delta differs from the input's in its n rows (da_n r): core/cells.py, docs/backprop.md.

    >>> import numpy as np, bareprop as bp
    >>> bp.GRU(28, 16, return_sequences=True, rng=0)(np.zeros((2, 28, 28), np.float32)).shape
    (2, 28, 16)
    """

    _cell_name = "GRU"
