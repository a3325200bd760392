"""Reading a saved model for inference (predict, evaluate): the model file, then what
io.load cannot judge alone: that its weights are finite numbers and its input scaler is
one bareprop knows, so a broken model is refused in one line instead of printing "nan".
"""
from __future__ import annotations

import numpy as np

from .. import io
from ..data import Scaler
from ..errors import ConfigError, ModelFileError


def load_for_inference(path):
    """(model, extra metadata, scaler) of the model file or run folder at ``path``."""
    model, meta = io.load(path, with_meta=True)
    for name, p in model.named_parameters():
        if not np.all(np.isfinite(p.data)):
            raise ModelFileError(f"{path}: parameter {name} holds NaN or infinite values (a "
                                 "diverged run?); retrain, or use the run's last checkpoint")
    extra = meta.get("extra", {})
    try:
        scaler = Scaler.from_dict(extra["scaler"]) if "scaler" in extra else Scaler("unit")
    except ConfigError as exc:  # say which file holds it
        raise ModelFileError(f"{path}: {exc}") from None
    return model, extra, scaler
