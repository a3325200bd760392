import os
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
# tests/<package>/ mirrors src/bareprop/<package>/; what several of them share (synthetic
# data, the twins' harness, servers and pages) is in tests/helpers/, importable by name
HELPERS = Path(__file__).resolve().parent / "helpers"
sys.path.insert(0, str(HELPERS))


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def real_data_dir() -> Path | None:
    """Folder holding mnist/ and fashion-mnist/: $BAREPROP_DATA_DIR, else ../shared/data."""
    env = os.environ.get("BAREPROP_DATA_DIR")
    # resolved: tests hand it to subprocesses that run in other folders
    candidates = [Path(env).resolve()] if env else []
    candidates.append(ROOT.parent / "shared" / "data")
    for c in candidates:
        if (c / "mnist" / "train-images-idx3-ubyte.gz").exists():
            return c.resolve()
    return None
