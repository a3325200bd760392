"""Predict for the web app: an uploaded PNG/JPEG through the same preparation as
``bareprop predict`` (preprocess.load_grey, to_mnist), the model through
inference.Predictor, and every layer's output for the Draw page (with, for a sequence
model, each recurrent layer's state step by step and each attention head's map over
the image's patch grid).

An upload is bounded tighter than a file: at most MAX_UPLOAD_PIXELS (a drawn digit is
280x280), refused from its header, and at most DECODE_SLOTS uploads are decoded at once
(the others wait their turn), so the server's memory stays bounded however many
arrive together.

Models are loaded once per run and kept while model.npz keeps its mtime and size.
"""
from __future__ import annotations

import base64
import io as _io
import threading
from pathlib import Path

import numpy as np

from .. import core
from ..explain.methods import offered
from ..inference import Predictor, attention_maps, hidden_states, patch_grid, probabilities
from ..preprocess import load_grey, to_mnist

MAX_DENSE_UNITS = 256        # activations sent per dense layer
MAX_CHANNELS = 16            # feature maps sent per conv layer
MAX_FIRST_UNITS = 64         # first Linear's units shown as 28x28 weight images
MAX_STEPS = 64               # steps (tokens) sent per sequence: an image's 28 rows fit
MAX_FEATURES = 128           # features sent per step of a sequence or recurrent state
MAX_HEADS = 16               # attention maps sent per layer
MAX_GRID_CELLS = 28 * 28     # patches of an attention map (one-pixel patches of 28x28)
MAX_LOOK_LAYERS = 8          # recurrent or attention layers whose pictures are sent
# An upload's pixels: a 1000x1000 image decodes (with to_mnist's float64 copies) in about
# 60 MB; bareprop predict reads files up to preprocess.MAX_PIXELS (50 million).
MAX_UPLOAD_PIXELS = 1_000_000
DECODE_SLOTS = 2             # uploads decoded at once; the rest wait (tens of ms each)
_decodes = threading.BoundedSemaphore(DECODE_SLOTS)


def _shown(layer) -> bool:
    """Whether the look inside shows this layer's output: not for layers whose values at
    inference equal their input's (Flatten, Dropout: their catalog entry says so)."""
    entry = core.info(layer)
    return entry is None or entry.shows_output


def rounded(a: np.ndarray, digits: int = 4) -> list:
    """Nested lists of floats rounded to ``digits`` significant digits (smaller JSON)."""
    a = np.asarray(a, np.float64)
    scale = np.max(np.abs(a)) if a.size else 0.0
    if not np.isfinite(scale) or scale == 0:
        return np.nan_to_num(a).tolist()
    decimals = max(0, digits - 1 - int(np.floor(np.log10(scale))))
    return np.round(np.nan_to_num(a), decimals).tolist()


def as_u8(a: np.ndarray, lo: float, hi: float) -> str:
    """base64 of uint8 q = round(255 (a - lo) / (hi - lo)), C order (all zeros when
    hi == lo): a = lo + q (hi - lo) / 255 to within (hi - lo) / 510."""
    span = hi - lo
    q = np.zeros(a.shape, np.uint8) if not span > 0 else \
        np.clip(np.rint((a - lo) * (255.0 / span)), 0, 255).astype(np.uint8)
    return base64.b64encode(q.tobytes()).decode("ascii")


def _layer_kind(shape) -> str:
    """How the Draw page draws one example's output: "conv" (C, H, W) as feature maps,
    "sequence" (T, E) (tokens or steps, each a vector) as a heatmap, "dense" as a strip."""
    return {3: "conv", 2: "sequence"}.get(len(shape), "dense")


def _model_kind(steps) -> str:
    """What kind of network the Draw page says it is: "rnn" (a recurrent layer),
    "transformer" (an attention layer), "cnn" (layers pass images along) or "mlp"."""
    from ..core.attention import MultiheadAttention
    from ..core.bptt import Recurrent

    mods = [m for s in steps for m in s.layer.modules()]
    return ("rnn" if any(isinstance(m, Recurrent) for m in mods) else
            "transformer" if any(isinstance(m, MultiheadAttention) for m in mods) else
            "cnn" if any(len(s.out_shape) == 3 for s in steps) else "mlp")


