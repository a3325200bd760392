"""The stacked, optionally bidirectional recurrent layer that RNN, LSTM and GRU share
(core/recurrent.py declares them): the layout, the stacking, and backpropagation through
time organised around a few large GEMMs.

Each of ``num_layers`` layers runs one cell (core/cells.py) per direction over the
sequence. Per layer and direction the input projections of all T steps are one GEMM,
each step adds one recurrent GEMM, and after the backward loop the weight gradients are
one GEMM each over all steps:

    xp    = x W_ih^T + b                     (T N, G H)    the input, every step at once
    dW_ih = dzx^T x      dW_hh = dzh^T h_prev      db = sum of dzx (dzh) over T and N
    dx    = dzx W_ih                         (T N, F)      to the layer below

Not here: the cells' per-step maths (cells.py), the declarations (recurrent.py).
"""
from __future__ import annotations

import copy
import math

import numpy as np

from ..errors import ConfigError, positive_int
from .cells import CELLS
from .init import as_generator, get_initializer, weight_dtype
from .linear import ones
from .module import Module
from .parameter import Parameter


def param_names(num_layers: int, bidirectional: bool, bias: bool) -> list[tuple[int, int, str]]:
    """(layer, direction, name) of every parameter in PyTorch's state_dict order."""
    out = []
    for k in range(num_layers):
        for d in range(2 if bidirectional else 1):
            sfx = f"_l{k}" + ("_reverse" if d else "")
            kinds = ("weight_ih", "weight_hh") + (("bias_ih", "bias_hh") if bias else ())
            out += [(k, d, kind + sfx) for kind in kinds]
    return out


def sequence_features(name: str, want: int | None, shape) -> int:
    """F of a (T, F) sequence shape for layer ``name`` (expecting F == ``want`` when
    given), or a one-line ConfigError naming the layer, the shape and the fix."""
    shape = tuple(shape)
    if len(shape) == 2 and (want is None or shape[1] == want):
        return shape[1]
    wanted = f"(T, {want})" if want is not None else "(T, F)"
    if len(shape) == 1:
        fix = ("; the layer before returns its final state only: give it "
               "sequences=true (return_sequences=True)")
    elif len(shape) == 3:
        fix = "; read the image as a sequence first: put rows (or cols) before it"
    elif len(shape) == 2:
        fix = f": {shape[1]} features per step, not {want}"
    else:
        fix = ""
    raise ConfigError(f"{name} takes sequences {wanted} (T steps of F features) but its "
                      f"input has shape {shape}{fix}")


