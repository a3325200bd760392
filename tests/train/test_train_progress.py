"""ProgressBar: a live tqdm bar on a terminal only; one plain line per epoch elsewhere."""
import io

import numpy as np

import bareprop as bp
from bareprop.data import Batches, Scaler
from bareprop.train import ProgressBar

from synthetic import digits_like


def test_progress_is_one_plain_line_per_epoch_when_not_a_terminal():
    x, y = digits_like(300, 0)
    batches = Batches(x, y, 16, Scaler("unit"))
    model = bp.Sequential(bp.Flatten(), bp.Linear(784, 10, rng=0))
    log = io.StringIO()                       # what a CI log or a redirected stderr is
    bp.fit(model, bp.CrossEntropyLoss(), bp.SGD(model.parameters(), lr=0.1), batches, 3,
           callbacks=[ProgressBar(file=log)])
    text = log.getvalue()
    assert "\r" not in text and "\x1b" not in text
    lines = text.splitlines()
    assert len(lines) == 3 and all(line.startswith(f"epoch {i + 1}/3") for i, line in
                                   enumerate(lines))
    assert np.isfinite(float(lines[0].split()[3]))
