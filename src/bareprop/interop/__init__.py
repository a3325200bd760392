"""Interoperability: take a bareprop model to other tools and back.

onnx_export   the model (and its recorded input scaling) as one ONNX graph
weights       weights under PyTorch's state_dict names (safetensors), and PyTorch or
              Keras weights (safetensors or .npz, never pickle) into a bareprop model

Each needs an optional extra, imported on first use: ``pip install 'bareprop[onnx]'``,
``pip install 'bareprop[safetensors]'``.
"""
