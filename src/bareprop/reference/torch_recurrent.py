"""The PyTorch twins of bareprop's recurrent layers and of Cols (the catalog's ``torch``
declarations reach them as ``t.recurrent(layer)``: reference/torch_twin.py).

Each recurrent twin *is* torch.nn.RNN, LSTM or GRU (a subclass, so its parameters keep
PyTorch's own names and bareprop's state_dict loads into it strictly), built with the
layer's sizes, and its forward returns what bareprop's layer returns: PyTorch's
``output`` with return_sequences, else the final hidden state of the last layer,
``cat([h_n[-2], h_n[-1]], 1)`` when bidirectional. The classes are made on first use,
since torch is optional.

Not here: the weights (copied by torch_twin.torch_module), other layers' twins.
"""
from __future__ import annotations

import functools


@functools.cache
def _classes() -> dict[str, type]:
    import torch        # torch_module, the one caller, has said so when it is missing

    nn = torch.nn

    def make(base):
        class Twin(base):
            """torch.nn.{RNN,LSTM,GRU} returning bareprop's output instead of
            (output, h_n)."""

            def __init__(self, return_sequences: bool, *args, **kwargs):
                super().__init__(*args, **kwargs)
                self.return_sequences = return_sequences

            def forward(self, x):
                out, state = super().forward(x)
                if self.return_sequences:
                    return out
                h_n = state[0] if isinstance(state, tuple) else state    # LSTM: (h_n, c_n)
                if self.bidirectional:
                    return torch.cat([h_n[-2], h_n[-1]], dim=1)         # (N, 2H)
                return h_n[-1]                                           # (N, H)

        Twin.__name__ = Twin.__qualname__ = base.__name__
        return Twin

    class Cols(nn.Module):
        """(N, 1, H, W) or (N, H, W) -> (N, W, H): an image's columns as a sequence."""

        def forward(self, x):
            return x.flatten(1, -2).transpose(1, 2)

    return {"RNN": make(nn.RNN), "LSTM": make(nn.LSTM), "GRU": make(nn.GRU), "Cols": Cols}


def twin(layer):
    """The torch module computing bareprop ``layer`` (RNN, LSTM, GRU or Cols), weights not
    yet copied."""
    name = type(layer).__name__
    cls = _classes()[name]
    if name == "Cols":
        return cls()
    kw = {"nonlinearity": layer.nonlinearity} if name == "RNN" else {}
    return cls(layer.return_sequences, layer.input_size, layer.hidden_size,
               num_layers=layer.num_layers, bias=layer.bias, batch_first=layer.batch_first,
               bidirectional=layer.bidirectional, **kw)