def _named(name: str) -> dict:
    """inference's "3 LSTM(28, 128)" (the layer's index in the model, its short name) as
    the page's {"layer": 3, "name": "LSTM(28, 128)"}, as the activations name layers."""
    index, short = name.split(" ", 1)
    return {"layer": int(index), "name": short}


def _picture(a: np.ndarray, compact: bool) -> dict:
    """``a`` (already cut to its bounds) for the page: its shape, min and max, and its
    values as nested floats, or with ``compact`` as ``u8`` (see ``as_u8``)."""
    lo, hi = (float(a.min()), float(a.max())) if a.size else (0.0, 0.0)
    data = {"u8": as_u8(a, lo, hi)} if compact else {"values": rounded(a)}
    return {"shown": list(a.shape), "min": lo, "max": hi, **data}


class LoadedModel:
    """A run's Predictor with its description; ``lock`` serialises forward passes
    (layers keep per-call state)."""

    def __init__(self, run_id: str, path: Path):
        self.predictor = Predictor.from_file(path)
        self.lock = threading.Lock()
        self.model = self.predictor.model
        self.input_shape = tuple(self.model.input_shape)
        self.steps = list(core.walk(self.model, self.input_shape, nested=False))
        self.description = self._describe(run_id)

    def _describe(self, run_id: str) -> dict:
        layers = [{"index": i, "name": s.layer.short_name(), "type": type(s.layer).__name__,
                   "output_shape": list(s.out_shape), "kind": _layer_kind(s.out_shape)}
                  for i, s in enumerate(self.steps)]
        return {"id": run_id, "kind": _model_kind(self.steps),
                "explain_methods": offered(self.model),   # what the Draw page may ask for
                "input_shape": list(self.input_shape),
                "classes": [str(c) for c in self.predictor.classes], "layers": layers,
                "first_layer": self._first_layer()}

    def _first_layer(self) -> dict | None:
        """The weights of the first layer with a kernel, as pictures: a convolution's
        filters (out, in, kh, kw), or a dense layer's rows (out, in) as input images
        (rows of one line when ``in`` is not a square). None when the first layer with
        weights has none named so (a recurrent layer's): a later kernel reads its
        outputs, not the image."""
        for step in core.walk(self.model, self.input_shape):
            state = step.layer.state_dict()
            w = state.get("weight")
            if w is None and state:
                return None
            if w is None or w.ndim not in (2, 4):
                continue
            if w.ndim == 4:                                    # (out, in, kh, kw)
                kind = "conv"
            else:                                              # (out, in) -> images
                kind, w = "dense", w[:MAX_FIRST_UNITS]
                side = int(round(np.sqrt(w.shape[1])))
                w = w.reshape(len(w), side, side) if side * side == w.shape[1] else w[:, None]
            return {"type": kind, "shape": list(w.shape), "values": rounded(w),
                    "min": float(w.min()), "max": float(w.max())}
        return None

    def explanation(self, raw_image: np.ndarray, method: str, target: int,
                    compact: bool) -> dict:
        """Method ``method``'s attribution of class ``target`` for the image, as one (28,
        28) picture over it (explain.methods.picture: a Grad-CAM map upsampled), with
        whether it is signed; ConfigError (one line) for a method this model cannot do."""
        from ..explain import methods

        options = methods.check(method, self.model)
        x = self.predictor.prepare(raw_image[None])
        with self.lock:
            attr = methods.run(method, self.model, x, np.array([target]), **options)
        pic = methods.picture(attr, raw_image.shape)[0]
        return {"method": method, "signed": methods.SIGNED[method], "target": target,
                **_picture(pic, compact)}

    def predict(self, raw_image: np.ndarray, compact: bool = False,
                explain: str | None = None) -> dict:
        """raw_image: (28, 28) uint8, ink high, as to_mnist gives it. With ``compact``,
        feature maps, sequences, recurrent states and attention maps come as ``u8`` (see
        ``as_u8``) instead of nested float lists: a CNN's maps are ~50,000 numbers, and
        writing them as JSON floats costs more than the forward pass.

        Beside the activations: ``hidden_states`` [{layer, name, shape (T, U), directions,
        along, shown, min, max, values | u8}] and ``attention`` (None, or {grid (rows,
        cols), maps: [{layer, name, how, heads, shown (heads, rows, cols), ...}]})."""
        with self.lock:
            outputs = self.predictor.activations(raw_image[None])
            # what the layers kept of that forward: read before another request runs one
            states, attention = hidden_states(self.model), attention_maps(self.model)
        probs = probabilities(outputs[-1][1])[0]                          # (C,)
        best = int(np.argmax(probs))
        acts = []
        for i, (step, (_, out)) in enumerate(zip(self.steps, outputs)):
            layer = step.layer
            if not _shown(layer):
                continue
            a = out[0]
            entry = {"layer": i, "name": layer.short_name(), "type": _layer_kind(a.shape),
                     "shape": list(a.shape)}
            if a.ndim == 2:                                     # (T, E): steps or tokens
                entry.update(_picture(a[:MAX_STEPS, :MAX_FEATURES], compact))
                acts.append(entry)
                continue
            shown = a[:MAX_CHANNELS] if a.ndim == 3 else a.reshape(-1)[:MAX_DENSE_UNITS]
            lo, hi = float(shown.min()), float(shown.max())
            if compact and a.ndim == 3:
                entry.update(u8=as_u8(shown, lo, hi), min=lo, max=hi, shown=list(shown.shape))
            else:
                entry.update(values=rounded(shown), min=lo, max=hi)
            acts.append(entry)
        classes = self.predictor.classes
        why = self.explanation(raw_image, explain, best, compact) if explain else None
        return {"class": best, "label": str(classes[best]), "explanation": why,
                "probabilities": [float(p) for p in probs],
                "input": np.round(raw_image / 255.0, 4).tolist(), "activations": acts,
                "hidden_states": self._states(states, compact),
                "attention": self._attention(attention, compact)}

    def _states(self, states, compact: bool) -> list[dict]:
        """Each recurrent layer's output at every step, (T, U) cut to MAX_STEPS x
        MAX_FEATURES, with its directions (a bidirectional layer's units are the forward
        ones, then the backward ones) and what its steps read of the image."""
        from ..core.bptt import Recurrent
        from ..core.sequence import Cols, Rows

        layers = [m for m in self.model.layers if isinstance(m, Recurrent)]
        along = next(("rows" if isinstance(m, Rows) else "columns" for m in self.model.layers
                      if isinstance(m, (Rows, Cols))), None)
        return [{**_named(name), "shape": list(h.shape), "directions": layer.directions,
                 "along": along, **_picture(h[:MAX_STEPS, :MAX_FEATURES], compact)}
                for (name, h), layer in list(zip(states, layers))[:MAX_LOOK_LAYERS]]

    def _attention(self, maps, compact: bool) -> dict | None:
        """Each attention layer's map per head on the patch grid (heads cut to MAX_HEADS),
        saying how it was read; None for a model without them."""
        grid = patch_grid(self.model)
        if not maps or grid is None or grid[0] * grid[1] > MAX_GRID_CELLS:
            return None
        return {"grid": list(grid), "maps": [
            {**_named(name), "how": how, "heads": len(m), **_picture(m[:MAX_HEADS], compact)}
            for name, m, how in maps[:MAX_LOOK_LAYERS]]}


