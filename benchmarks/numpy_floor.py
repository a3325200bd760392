"""How close to its GEMMs can a NumPy training step get? The floor, paired with bareprop.

The speed targets ask for bareprop's epoch within 1.35x (784-128-10) and 1.10x
(784-800-800-10) of the GEMM-only bound (docs/benchmarks.md). This builds the least a NumPy step can do for the same SGD step
and times it beside bareprop and the bound, segment by segment in one process
(``bareprop.bench.paired``):

- ``bound``: the step's GEMMs alone, in bareprop's layouts (``bareprop.bench.bound_step``);
- ``bound + element-wise``: the floor's whole step (below) on one fixed batch, so
  without the data work: the GEMMs plus the least element-wise work NumPy can do;
- ``NumPy floor``: the floor on the real batches (gathered and scaled by ``Batches``, as
  bareprop's are): every buffer preallocated, every element-wise pass in place, no
  gradient array (SGD runs inside the dW GEMM through ``fast/cblas``, W <- W - lr dout^T x),
  no modules, no checks;
- ``compiled floor`` (``--compiled``, needs numba: ``pip install -e '.[bench]'``): the
  same step with each element-wise stage as one compiled loop (bareprop's own kernels
  for bias + ReLU, the loss and its gradient, ReLU's backward; a loop of its own for the
  bias step): what fusing the passes, which NumPy cannot, reaches;
- ``bareprop``: ``TrainStep`` as ``bareprop train`` runs it.

Each floor computes what bareprop's fused SGD step computes (784-hidden-10 ReLU,
softmax cross-entropy, float32): tests/bench/test_bench_scripts.py checks its weights against
bareprop's after a few steps. Printed per row: the median over segments of time / bound
with its quartiles, and us per step.

    python benchmarks/numpy_floor.py
    python benchmarks/numpy_floor.py --arch 784-800-800-10 --batch 128 --repeats 3 --compiled
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

LR = 0.01


class FloorStep:
    """``step(xb, yb)``: one SGD step of a 784-hidden-10 ReLU MLP with softmax
    cross-entropy on float32 weights ``ws[k]`` (out, in) and ``bs[k]`` (out,), updated in
    place; activations feature-major (D, N) as bareprop's Linear keeps them.

    forward   z_k^T = W_k a_k^T + b_k,  a_{k+1} = max(z_k, 0)     (last: logits^T)
    loss      p = softmax(z) per example,  L = mean_n (log sum_c e^{z_cn} - z_{y_n n})
    backward  d = (p - onehot(y)) / N;  dx^T = W^T d^T (old W);  dx *= [a > 0]
    step      b <- b - lr 1^T d,  W <- W - lr d^T a  (inside the GEMM: beta = 1)

    ``kernels`` "numpy" (in-place ufuncs) or "numba" (one compiled loop per stage).
    """

    def __init__(self, ws, bs, batch: int, lr: float = LR, kernels: str = "numpy"):
        from bareprop.fast import cblas

        self.ws, self.bs = ws, bs
        self.blas = cblas.load(np.float32)
        if self.blas is None:
            raise SystemExit("the floor needs NumPy's own OpenBLAS (fast/cblas.load)")
        self.lr, self.n = np.float32(lr), batch
        widths = [ws[0].shape[1]] + [w.shape[0] for w in ws]
        n = batch
        self.z = [np.empty((w, n), np.float32) for w in widths[1:]]          # (D, N)
        self.dx = [np.empty((w, n), np.float32) for w in widths[1:-1]]
        self.mask = [np.empty((w, n), bool) for w in widths[1:-1]]
        self.db = [np.empty(w, np.float32) for w in widths[1:]]
        self.ones_n = np.ones(n, np.float32)
        self.ones_c = np.ones(widths[-1], np.float32)
        self.m, self.s = np.empty(n, np.float32), np.empty(n, np.float32)
        self.cols = np.arange(n)
        self.dz = np.empty((widths[-1], n), np.float32)                      # d^T (C, N)
        self.k = _kernels() if kernels == "numba" else None

    def __call__(self, xb, yb):
        ws, bs, z, last = self.ws, self.bs, self.z, len(self.ws) - 1
        acts = [xb.T] + z[:-1]                                 # a_k^T, (D, N)
        for k, (w, b) in enumerate(zip(ws, bs)):
            np.matmul(w, acts[k], out=z[k])
            if self.k is not None and k < last:
                self.k.bias_relu(z[k], b)
            else:
                z[k] += b[:, None]
                if k < last:
                    np.maximum(z[k], 0, out=z[k])
        loss, d = self._loss(z[last], yb)                      # d^T (C, N)
        for k in range(last, -1, -1):
            if k > 0:
                np.matmul(ws[k].T, d, out=self.dx[k - 1])      # dx^T with the old W
            if self.k is not None:
                self.k.bias_step(bs[k], d, self.lr)
            else:
                np.matmul(d, self.ones_n, out=self.db[k])      # db = d 1
                self.db[k] *= -self.lr
                bs[k] += self.db[k]
            self.blas.gemm(-self.lr, d, acts[k].T, 1.0, ws[k])  # W -= lr d a
            if k > 0:
                if self.k is not None:
                    dx = self.dx[k - 1].ravel()                # flat views, in place
                    self.k.relu_back(dx, dx, acts[k].ravel())
                else:
                    np.greater(acts[k], 0, out=self.mask[k - 1])
                    np.multiply(self.dx[k - 1], self.mask[k - 1], out=self.dx[k - 1])
                d = self.dx[k - 1]
        return loss

    def _loss(self, e, yb):
        """(loss, d^T = (p - onehot) / N) of logits^T ``e`` (C, N); NumPy leaves d^T in
        ``e``, the compiled loss (fast/kernels.py, on the (N, C) views) in ``self.dz``."""
        if self.k is not None:
            yb = yb.astype(np.intp, copy=False)
            return self.k.softmax_ce(e.T, yb, 0.0, self.dz.T), self.dz
        scale = np.float32(1.0 / len(yb))
        m, s, cols = self.m, self.s, self.cols
        picked = e[yb, cols]                                   # z_{y_n n}, (N,)
        np.max(e, axis=0, out=m)
        np.subtract(e, m, out=e)
        np.exp(e, out=e)
        np.matmul(self.ones_c, e, out=s)                       # sum over classes
        loss = float(np.mean(np.log(s) + m - picked))
        np.multiply(s, 1.0 / scale, out=s)
        np.divide(e, s, out=e)                                 # p / N
        e[yb, cols] -= scale
        return loss, e


_compiled = None


def _kernels():
    """bareprop's compiled stages (fast/kernels.py: bias + ReLU, ReLU's backward, the
    loss), plus the bias step, which bareprop leaves to its optimizer."""
    global _compiled
    if _compiled is not None:
        return _compiled
    from bareprop.fast import kernels

    k = kernels.compiled()
    if k is None:
        raise SystemExit("--compiled needs numba: pip install -e '.[bench]'")
    import numba

    @numba.njit(cache=True)
    def bias_step(b, d, lr):                  # b -= lr sum_n d, d^T (D, N)
        for i in range(d.shape[0]):
            acc = np.float32(0)
            for n in range(d.shape[1]):
                acc += d[i, n]
            b[i] -= lr * acc

    class K:
        pass
    _compiled = K()
    _compiled.bias_relu, _compiled.relu_back, _compiled.softmax_ce = \
        k.bias_relu, k.relu_back, k.softmax_ce
    _compiled.bias_step = bias_step
    return _compiled


def floor_from(step, batch: int, kernels: str = "numpy") -> FloorStep:
    """A FloorStep starting from copies of a bareprop TrainStep's Linear weights."""
    lins = [m for m in step.model.layers if hasattr(m, "weight")]
    return FloorStep([m.weight.data.copy() for m in lins], [m.bias.data.copy() for m in lins],
                     batch, kernels=kernels)


