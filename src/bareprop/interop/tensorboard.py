"""``bp.TensorBoardLogger``: train/loggers.py's TensorBoardLogger with the model's graph
written by this package's ONNX export unless ``graph=`` says otherwise (None: no graph).

Training sits below interop, so the logger there takes its graph writer from its caller;
this is the caller a library user gets, and what ``bareprop train --log tensorboard``
builds too (experiment/build.py passes the same writer).
"""
from __future__ import annotations

from ..train.loggers import TensorBoardLogger as _Logger
from .onnx_export import save_onnx


class TensorBoardLogger(_Logger):
    __doc__ = _Logger.__doc__

    def __init__(self, logdir, histograms: bool = True, graph=save_onnx):
        super().__init__(logdir, histograms, graph)
