"""The MLP contenders of the benchmark, each as ``step(xb, yb)``, and the rows that time them.

- ``bareprop_step``: bareprop's ``TrainStep`` on 784-hidden-10 (ReLU), as `bareprop train`
  runs it (fused where it pays).
- ``lean_numpy_step``: the leanest plain-NumPy SGD trainer for the same net: what NumPy
  itself can reach on the machine, framework cost aside (a test checks it computes
  exactly bareprop's SGD).
- ``bound_step``: the step's GEMMs alone at their real shapes, in bareprop's layouts, into
  preallocated outputs: the GEMM-only bound the speed targets divide by.
- PyTorch eager and scikit-learn's ``MLPClassifier`` on the same batches.

``mlp_row(task)`` times one of them in its own subprocess (see tasks.py), or several
against each other in one process (pairing.py).
"""
from __future__ import annotations

import os

import numpy as np

from .kit import EPOCH, blas_info, epoch_of, epoch_result, load_data, timed_epochs, torch_epoch
from .pairing import paired_task

#: the benchmark's nets: --arch name -> hidden widths of 784-hidden-10
ARCHS = {"784-128-10": (128,), "784-800-800-10": (800, 800)}

#: --optimizer name -> (bareprop.optim class, its hyperparameters besides lr)
OPTIMIZERS = {"sgd": ("SGD", {}), "momentum": ("SGD", {"momentum": 0.9}),
              "nesterov": ("SGD", {"momentum": 0.9, "nesterov": True}),
              "adam": ("Adam", {})}


def flops_per_epoch(hidden) -> float:
    """Forward + backward GEMM FLOPs for 60k examples (the first layer has no dx)."""
    widths = [784, *hidden, 10]
    per_example = sum(2 * i * o for i, o in zip(widths[:-1], widths[1:]))
    return EPOCH * (3 * per_example - 2 * widths[0] * widths[1])


def bareprop_step(hidden, dtype, optimizer: str = "sgd", fuse: bool = True):
    """``step(xb, yb)``: bareprop's TrainStep on 784-hidden-10 (ReLU) with ``optimizer``
    (a key of OPTIMIZERS; lr 0.01, Adam 1e-3), fused where it pays unless ``fuse`` is False."""
    from .. import core, optim
    from ..train.step import TrainStep

    rng = np.random.default_rng(0)
    layers, w = [], 784
    for h in hidden:
        layers += [core.Linear(w, h, rng=rng, dtype=dtype), core.ReLU(inplace=True)]
        w = h
    model = core.Sequential(*layers, core.Linear(w, 10, rng=rng, dtype=dtype))
    cls, hyper = OPTIMIZERS[optimizer]
    lr = 1e-3 if cls == "Adam" else 0.01
    return TrainStep(model, core.CrossEntropyLoss(),
                     getattr(optim, cls)(model.parameters(), lr=lr, **hyper), fuse=fuse)


def bareprop_epoch(hidden, dtype, batches, warm: int, optimizer: str = "sgd"):
    """``epoch(e, warmup=False)`` of ``bareprop_step`` over ``batches``."""
    return epoch_of(bareprop_step(hidden, dtype, optimizer), batches, warm)


def lean_weights(hidden, dtype):
    """(ws, bs): He-initialised weights (in, out) and zero biases for ``lean_numpy_step``."""
    rng = np.random.default_rng(0)
    widths = [784, *hidden, 10]
    ws = [(rng.standard_normal((i, o)) * np.sqrt(2.0 / i)).astype(dtype)   # (in, out)
          for i, o in zip(widths[:-1], widths[1:])]
    return ws, [np.zeros(o, dtype) for o in widths[1:]]


