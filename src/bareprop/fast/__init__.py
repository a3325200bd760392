"""Fast paths: compiled element-wise kernels (numba, the optional extra ``fast``), NumPy's
own BLAS called directly, and the fused units built from them, chosen once per training
step by one plan (plan.py). The reference maths in core/ is always available and is the
oracle every fast path is tested against; float64 never takes one.

    kernels.py   the numba kernels, and BAREPROP_ACCEL (auto | numpy | numba)
    cblas.py     NumPy's BLAS through ctypes (GEMM that accumulates, axpy, scal)
    sgd.py       SGD's step fused into a Linear's weight-gradient GEMM (BAREPROP_FUSED)
    linear.py    FastLinear (+ ReLU), FastLinearStep, FastReLU: units a plan puts in a chain
    loss.py      FastCrossEntropy
    conv.py      FastConvBlock: Conv2d + ReLU and/or 2x2 max pool, epilogues compiled
                 (convkernels.py)
    recurrent.py FastRecurrent: the LSTM's time step compiled (cellkernels.py)
    plan.py      plan(model, loss, optimizer): the one dispatch point
"""
from . import kernels
from .plan import Plan, plan

__all__ = ["Plan", "plan", "kernels"]
