"""The Keras 3 twin of a bareprop model, for ``bareprop compare --framework keras``.

Keras runs on the torch backend here (KERAS_BACKEND=torch). Images are NCHW in bareprop
and NHWC in Keras, so the twin takes each batch transposed, and:

* Conv2d becomes ZeroPadding2D (only when it pads: bareprop's exact top/bottom/left/right
  pads, which also covers "same" with an even kernel) + Conv2D(padding="valid"), the
  kernel transposed (O, C, kh, kw) -> (kh, kw, C, O);
* Flatten of an image gets Permute((3, 1, 2)) first, so it flattens in bareprop's
  (C, H, W) order and the next Dense takes bareprop's weights unchanged;
* Dropout and Dropout2d replay bareprop's masks (as the torch twin does), transposed to
  NHWC for Dropout2d: Keras' own Dropout/SpatialDropout2D would draw other masks;
* BatchNorm1d/2d become a BatchNormalization that updates its moving variance with the
  unbiased batch variance, as torch and bareprop do (Keras' own keeps the biased one,
  which would move eval-mode outputs apart while training agreed), and computes in the
  input's dtype (Keras' own casts float64 to float32).

Even so a float64 twin agrees only to float32 precision in places: Keras 3.15's
result_type maps float64 to float32 (as JAX does by default), so its matmul (Dense) and
its losses compute in float32 and cast back; its convolutions stay in float64.

Not here: --clip-delta, --max-norm, parameter groups, optimizers other than SGD, Adam and
AdamW; each is refused with one line.
"""
from __future__ import annotations

import functools
import os

import numpy as np

from .. import core
from ..errors import ConfigError
from ..interop.keras_layout import from_keras_arrays, keras_weights


def _keras():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    try:
        import keras
    except ImportError as exc:
        raise ConfigError(f"--framework keras needs Keras 3 ({exc}): pip install "
                          "'bareprop[keras]' (Keras 3 and the PyTorch backend it runs on "
                          "here, KERAS_BACKEND=torch)") from None
    return keras


def to_nhwc(x: np.ndarray) -> np.ndarray:
    """(N, C, H, W) -> (N, H, W, C); other shapes unchanged."""
    return np.ascontiguousarray(x.transpose(0, 2, 3, 1)) if x.ndim == 4 else x


@functools.cache
def _custom_layers(keras):
    """MaskReplay and TorchBatchNorm (classes made once keras is imported)."""

    class MaskReplay(keras.layers.Layer):
        """x * the mask bareprop's Dropout drew in its last forward (already scaled by
        1/(1-p)); the identity outside training."""

        def __init__(self, source, **kwargs):
            super().__init__(**kwargs)
            self._source = source

        def call(self, x, training=None):
            mask = self._source.mask
            if not training or mask is None:
                return x
            return x * keras.ops.convert_to_tensor(to_nhwc(mask))  # (N, 1, 1, C) for 2-D

    class TorchBatchNorm(keras.layers.BatchNormalization):
        """Training: normalise by the batch statistics and update
            moving_mean <- (1 - m) moving_mean + m mean
            moving_var  <- (1 - m) moving_var  + m n / (n - 1) var    (n values per channel)
        with torch's momentum m; eval: normalise by the moving statistics.

        Keras' own call differs twice: its moving variance takes the biased var, and it
        computes in result_type(x, "float32"), which Keras 3.15 makes float32 even for
        float64 x (eval outputs 1e-7 off in a float64 run).
        """

        def __init__(self, torch_momentum, **kwargs):
            super().__init__(momentum=1.0 - torch_momentum, **kwargs)
            self.torch_momentum = torch_momentum

        def call(self, inputs, training=None, mask=None):
            ops = keras.ops
            if training:
                axes = self._reduction_axes
                mean, var = ops.moments(inputs, axes=axes)            # (C,), biased
                n = int(np.prod([inputs.shape[a] for a in axes]))
                m = self.torch_momentum
                self.moving_mean.assign(self.moving_mean * (1.0 - m) + mean * m)
                self.moving_variance.assign(self.moving_variance * (1.0 - m)
                                            + var * (m * n / (n - 1)))
            else:
                mean, var = self.moving_mean, self.moving_variance
            return ops.batch_normalization(inputs, mean, var, axis=self.axis,
                                           offset=self.beta, scale=self.gamma,
                                           epsilon=self.epsilon)

    return MaskReplay, TorchBatchNorm


class _Twins:
    """What a layer's ``keras`` declaration builds its twin from (core/catalog.py):
    ``keras``, ``layers`` (keras.layers), and the two layers made here: ``MaskReplay``
    (a Dropout replaying bareprop's masks) and ``TorchBatchNorm``."""

    def __init__(self, keras):
        self.keras, self.layers = keras, keras.layers
        self.MaskReplay, self.TorchBatchNorm = _custom_layers(keras)


def keras_layers(keras, layer, in_shape: tuple[int, ...]) -> list:
    """The Keras layers (NHWC for images) that compute bareprop ``layer`` on one example
    of shape ``in_shape`` (bareprop's layout), as its catalog entry declares them; the one
    with the weights comes last. ConfigError naming the layer when Keras has no twin."""
    entry = core.info(layer)
    if entry is None or entry.keras is None:
        raise ConfigError(f"--framework keras has no twin for {type(layer).__name__}; "
                          "use --framework torch")
    return entry.keras(_Twins(keras), layer, in_shape)