def lean_numpy_step(ws, bs_, lr):
    """The leanest plain-NumPy SGD step we know for a ReLU MLP with softmax
    cross-entropy, as a floor for any NumPy trainer on this machine: no modules, no
    checks, no gradient arrays kept, ReLU and the softmax done in place, lr folded into
    the output delta. ``ws[k]`` (in, out) and ``bs_[k]`` (out,) are updated in place.
    Returns ``step(xb, yb)``.
    """
    dtype = ws[0].dtype
    last = len(ws) - 1

    def step(xb, yb):
        acts = [xb]
        for k, (w, b) in enumerate(zip(ws, bs_)):
            z = acts[-1] @ w                                  # (N, out)
            z += b
            if k < last:
                np.maximum(z, 0, out=z)
            acts.append(z)
        d = acts[-1]                                          # logits -> dL/dz in place
        d -= d.max(axis=1, keepdims=True)
        np.exp(d, out=d)
        d /= d.sum(axis=1, keepdims=True)
        d[np.arange(len(yb)), yb] -= 1
        d *= dtype.type(lr / len(yb))                         # lr folded into the delta
        for k in range(last, -1, -1):
            below = None
            if k > 0:
                below = d @ ws[k].T                           # (N, in), with the old W
                below *= acts[k] > 0
            ws[k] -= acts[k].T @ d                            # W -= lr dW
            bs_[k] -= d.sum(axis=0)
            d = below
    return step


def lean_numpy_epoch(ws, bs_, lr, batches, warm=0):
    """``epoch(e, warmup=False)`` of ``lean_numpy_step`` over ``batches``; a warm-up epoch
    stops after ``warm`` batches."""
    return epoch_of(lean_numpy_step(ws, bs_, lr), batches, warm)


def bound_step(hidden, dtype, sizes=()):
    """``step(None, y)`` running just the GEMMs of one step on a batch of len(y), at their
    real shapes and in bareprop's layouts (core Linear: W (out, in), activations
    as their C-ordered transposes (D, N), except the loss's gradient, (N, C) C-ordered;
    forward y^T = W x^T, dW = dout^T x, dx^T = W^T dout^T; no dx for the first layer),
    into preallocated outputs: the GEMM-only bound. Arrays for the batch sizes in
    ``sizes`` are made up front (others on first use)."""
    rng = np.random.default_rng(0)
    widths = [784, *hidden, 10]
    ws = [rng.random((o, i)).astype(dtype) for i, o in zip(widths[:-1], widths[1:])]
    dws = [np.empty_like(w) for w in ws]
    arrays: dict = {}

    def make(n):
        x = rng.random((n, 784)).astype(dtype)                  # the batch, (N, 784)
        dz = rng.random((n, widths[-1])).astype(dtype)          # the loss's (N, C) gradient
        a = [x.T] + [rng.random((w, n)).astype(dtype) for w in widths[1:]]
        arrays[n] = (a, [None] + [np.empty((w, n), dtype) for w in widths[1:]],
                     a[:-1] + [dz.T])                           # douts: the last is dz^T
    for n in sizes:
        if n:
            make(n)

    def step(_, y):
        n = len(y)
        if n not in arrays:
            make(n)
        a, o, d = arrays[n]                                      # (D, N) each
        for k, w in enumerate(ws):
            np.matmul(w, a[k], out=o[k + 1])                    # forward y^T = W x^T
        for k in range(len(ws) - 1, -1, -1):
            np.matmul(d[k + 1], a[k].T, out=dws[k])             # dW = dout^T x
            if k > 0:
                np.matmul(ws[k].T, d[k + 1], out=o[k])          # dx^T = W^T dout^T
    return step


def torch_mlp(hidden, dtype):
    """The same 784-hidden-10 ReLU net in PyTorch (its own default initialisation)."""
    import torch

    tdtype = torch.float32 if dtype == "float32" else torch.float64
    torch.manual_seed(0)
    mods, w = [], 784
    for h in hidden:
        mods += [torch.nn.Linear(w, h, dtype=tdtype), torch.nn.ReLU(inplace=True)]
        w = h
    return torch.nn.Sequential(*mods, torch.nn.Linear(w, 10, dtype=tdtype))


