"""A fast path's training against the reference path's: the same model trained both ways
(BAREPROP_ACCEL numpy, then auto) from the same start on the same batch."""
import numpy as np

import bareprop as bp
from bareprop.fast import kernels
from bareprop.train.step import TrainStep


def assert_training_follows_the_reference(build, make_optimizer, x, y, steps: int,
                                          unit: str, learns: float) -> None:
    """``build()`` makes the model (the same weights each call) and ``make_optimizer``
    its optimizer from its parameters. The planned step must run ``unit`` (a fast unit's
    class name) exactly when the kernels are on; every loss within 1e-4 and every
    parameter within 1e-3 relative of the reference's, and the last loss below ``learns``
    times the first (it learns)."""
    runs = []
    for accel in ("numpy", "auto"):
        kernels.use(accel)
        model = build()
        step = TrainStep(model, bp.CrossEntropyLoss(), make_optimizer(model.parameters()))
        kinds = [type(u).__name__ for u in getattr(step.plan.net, "layers", [])]
        assert (unit in kinds) == (accel == "auto"), kinds
        losses = [step(x, y)[0] for _ in range(steps)]
        runs.append((losses, model.state_dict()))
    (l0, s0), (l1, s1) = runs
    np.testing.assert_allclose(l1, l0, rtol=1e-4)
    assert l1[-1] < l1[0] * learns
    for name in s0:
        np.testing.assert_allclose(s1[name], s0[name], rtol=1e-3, atol=1e-5, err_msg=name)