class Recurrent(Module):
    """The shared layer of RNN, LSTM and GRU (the subclass names its cell).

    Shape: x (N, T, F) (batch_first, the default) or (T, N, F) -> the last layer's final
    hidden state (N, H), (N, 2H) when bidirectional (the forward direction's after step
    T, then the reverse one's after step 1: PyTorch's ``cat([h_n[-2], h_n[-1]], 1)``),
    or with ``return_sequences`` every step's (N, T, H) / (N, T, 2H) (PyTorch's
    ``output``; (T, N, ..) when not batch_first). Initial states are zero.
    Layer k > 0 reads the previous layer's outputs, both directions concatenated.
    In a Sequential (whose examples come batch first) only batch_first=True fits.

    init: "torch" (default, PyTorch's U(-1/sqrt(H), 1/sqrt(H)) for every array), another
    name of core/init.py (weight matrices drawn with it, biases zero), or None (nothing
    drawn: the weights come from a file, or only the shapes matter); rng, dtype
    (float32 or float64) as every layer.
    """

    _cell_name = ""
    fresh_output = True         # y is a new array: nothing of the cache aliases it

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 bias: bool = True, batch_first: bool = True, bidirectional: bool = False,
                 return_sequences: bool = False, init="torch", rng=None, dtype=np.float32):
        name = type(self).__name__
        self.input_size = positive_int("input_size", input_size)
        self.hidden_size = positive_int("hidden_size", hidden_size)
        self.num_layers = positive_int("num_layers", num_layers)
        for key, value in (("bias", bias), ("batch_first", batch_first),
                           ("bidirectional", bidirectional),
                           ("return_sequences", return_sequences)):
            if not isinstance(value, (bool, np.bool_)):
                raise ConfigError(f"{name}: {key} must be True or False, got {value!r}")
        self.batch_first, self.bidirectional = bool(batch_first), bool(bidirectional)
        self.return_sequences = bool(return_sequences)
        self.init = init
        if init is not None:
            get_initializer(init)
        dtype = weight_dtype(dtype)
        self._cell = self._make_cell()
        g, h = self._cell.gates * self.hidden_size, self.hidden_size
        self._names = param_names(self.num_layers, self.bidirectional, bool(bias))
        dirs = self.directions
        for k, _, pname in self._names:
            fan_in = self.input_size if k == 0 else dirs * h
            shape = ((g, fan_in) if pname.startswith("weight_ih") else
                     (g, h) if pname.startswith("weight_hh") else (g,))
            setattr(self, pname, Parameter(np.zeros(shape, dtype)))
        self.bias = bool(bias)
        self._ws: dict = {}
        self._cache = self._grads = self._handed = None
        if init is not None:          # None: the weights come from a file, or only shapes
            self.reset_parameters(as_generator(rng))

    def _make_cell(self):
        return CELLS[self._cell_name]()

    def with_cell(self, cell) -> "Recurrent":
        """A shallow copy of this layer that runs ``cell`` (an object with the cells'
        forward/backward contract, core/cells.py) with its own scratch and cache, and
        this layer's very Parameters: gradients it accumulates are this layer's. What a
        fast path (fast/recurrent.py) puts in a training step's chain; the layer itself
        is untouched and stays the reference."""
        twin = copy.copy(self)
        twin._cell, twin._ws = cell, {}
        twin._cache = twin._grads = twin._handed = None
        return twin

    @property
    def directions(self) -> int:
        return 2 if self.bidirectional else 1

    def reset_parameters(self, rng: np.random.Generator) -> None:
        """init "torch" (the default): every array from U(-1/sqrt(H), 1/sqrt(H)), in
        state-dict order, as PyTorch. Any other initialiser of core/init.py draws each
        weight matrix with fan_in = its columns and fan_out = its rows; biases are zero."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        fn = get_initializer(self.init)
        for _, _, name in self._names:
            p = getattr(self, name)
            if self.init == "torch":
                value = rng.uniform(-bound, bound, p.shape)
            elif p.data.ndim == 2:
                value = fn(p.shape, p.shape[1], p.shape[0], rng)
            else:
                value = np.zeros(p.shape)
            p.replace(np.ascontiguousarray(value, dtype=p.dtype))   # cast after scaling

    def _weights(self, k: int, d: int):
        """(W_ih, W_hh, b_ih, b_hh) of layer k, direction d (biases None without bias)."""
        sfx = f"_l{k}" + ("_reverse" if d else "")
        kinds = ("weight_ih", "weight_hh") + (("bias_ih", "bias_hh") if self.bias else ())
        arrays = [getattr(self, kind + sfx).data for kind in kinds]
        return tuple(arrays) if self.bias else (*arrays, None, None)

    # -- shapes ---------------------------------------------------------------------
    @property
    def out_features(self) -> int:
        return self.directions * self.hidden_size

    def output_shape(self, in_shape):
        if not self.batch_first:
            raise ConfigError(f"{self.short_name()} was built with batch_first=False and takes "
                              "(T, N, F), but a model feeds examples batch first (N, ...): "
                              "build it with batch_first=True")
        sequence_features(self.short_name(), self.input_size, in_shape)
        steps = in_shape[0]
        return (steps, self.out_features) if self.return_sequences else (self.out_features,)

    #: values per step and unit that one direction of one layer keeps for the backward
    #: and uses in it: RNN h and its delta; LSTM gates (4), c, tanh c, h, the gates'
    #: delta (4), o (1 - tanh^2 c); GRU gates (3), h, gh_n, both deltas (6), 1 - z, h - n
    _SCRATCH_PER_UNIT = {"RNN": 2, "LSTM": 12, "GRU": 13}

    def scratch(self, in_shape) -> dict[str, int]:
        """Values per training example kept between steps: the inputs of every layer in
        time-major order, and each layer and direction's caches and deltas (for the
        memory estimate and the model-file checks)."""
        self.output_shape(in_shape)
        t, h, dirs = in_shape[0], self.hidden_size, self.directions
        layers_in = self.input_size + (self.num_layers - 1) * dirs * h
        per_step = self._SCRATCH_PER_UNIT[self._cell_name] * h * dirs * self.num_layers
        return {"time-major inputs": t * layers_in, "caches and deltas": t * per_step}

    def short_name(self):
        return f"{type(self).__name__}({self.input_size}, {self.hidden_size})"

    # -- scratch ----------------------------------------------------------------------
    def _buffer(self, key, shape, dtype):
        """A scratch array kept across training steps of the same shape (a fresh one in
        eval mode: inference may run one model from several threads). Uninitialised:
        every user writes it before reading."""
        if not self.training:
            return np.empty(shape, dtype)
        a = self._ws.get(key)
        if a is None or a.shape != shape or a.dtype != dtype:
            a = self._ws[key] = np.empty(shape, dtype)
        return a

    def _bufs(self, k, d, dtype):
        return lambda name, shape: self._buffer((k, d, name), shape, dtype)

    # -- forward ------------------------------------------------------------------------
    def forward(self, x):
        x = self._check(x)
        seq = x.transpose(1, 0, 2) if self.batch_first else x    # (T, N, F)
        t, n = seq.shape[:2]
        inp = np.ascontiguousarray(seq)                            # (T, N, F), time-major
        cell, hsz, layers = self._cell, self.hidden_size, []
        for k in range(self.num_layers):
            caches = []
            for d in range(self.directions):
                w_ih, w_hh, b_ih, b_hh = self._weights(k, d)
                buf = self._bufs(k, d, inp.dtype)
                xp = buf("xp", (t, n, w_ih.shape[0]))              # (T, N, G H)
                np.matmul(inp.reshape(t * n, -1), w_ih.T, out=xp.reshape(t * n, -1))
                if b_ih is not None:
                    xp += (b_ih + b_hh) if cell.fold_bias else b_ih
                order = range(t) if d == 0 else range(t - 1, -1, -1)
                caches.append(cell.forward(xp, w_hh, b_hh, order, buf))
            layers.append((inp, caches))
            hs = [c["h"] for c in caches]                          # (T, N, H) each
            inp = hs[0] if len(hs) == 1 else np.concatenate(hs, axis=2)   # (T, N, D H)
        self._cache, self._grads = layers, None
        if self.return_sequences:
            y = inp.transpose(1, 0, 2) if self.batch_first else inp
            return np.array(y, order="C")                          # (N, T, D H), a copy
        last = [hs[0][t - 1]] + ([hs[1][0]] if len(hs) == 2 else [])   # fwd: T, rev: 1
        return np.concatenate(last, axis=1) if len(last) == 2 else last[0].copy()

    def hidden_states(self) -> np.ndarray:
        """The last layer's output at every step of the last forward, batch first:
        (N, T, D H), both directions side by side (forward first) — what
        ``return_sequences=True`` returns, kept whatever it returned (for the look inside
        the network: the report's and the web app's picture of the state over the rows)."""
        if self._cache is None:
            raise RuntimeError(f"{self.short_name()}: no forward yet")
        hs = [c["h"] for c in self._cache[-1][1]]                 # (T, N, H) each
        seq = hs[0] if len(hs) == 1 else np.concatenate(hs, axis=2)
        return np.array(seq.transpose(1, 0, 2), order="C")

    def _check(self, x):
        """x as (N, T, F) (or (T, N, F)) in the weights' dtype, or ValueError naming the
        layer and the shape it expects."""
        layout = "(N, T, {})" if self.batch_first else "(T, N, {})"
        if x.ndim != 3 or x.shape[2] != self.input_size or 0 in x.shape[:2]:
            raise ValueError(f"{self.short_name()} expects input of shape "
                             f"{layout.format(self.input_size)} with T, N >= 1, got {x.shape}")
        dtype = self.weight_ih_l0.data.dtype
        return x if x.dtype == dtype else x.astype(dtype)

    # -- backward -----------------------------------------------------------------------
    def _bptt(self, dout):
        """Back through time, once per dout (accumulate_grads and input_grad may each be
        asked with the same one): {name: gradient}, the bottom layer's deltas and its W_ih
        per direction as they were (a copy: a hook may step the layer before its dx)."""
        if self._grads is not None and self._grads[0] is dout:
            return self._grads[1:]
        if self._cache is None:
            raise RuntimeError(f"{self.short_name()}: backward needs a forward first")
        layers, given = self._cache, dout
        t, n = layers[0][0].shape[:2]
        hsz, cell, dirs = self.hidden_size, self._cell, self.directions
        dtype = layers[0][0].dtype
        dout = np.asarray(dout, dtype)
        if self.return_sequences:               # (T, N, D H) view: each step's gradient
            dseq, dlast = (dout.transpose(1, 0, 2) if self.batch_first else dout), None
        else:                                   # the final states' gradient (N, D H)
            dseq, dlast = None, dout
        grads, bottom = {}, []
        for k in reversed(range(self.num_layers)):
            inp, caches = layers[k]
            dinp = None
            for d in range(dirs):
                w_ih, w_hh, b_ih, _ = self._weights(k, d)
                cols = slice(d * hsz, (d + 1) * hsz)
                order = range(t) if d == 0 else range(t - 1, -1, -1)
                dzx, dzh = cell.backward(
                    None if dseq is None else dseq[..., cols],
                    None if dlast is None else dlast[:, cols],
                    caches[d], w_hh, order, self._bufs(k, d, dtype))
                self._weight_grads(grads, k, d, inp, caches[d]["h"], dzx, dzh, b_ih)
                if k > 0:                       # dx of this layer = dh of the one below
                    part = dzx.reshape(t * n, -1) @ w_ih               # (T N, D H)
                    if dinp is None:
                        dinp = part
                    else:
                        dinp += part
                else:
                    bottom.append(dzx)
            if k > 0:
                dseq, dlast = dinp.reshape(t, n, -1), None
        w_in = [self._weights(0, d)[0].copy() for d in range(dirs)]       # (G H, F) each
        self._grads = (given, grads, bottom, w_in)
        return grads, bottom, w_in

    def _weight_grads(self, grads, k, d, inp, hs, dzx, dzh, bias):
        """One GEMM each over all T steps (dW_hh over the steps that had a previous
        state: h_0 = 0 contributes nothing)."""
        sfx = f"_l{k}" + ("_reverse" if d else "")
        t, n = hs.shape[:2]
        gx, gh = dzx.reshape(t * n, -1), dzh.reshape(t * n, -1)
        grads["weight_ih" + sfx] = gx.T @ inp.reshape(t * n, -1)              # (G H, F)
        prev = hs[:-1] if d == 0 else hs[1:]                                   # h_{t-1}
        later = dzh[1:] if d == 0 else dzh[:-1]
        grads["weight_hh" + sfx] = (later.reshape(-1, gh.shape[1]).T          # (G H, H)
                                    @ prev.reshape(-1, hs.shape[2]))
        if bias is not None:
            grads["bias_ih" + sfx] = ones(t * n, gx.dtype) @ gx                 # (G H,)
            grads["bias_hh" + sfx] = (grads["bias_ih" + sfx].copy() if dzh is dzx
                                      else ones(t * n, gh.dtype) @ gh)

    def accumulate_grads(self, dout):
        grads = self._bptt(dout)[0]
        handed = self._handed is self._grads         # asked again for the same dout
        for _, _, name in self._names:
            g = grads[name]
            getattr(self, name).accumulate(g.copy() if handed else g)   # fresh arrays
        self._handed = self._grads

    def input_grad(self, dout):
        """dx = sum over directions of dzx W_ih of the bottom layer: (N, T, F) (a view of
        the time-major (T, N, F) product when batch_first). Every factor is the forward's
        weights', even if a hook steps the layer between accumulate_grads and this (the
        deltas went back through time with them), as MultiheadAttention's dx."""
        _, bottom, w_in = self._bptt(dout)
        t, n = bottom[0].shape[:2]
        dx = bottom[0].reshape(t * n, -1) @ w_in[0]                            # (T N, F)
        if len(bottom) == 2:
            dx += bottom[1].reshape(t * n, -1) @ w_in[1]
        dx = dx.reshape(t, n, -1)
        return dx.transpose(1, 0, 2) if self.batch_first else dx

    # -- description ------------------------------------------------------------------
    def spec(self):
        return {"input_size": self.input_size, "hidden_size": self.hidden_size,
                "num_layers": self.num_layers, "bias": self.bias,
                "batch_first": self.batch_first, "bidirectional": self.bidirectional,
                "return_sequences": self.return_sequences}

    def extra_repr(self):
        spec = self.spec()
        rest = ", ".join(f"{k}={v}" for k, v in spec.items()
                         if k not in ("input_size", "hidden_size"))
        return f"{self.input_size}, {self.hidden_size}, {rest}"
