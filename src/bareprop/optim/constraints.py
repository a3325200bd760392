"""Weight constraints applied after an optimizer step."""
from __future__ import annotations

import numpy as np


def max_norm_(weights, max_norm: float) -> None:
    """Rescale each row of each W (a unit's incoming weights) to L2 norm <= max_norm, in place.

    The dropout paper's constraint (Srivastava et al. 2014, sec. 5.1):
    w_i <- w_i * min(1, c / ||w_i||).
    """
    for w in weights:
        norms = np.sqrt(np.einsum("ij,ij->i", w, w))             # (out,)
        scale = np.minimum(1.0, max_norm / np.maximum(norms, 1e-12)).astype(w.dtype)
        w *= scale[:, None]