def sklearn_epoch(hidden, x, y, bs: int, dtype):
    """``epoch(e, warmup=False)``: one ``partial_fit`` pass of scikit-learn's MLPClassifier
    (plain SGD, lr 0.01) over all of (x, y); the warm-up fits 2,000 examples."""
    import warnings

    from sklearn.neural_network import MLPClassifier

    from ..data import Scaler

    xf = Scaler("unit").apply(x.reshape(len(x), -1), dtype)
    clf = MLPClassifier(hidden_layer_sizes=hidden, solver="sgd", batch_size=bs,
                        learning_rate_init=0.01, momentum=0.0, alpha=0.0,
                        random_state=0, shuffle=True)
    warnings.filterwarnings("ignore")

    def epoch(e, warmup=False):
        if warmup:
            clf.partial_fit(xf[:2000], y[:2000], classes=np.arange(10))
        else:
            clf.partial_fit(xf, y)
    return epoch


def mlp_row(task: dict) -> dict:
    """One MLP row: task "kind" is "bareprop", "numpy" (the lean loop), "torch" or
    "sklearn" (epochs timed alone), or "paired" / "fusion" (contenders in alternating
    segments of one process, pairing.paired)."""
    from ..data import Batches, Scaler

    kind = task["kind"]
    hidden, bs, dtype, examples = tuple(task["hidden"]), task["batch"], task["dtype"], task["examples"]
    x, y, source = load_data(examples)
    # flat (N, 784) rows: every row (bareprop, lean loop, torch) times the same MLP work
    flat = x.reshape(len(x), -1)

    def make_batches():
        return Batches(flat, y, bs, Scaler("unit"), dtype, shuffle=True, seed=0)
    batches = make_batches()
    warm = max(1, min(len(batches), 2000 // bs))
    if kind == "paired":                 # bareprop (SGD, fused as `bareprop train` runs it),
        got = paired_task({              # the lean loop and the GEMM-only bound
            "bareprop": bareprop_step(hidden, dtype),
            "lean": lean_numpy_step(*lean_weights(hidden, dtype), 0.01),
            "bound": bound_step(hidden, dtype, sizes=(bs, len(flat) % bs))}, make_batches, task)
        r = got["ratio"]
        return {"seconds": got["seconds"], "bareprop/bound": r["bareprop", "bound"],
                "lean/bound": r["lean", "bound"], "bareprop/lean": r["bareprop", "lean"],
                "bareprop/bound spread": got["spread"]["bareprop", "bound"],
                "source": source, **blas_info()}
    if kind == "fusion":                 # one optimizer, fused against unfused
        got = paired_task({f: bareprop_step(hidden, dtype, task["optimizer"], fuse=f == "fused")
                           for f in ("fused", "unfused")}, make_batches, task)
        return {"seconds": got["seconds"], "fused/unfused": got["ratio"]["fused", "unfused"],
                **blas_info()}
    if kind == "bareprop":
        # the fused paths unless the row asks for the unfused ones
        os.environ["BAREPROP_FUSED"] = "1" if task.get("fused", True) else "0"
        epoch = bareprop_epoch(hidden, dtype, batches, warm, task.get("optimizer", "sgd"))
    elif kind == "numpy":
        epoch = lean_numpy_epoch(*lean_weights(hidden, dtype), 0.01, batches, warm)
    elif kind == "torch":
        import torch

        torch.set_num_threads(task["threads"])
        model = torch_mlp(hidden, dtype)
        epoch = torch_epoch(model, torch.optim.SGD(model.parameters(), lr=0.01), batches, warm)
    elif kind == "sklearn":
        epoch = sklearn_epoch(hidden, x, y, bs, dtype)
    else:
        raise ValueError(f"unknown benchmark row kind {kind!r}")
    return epoch_result(timed_epochs(epoch, task["repeats"]), examples, source)
