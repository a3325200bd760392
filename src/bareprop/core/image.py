"""What the image layers share: their inputs are (N, C, H, W), one example (C, H, W), and
their windows (kernel size, stride, padding) are an int or a pair. Every refusal is one
ConfigError line naming the layer and the fix (a missing channel axis, a flat input
after Flatten, a channel mismatch).
"""
from __future__ import annotations

import numpy as np

from ..errors import ConfigError


def as_pair(name: str, value, minimum: int = 1) -> tuple[int, int]:
    """An int or a pair of ints >= minimum, as (h, w); ConfigError naming ``name``."""
    pair = (value, value) if not isinstance(value, (tuple, list)) else tuple(value)
    ok = len(pair) == 2 and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool)
                                and v >= minimum for v in pair)
    if not ok:
        raise ConfigError(f"{name} must be an int >= {minimum} or a pair of them, got {value!r}")
    return int(pair[0]), int(pair[1])


CHANNELS_LAST = "channels last? use x.transpose(0, 3, 1, 2)"


def _channels_last(channels, shape) -> bool:
    """Whether one example's ``shape`` looks like (H, W, C) images given to a layer that
    takes (C, H, W): the last axis holds the channels expected, the first does not."""
    return len(shape) == 3 and channels is not None and shape[-1] == channels \
        and shape[0] != channels


def image_input_error(layer: str, channels: int, shape: tuple[int, ...]) -> str:
    """The one line for an input that is not (N, C, H, W) with C channels."""
    fix = ""
    if len(shape) == 4 and _channels_last(channels, shape[1:]):
        fix = f" ({CHANNELS_LAST})"
    elif len(shape) == 3 and channels == 1:
        fix = " (grayscale images (N, H, W) need a channel axis: x[:, None])"
    elif len(shape) == 2:
        fix = " (this is flat data; image layers need (N, C, H, W), e.g. x.reshape(-1, 1, 28, 28))"
    return f"{layer} expects images of shape (N, {channels}, H, W), got {shape}{fix}"


def check_image_shape(layer: str, channels: int | None, in_shape) -> tuple[int, int, int]:
    """(C, H, W) from one example's shape, or ConfigError naming the layer."""
    in_shape = tuple(in_shape)
    if len(in_shape) != 3 or (channels is not None and in_shape[0] != channels):
        want = channels if channels is not None else "C"
        hint = ""
        if len(in_shape) == 2 and channels == 1:
            hint = " (grayscale images need a channel axis: input shape (1, H, W))"
        elif len(in_shape) == 1:
            hint = " (this input is flat: image layers must come before Flatten)"
        elif _channels_last(channels, in_shape):
            hint = f" ({CHANNELS_LAST})"
        elif len(in_shape) == 3:
            hint = f" (channel mismatch: {in_shape[0]} channels arrive, {want} expected)"
        raise ConfigError(f"{layer} expects inputs of shape ({want}, H, W), got {in_shape}{hint}")
    return in_shape


def padding_arg(padding, stride: tuple[int, int]):
    """A convolution's padding: "same" (stride 1 only, as PyTorch), "valid", or an int or
    a pair >= 0 as (ph, pw); ConfigError otherwise."""
    if not isinstance(padding, str):
        return as_pair("padding", padding, minimum=0)
    if padding not in ("same", "valid"):
        raise ConfigError(f"padding must be an int, a pair, 'same' or 'valid', got {padding!r}")
    if padding == "same" and stride != (1, 1):
        raise ConfigError("padding='same' needs stride 1 (as in PyTorch); give the padding as "
                          "a number for a strided convolution")
    return padding