def fixed_batch(step, make_batches):
    """``step(None, y)`` running ``step`` on the first batch every time: no data work."""
    xb, yb = next(iter(make_batches().epoch(0)))

    def run(_, y):
        step(xb, yb)
    return run


def with_accel(mode: str, step):
    """``step`` run in kernel mode ``mode`` (fast/kernels.py), set on every call so that
    contenders taking turns in one process each get their own."""
    from bareprop.fast import kernels

    def run(xb, yb):
        kernels.use(mode)
        return step(xb, yb)
    return run


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--arch", nargs="+", default=["784-128-10", "784-800-800-10"])
    p.add_argument("--batch", nargs="+", type=int, default=[128])
    p.add_argument("--repeats", type=int, default=3, help="epochs per contender")
    p.add_argument("--examples", type=int, default=60_000)
    p.add_argument("--compiled", action="store_true", help="add the numba floor")
    args = p.parse_args(argv)
    src = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src")
    if src not in sys.path:
        sys.path.insert(0, src)
    from bareprop.bench import (blas_info, bareprop_step, bound_step, cpu_name, cpus_text,
                                load_data, paired)
    from bareprop.data import Batches, Scaler

    x, y, source = load_data(args.examples)
    info = blas_info()
    print(f"machine: {cpu_name()}, {cpus_text()}; numpy {np.__version__}; BLAS: "
          f"{info['blas']}, {info.get('threads', '?')} threads; data: {source}")
    print(f"date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; command: python "
          f"benchmarks/numpy_floor.py {' '.join(argv if argv is not None else sys.argv[1:])}"
          .rstrip())
    print("\n| net | batch | contender | x bound (median) | quartiles | us/step |")
    print("|---|---:|---|---:|---|---:|")
    for arch in args.arch:
        hidden = tuple(int(w) for w in arch.split("-")[1:-1])
        for bs in args.batch:
            def make():
                return Batches(x.reshape(len(x), -1), y, bs, Scaler("unit"), "float32",
                               shuffle=True, seed=0, drop_last=True)
            bp_step = bareprop_step(hidden, np.float32)
            steps = {"bound": bound_step(hidden, np.float32, (bs,)),
                     "bound + element-wise": fixed_batch(floor_from(bp_step, bs), make),
                     "NumPy floor": floor_from(bp_step, bs)}
            if args.compiled:
                steps["compiled floor"] = floor_from(bp_step, bs, "numba")
            steps["bareprop"] = with_accel("numpy", bp_step)
            if args.compiled:
                steps["bareprop, compiled"] = with_accel("numba", bareprop_step(hidden, np.float32))
            got = paired(steps, make, args.repeats, segment=max(1, 5120 // bs))
            per_step = len(x) // bs
            for name in steps:
                if name == "bound":
                    r, (q1, q3) = 1.0, (1.0, 1.0)
                else:
                    r, (q1, q3) = got["ratio"][name, "bound"], got["spread"][name, "bound"]
                us = got["seconds"][name] / per_step * 1e6
                print(f"| {arch} | {bs} | {name} | {r:.2f} | {q1:.2f}-{q3:.2f} | {us:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