def keras_optimizer(keras, optimizer):
    """Keras' SGD/Adam/AdamW with bareprop's one parameter group's hyperparameters."""
    if len(optimizer.param_groups) > 1:
        raise ConfigError("--framework keras has no parameter groups; use --framework torch")
    h = optimizer.param_groups[0]
    name = type(optimizer).__name__
    if name == "SGD":
        if h["weight_decay"] or h["dampening"]:
            raise ConfigError("--framework keras: Keras' SGD has no L2 weight decay or "
                              "dampening in torch's sense; drop --weight-decay")
        return keras.optimizers.SGD(h["lr"], momentum=h["momentum"], nesterov=h["nesterov"])
    if name in ("Adam", "AdamW"):
        if name == "Adam" and h["weight_decay"]:
            raise ConfigError("--framework keras: use --optimizer adamw for weight decay")
        cls = keras.optimizers.AdamW if name == "AdamW" else keras.optimizers.Adam
        kw = {"weight_decay": h["weight_decay"]} if name == "AdamW" else {}
        return cls(h["lr"], beta_1=h["betas"][0], beta_2=h["betas"][1],
                   epsilon=h["eps"], amsgrad=h["amsgrad"], **kw)
    raise ConfigError(f"--framework keras supports sgd, adam and adamw, not {name.lower()}")


class KerasTwin:
    """A keras.Sequential computing what the bareprop Sequential computes, with the
    copied weights (Dense kernel = W^T, Conv2D kernel = W transposed to (kh, kw, C, O))."""

    name = "keras"

    def __init__(self, model, optimizer, loss_fn, max_norm=None):
        keras = self.keras = _keras()
        if model.clip_delta is not None or max_norm:
            raise ConfigError("--framework keras supports neither --clip-delta nor --max-norm")
        if model.input_shape is None:
            raise ConfigError("--framework keras needs a model with a known input shape")
        dtype = str(model.dtype)
        # both: a Keras model built earlier in the process fixes the global dtype policy
        # to the floatx of then, and layers follow the policy, not floatx
        keras.config.set_floatx(dtype)
        keras.config.set_dtype_policy(dtype)
        shape = model.input_shape
        stack = [keras.Input(shape if len(shape) != 3 else (*shape[1:], shape[0]), dtype=dtype)]
        self.pairs = []                     # (bareprop layer, the Keras layer with its weights)
        for step in core.walk(model):
            made = keras_layers(keras, step.layer, step.in_shape)
            stack += made
            if step.layer.has_parameters():
                self.pairs.append((step.layer, made[-1]))
        self.model = keras.Sequential(stack)
        for layer, twin in self.pairs:
            twin.set_weights(keras_weights(layer))
        self._checked = False             # trainable as bareprop: checked at the first step
        self.opt = keras_optimizer(keras, optimizer)
        self.n_classes = model.output_shape()[-1]
        self.loss = keras.losses.CategoricalCrossentropy(
            from_logits=True, label_smoothing=loss_fn.label_smoothing)
        self.model.compile(optimizer=self.opt, loss=self.loss)

    def _onehot(self, y):
        return np.eye(self.n_classes, dtype=self.keras.config.floatx())[y]

    def step(self, xb, yb, groups) -> float:
        if not self._checked:               # a forward-only twin may hold any layer
            for layer, twin in self.pairs:
                _same_numbers_trained(layer, twin)
            self._checked = True
        hyper = groups[0]                   # one group: refused otherwise in __init__
        self.opt.learning_rate = hyper["lr"]
        if "momentum" in hyper and hasattr(self.opt, "momentum"):
            self.opt.momentum = hyper["momentum"]
        return float(self.model.train_on_batch(to_nhwc(xb), self._onehot(yb)))

    def evaluate(self, test):
        total, correct = 0.0, 0
        for xb, yb in test.epoch(0):
            out = self.keras.ops.convert_to_numpy(self.model(to_nhwc(xb), training=False))
            total += float(self.loss(self._onehot(yb), out)) * len(yb)
            correct += int((out.argmax(1) == yb).sum())
        return total / test.n, correct / test.n

    def weights(self):
        """The trained parameters in bareprop's order and layout (model.parameters()),
        converted layer by layer (a recurrent layer's Keras arrays are not its own one
        for one: interop/keras_layout.py)."""
        out = []
        for layer, twin in self.pairs:
            state = from_keras_arrays(layer, [self.keras.ops.convert_to_numpy(w)
                                              for w in twin.weights])
            out += [state[name] for name, _ in layer.named_parameters()]
        return out


def _same_numbers_trained(layer, twin) -> None:
    """ConfigError unless Keras trains as many numbers as bareprop does for ``layer``:
    Keras' LSTM and SimpleRNN keep one bias b where PyTorch and bareprop keep b_ih and
    b_hh (the same sum in a forward pass, but each trained by the full gradient, so the
    sum moves twice as far per step); GRU keeps both and trains the same."""
    ours = sum(p.size for p in layer.parameters())
    theirs = sum(int(np.prod(w.shape)) for w in twin.trainable_weights)
    if theirs != ours:
        raise ConfigError(f"--framework keras cannot train {layer.short_name()} as bareprop "
                          f"does: Keras trains {theirs:,} numbers where bareprop trains "
                          f"{ours:,} (one recurrent bias for PyTorch's two); use "
                          "--framework torch, or bias=false")