class ModelCache:
    """run id -> LoadedModel, reloaded when model.npz changes (mtime_ns, size)."""

    def __init__(self, size: int = 8):
        self.size = size
        self._entries: dict[str, tuple[tuple, LoadedModel]] = {}
        self._lock = threading.Lock()

    def get(self, run_id: str, path: Path) -> LoadedModel:
        st = path.stat()
        key = (st.st_mtime_ns, st.st_size)
        with self._lock:
            hit = self._entries.get(run_id)
            if hit is not None and hit[0] == key:
                return hit[1]
        loaded = LoadedModel(run_id, path)
        with self._lock:
            self._entries.pop(run_id, None)
            self._entries[run_id] = (key, loaded)
            while len(self._entries) > self.size:
                self._entries.pop(next(iter(self._entries)))
        return loaded


def prepare_upload(data: bytes, name: str = "the upload") -> np.ndarray:
    """Uploaded PNG/JPEG bytes -> (28, 28) uint8, as ``bareprop predict`` prepares a
    file (DataError, one line, for anything unreadable, not PNG/JPEG, over
    MAX_UPLOAD_PIXELS or blank); decoded in one of DECODE_SLOTS, waiting for one."""
    f = _io.BytesIO(data)
    f.name = name
    with _decodes:
        return to_mnist(load_grey(f, max_pixels=MAX_UPLOAD_PIXELS))
