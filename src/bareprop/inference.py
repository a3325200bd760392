"""One inference path: raw inputs -> the model's inputs -> probabilities and activations.

``Predictor`` holds a model with what its file records beside it (input shape,
scaling of raw uint8 pixels, class names) and is what ``evaluate``, ``predict``,
``report`` (and a web app) use, so no command rebuilds the scaling on its own.
``predict_proba(model, x)`` is the library call for arrays already prepared.
"""
from __future__ import annotations

import numpy as np

from .core.activations import stable_softmax
from .core.image import CHANNELS_LAST
from .data.batches import Batches, Scaler
from .errors import ConfigError, ModelFileError
from .fast.plan import inference_net


def probabilities(logits: np.ndarray) -> np.ndarray:
    """softmax over the classes (N, C), in the logits' dtype, shifted so nothing overflows."""
    return stable_softmax(logits)


def predict_proba(model, x: np.ndarray, batch_size: int = 1000) -> np.ndarray:
    """softmax(model(x)) in batches: (N, C), rows sum to 1, in the model's dtype.

    ``x`` is used as given (cast to the model's dtype, never rescaled). The model runs
    in eval mode (no dropout, BatchNorm's running statistics) and is left in the mode
    it was in.
    """
    x = np.asarray(x)
    dtype = getattr(model, "dtype", np.float32)
    was_training = model.training
    model.eval()
    net = inference_net(model)                    # the fast forward, where there is one
    try:
        out = [probabilities(net(x[i:i + batch_size].astype(dtype, copy=False)))
               for i in range(0, len(x), batch_size)]
    finally:
        model.train(was_training)
    return np.concatenate(out) if out else np.zeros((0, 0), dtype)


def image_channels(model) -> int | None:
    """The channels the model's first image layer takes (Conv2d's in_channels), looking
    past layers that keep any shape; None when the model does not start with one."""
    for layer in getattr(model, "layers", ()):
        channels = getattr(layer, "in_channels", None)
        if channels is not None:
            return channels
        if not layer.preserves_shape:
            return None
    return None


class Predictor:
    """A model plus its recorded input facts.

    scaler: how raw uint8 pixels become model inputs (None: raw inputs are used as
        given); input_shape: one example's shape the model takes; classes: names.
    """

    def __init__(self, model, scaler: Scaler | None = None, classes=None, input_shape=None,
                 meta: dict | None = None):
        self.model = model
        self.meta = meta or {}          # the model file's metadata, when read from one
        self.scaler = scaler
        self.input_shape = tuple(input_shape) if input_shape is not None else \
            getattr(model, "input_shape", None)
        from . import modelfile

        n_out = model.output_shape() if hasattr(model, "output_shape") else None
        n_classes = n_out[-1] if n_out else None
        # one string per output, or ConfigError: a file's are checked as it is loaded
        self.classes = modelfile.class_names(classes, modelfile.n_outputs(model)) or \
            [str(i) for i in range(n_classes or 10)]

    @classmethod
    def from_file(cls, path, check_finite: bool = True) -> "Predictor":
        """The model file (or run folder) at ``path``; with ``check_finite``, a model whose
        weights hold NaN or inf (a diverged run's) is refused in one line."""
        from . import modelfile

        model, meta = modelfile.load(path, with_meta=True)
        predictor = cls.from_meta(model, meta, source=path)
        if check_finite:
            predictor.check_finite(path)
        return predictor

    @classmethod
    def from_meta(cls, model, meta: dict, source="model file") -> "Predictor":
        """From modelfile.load's meta (either file version): its scaling, classes and shape."""
        scaling = meta.get("scaling")
        scaler = None
        if scaling is not None:
            try:
                scaler = Scaler.from_dict(scaling if isinstance(scaling, dict) else {})
            except ConfigError as exc:              # say which file holds it
                raise ModelFileError(f"{source}: {exc}") from None
        elif meta.get("version") == 1:
            scaler = Scaler("unit")        # version 1 files without a scaler were unit-scaled
        try:
            return cls(model, scaler, meta.get("classes"), model.input_shape, meta)
        except ConfigError as exc:                  # say which file holds them
            raise ModelFileError(f"{source}: {exc}") from None

    @property
    def dtype(self) -> np.dtype:
        return self.model.dtype

    def _shaped(self, raw: np.ndarray) -> np.ndarray:
        """Raw inputs (N, ...) viewed as (N, *input_shape) when the sizes match: (N, 28, 28)
        images become (N, 784) rows for a version 1 MLP and (N, 1, 28, 28) for a
        convolutional model, and flat (N, 784) rows become images. ConfigError when the
        sizes cannot match, or (a model with no recorded input shape) when its first
        layer cannot take them."""
        raw = np.asarray(raw)
        shape = tuple(raw.shape[1:])
        if self.input_shape is None:
            channels = image_channels(self.model)
            if len(shape) == 2 and channels == 1:
                raw, shape = raw[:, None], (1, *shape)         # (N, 1, H, W): grayscale
            elif len(shape) == 1 and channels is not None:
                raise ConfigError(f"the model takes images ({channels}, H, W) and records no "
                                  f"input shape to unflatten rows of {shape[0]} into; give "
                                  f"the images as (N, {channels}, H, W)")
            try:
                self.model.output_shape(shape)
            except ConfigError as exc:
                raise ConfigError(f"the model cannot take inputs of shape {shape}: {exc}") \
                    from None
            from . import modelfile

            modelfile.check_sizes(self.model, "the model", shape)   # no recorded shape: check now
            return raw
        if shape == self.input_shape:
            return raw
        if len(shape) == 3 == len(self.input_shape) and self.input_shape[0] > 1 and \
                shape == (*self.input_shape[1:], self.input_shape[0]):
            # (H, W, C) images for a (C, H, W) model: a reshape would scramble their pixels
            raise ConfigError(f"the model takes images {self.input_shape} (channels first) "
                              f"but these are {shape}: {CHANNELS_LAST}")
        want, got = int(np.prod(self.input_shape)), int(np.prod(shape))
        if got != want:
            raise ConfigError(f"the model expects {want} inputs {self.input_shape} but the "
                              f"images have {got} pixels {shape}; pick the matching --dataset")
        return raw.reshape(len(raw), *self.input_shape)

    def prepare(self, raw: np.ndarray) -> np.ndarray:
        """Raw inputs (N, ...) (uint8 pixels) -> model inputs (N, *input_shape) float."""
        raw = self._shaped(raw)
        return raw.astype(self.dtype) if self.scaler is None else self.scaler.apply(raw, self.dtype)

    def batches(self, raw: np.ndarray, y: np.ndarray, batch_size: int = 1000) -> Batches:
        """Evaluation batches over raw inputs, prepared the way the model was trained."""
        return Batches(self._shaped(raw), y, batch_size, self.scaler, self.dtype)

    def predict_proba(self, raw: np.ndarray, batch_size: int = 1000) -> np.ndarray:
        """(N, C) class probabilities for raw inputs."""
        return predict_proba(self.model, self.prepare(raw), batch_size)

    def activations(self, raw: np.ndarray) -> list[tuple[str, np.ndarray]]:
        """[(name, output)] of every layer for raw inputs, in eval mode (the web app's
        and the report's look inside the network); the last output is the logits
        (``probabilities`` turns them into the model's predict_proba)."""
        x = self.prepare(raw)
        model = self.model
        was_training = model.training
        model.eval()
        out = []
        try:
            for i, layer in enumerate(model.layers):
                x = layer(x)
                out.append((f"{i} {type(layer).__name__}", x.copy()))
        finally:
            model.train(was_training)
        return out

    def check_finite(self, source) -> None:
        """ModelFileError when a weight is NaN or infinite (a diverged run's model)."""
        for name, p in self.model.named_parameters():
            if not np.all(np.isfinite(p.data)):
                raise ModelFileError(f"{source}: parameter {name} holds NaN or infinite values "
                                     "(a diverged run?); retrain, or use the run's last "
                                     "checkpoint")



