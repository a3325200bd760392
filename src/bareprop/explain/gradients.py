"""Attributions from the input gradient (Simonyan et al. 2013; Shrikumar et al. 2016;
Sundararajan et al. 2017), adversarial examples (Goodfellow et al. 2014) and class
visualisation (Simonyan et al. 2013; CS231n), each as Captum or CS231n computes it.

Shapes: x (N, *input_shape) in the model's input layout, already scaled (as
``predict_proba`` takes it); every attribution has x's shape.
"""
from __future__ import annotations

import numpy as np

from ..core.activations import stable_softmax
from ..errors import ConfigError
from .probe import (CHUNK, as_input, backward, chunks, forward, input_gradient, logits_of,
                    one_hot, targets, untouched)

#: IG's Riemann rules, as Captum names them
METHODS = ("riemann_left", "riemann_right", "riemann_middle", "riemann_trapezoid")


def saliency(model, x, target=None, abs: bool = True) -> np.ndarray:  # noqa: A002 - Captum's name
    """d logit_t / d x, its absolute value by default: Captum's ``Saliency``."""
    g = input_gradient(model, as_input(model, x), target)
    return np.abs(g) if abs else g


def input_x_gradient(model, x, target=None) -> np.ndarray:
    """x * d logit_t / d x: Captum's ``InputXGradient``."""
    x = as_input(model, x)
    return x * input_gradient(model, x, target)


def riemann(method: str, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """(step sizes, alphas) of a Riemann rule over [0, 1], the values Captum uses: its
    alphas are ``torch.linspace`` in float32 (start + step * i below the middle, end -
    step * (n - 1 - i) from it, each a fused multiply-add rounded once), its step sizes
    1/n (halved at both ends for the trapezoid) rounded to float32."""
    if method not in METHODS:
        raise ConfigError(f"unknown integration method {method!r}; use one of "
                          f"{', '.join(METHODS)}")
    if not isinstance(steps, (int, np.integer)) or steps < 2:
        raise ConfigError(f"steps must be an integer of at least 2, got {steps!r}")
    n = int(steps)
    lo, hi = {"riemann_left": (0.0, 1 - 1 / n), "riemann_right": (1 / n, 1.0),
              "riemann_middle": (1 / (2 * n), 1 - 1 / (2 * n)),
              "riemann_trapezoid": (0.0, 1.0)}[method]
    start, end = np.float32(lo), np.float32(hi)
    step = (end - start) / np.float32(n - 1)                         # float32 arithmetic
    i = np.arange(n, dtype=np.float64)
    # float32 x float32 is exact in float64: one rounding to float32 at the end = FMA
    alphas = np.where(i < n // 2, np.float64(start) + np.float64(step) * i,
                      np.float64(end) - np.float64(step) * (n - 1 - i)).astype(np.float32)
    sizes = np.full(n, 1 / n)
    if method == "riemann_trapezoid":
        sizes[[0, -1]] /= 2
    return sizes.astype(np.float32).astype(np.float64), alphas.astype(np.float64)


def _baseline(baseline, x: np.ndarray) -> np.ndarray:
    """The baseline as an array broadcastable to x: zeros, a number, one example or a
    batch."""
    if baseline is None:
        return np.zeros_like(x)
    b = np.asarray(baseline, dtype=x.dtype)
    try:
        return np.broadcast_to(b, x.shape)
    except ValueError:
        raise ConfigError(f"a baseline of shape {b.shape} does not fit inputs of shape "
                          f"{x.shape}; give a number, one example or one per input") from None


def integrated_gradients(model, x, target=None, baseline=None, steps: int = 50,
                         method: str = "riemann_trapezoid",
                         return_convergence_delta: bool = False):
    """IG_i(x) = (x_i - b_i) sum_k w_k d logit_t / d x_i at b + alpha_k (x - b):
    Captum's ``IntegratedGradients(model).attribute(x, baselines=baseline,
    target=target, n_steps=steps, method=method)``.

    With ``return_convergence_delta``, also (attributions, delta), delta (N,) = sum_i
    IG_i - (logit_t(x) - logit_t(b)): how far the sum is from completeness."""
    x = as_input(model, x)
    b = _baseline(baseline, x)
    sizes, alphas = riemann(method, steps)
    with untouched(model):
        at_x = logits_of(model, x)
        t = targets(target, at_x)
        attr = np.empty_like(x)
        # examples a few at a time, so that one forward holds at most CHUNK path points
        group = max(1, CHUNK // steps)
        for i in range(0, len(x), group):
            xs, bs = x[i:i + group], b[i:i + group]
            path = bs[None] + alphas.reshape((-1,) + (1,) * x.ndim) * (xs - bs)[None]
            rows = path.reshape((-1,) + x.shape[1:])                    # (steps g, ...)
            tt = np.tile(t[i:i + group], steps)
            grads = np.empty_like(rows)
            for j in range(0, len(rows), CHUNK):
                logits = forward(model, rows[j:j + CHUNK])
                grads[j:j + CHUNK] = backward(model, one_hot(tt[j:j + CHUNK], logits))
            total = np.tensordot(sizes, grads.reshape((steps,) + xs.shape), axes=1)
            attr[i:i + group] = total * (xs - bs)
        if not return_convergence_delta:
            return attr
        at_b = logits_of(model, np.ascontiguousarray(b))
    n = np.arange(len(t))
    delta = attr.reshape(len(x), -1).sum(axis=1) - (at_x[n, t] - at_b[n, t])
    return attr, delta


def fgsm(model, x, y, eps: float, bounds=(0.0, 1.0), zero_thresh: float = 1e-6) -> np.ndarray:
    """x' = clip(x + eps sign(g), *bounds) where |g| > zero_thresh (else x), g = d CE(f(x),
    y) / dx per example: the fast gradient sign adversarial example (Goodfellow et al.
    2014), as Captum's ``FGSM(model, nn.CrossEntropyLoss(reduction="none"), *bounds)
    .perturb(x, eps, y)``. Every input moves by at most ``eps`` and stays in the valid
    input range ``bounds`` ((0, 1) for images scaled to the unit range; None:
    unclipped)."""
    if not np.isfinite(eps) or eps < 0:
        raise ConfigError(f"eps must be a finite number >= 0, got {eps!r}")
    x = as_input(model, x)
    g = np.empty_like(x)
    with untouched(model):
        for rows, logits, t in chunks(model, x, np.asarray(y)):
            # d CE_n / d logits_n = softmax(logits_n) - e_y
            g[rows] = backward(model, stable_softmax(logits) - one_hot(t, logits))
    step = np.where(np.abs(g) > zero_thresh, x.dtype.type(eps) * np.sign(g), 0)
    adv = x + step.astype(x.dtype, copy=False)
    return adv if bounds is None else np.clip(adv, *bounds).astype(x.dtype, copy=False)


def class_visualization(model, target: int, steps: int = 100, lr: float = 5.0,
                        l2: float = 1e-3, jitter: int = 0, seed: int = 0,
                        bounds=None) -> np.ndarray:
    """The input that most excites class ``target``, by gradient ascent from zeros
    (CS231n's class visualisation):

        I <- I + lr (d logit_target / dI - 2 l2 I)

    ``jitter`` > 0 rolls the image by up to that many pixels along its last two axes
    before each step and back after it (drawn from ``seed``: the same call gives the
    same image); ``bounds`` clips it after each step. Returns (1, *input_shape)."""
    shape = getattr(model, "input_shape", None)
    if shape is None:
        raise ConfigError("class_visualization needs a model whose input shape is known "
                          "(build it, or run it on one batch first)")
    if not isinstance(steps, (int, np.integer)) or steps < 1:
        raise ConfigError(f"steps must be a positive integer, got {steps!r}")
    dtype = np.dtype(getattr(model, "dtype", np.float32))
    img = np.zeros((1, *shape), dtype)
    rng = np.random.default_rng(seed)
    axes = tuple(range(img.ndim))[-2:] if len(shape) >= 2 else (img.ndim - 1,)
    with untouched(model):
        t = targets(np.intp(target), forward(model, img))
        for _ in range(int(steps)):
            shift = tuple(int(s) for s in rng.integers(-jitter, jitter + 1, len(axes))) \
                if jitter else (0,) * len(axes)
            img = np.roll(img, shift, axis=axes)
            logits = forward(model, img)
            g = backward(model, one_hot(t, logits))
            img = img + dtype.type(lr) * (g - dtype.type(2 * l2) * img)
            img = np.roll(img, tuple(-s for s in shift), axis=axes).astype(dtype, copy=False)
            if bounds is not None:
                img = np.clip(img, *bounds)
    return img