# -- the look inside a sequence model: what the last forward left beside the outputs ------
def hidden_states(model, index: int = 0) -> list[tuple[str, np.ndarray]]:
    """[(name, (T, U))]: every recurrent layer's output at each step of the last forward,
    for example ``index`` (call right after a forward, under the same lock)."""
    from .core.bptt import Recurrent

    return [(f"{i} {layer.short_name()}", layer.hidden_states()[index])
            for i, layer in enumerate(model.layers) if isinstance(layer, Recurrent)]


def patch_grid(model) -> tuple[int, int] | None:
    """(rows, columns) of the patch grid a model's first PatchEmbed cuts its images into
    (None: it has none)."""
    from .core import walk
    from .core.tokens import PatchEmbed

    for step in walk(model):
        if isinstance(step.layer, PatchEmbed):
            p = step.layer.patch_size
            return step.in_shape[1] // p, step.in_shape[2] // p
    return None


def attention_maps(model, index: int = 0) -> list[tuple[str, np.ndarray, str]]:
    """[(name, (heads, rows, cols), how)]: for each attention layer of the last forward
    (nested ones too: an encoder block's self_attn), where example ``index``'s attention
    goes on the patch grid, per head. With a class token in front of the patches, the
    class token's attention to each patch (how = "from the class token"); without, the
    attention each patch receives, averaged over the queries ("received, mean over
    tokens"). [] when the model has no patch grid or the token count does not fit it."""
    from .core.attention import MultiheadAttention

    grid = patch_grid(model)
    if grid is None:
        return []
    cells, out = grid[0] * grid[1], []
    for i, layer in enumerate(model.layers):
        for sub in layer.modules():
            w = getattr(sub, "attention_weights", None) if isinstance(
                sub, MultiheadAttention) else None
            if w is None:
                continue
            w = np.asarray(w[index], np.float64)                     # (heads, T, T)
            t = w.shape[-1]
            if t == cells + 1:
                m, how = w[:, 0, 1:], "from the class token"
            elif t == cells:
                m, how = w.mean(axis=1), "received, mean over tokens"
            else:
                continue
            out.append((f"{i} {layer.short_name()}", m.reshape(len(w), *grid), how))
    return out
