"""``bareprop compare`` with convolutional models, at the library level (what the compare
command runs: reference.compare.compare, then reference.compare.verdict): a conv net
built in Python, images (N, 1, H, W), against PyTorch in float64 and float32, and once
against Keras (NHWC, converted)."""
import importlib.util

import numpy as np
import pytest

import bareprop as bp
from bareprop.data import Batches, Scaler
from bareprop.reference.compare import MATCH_TOL, compare, verdict

from synthetic import digits_like

SIZE = 16


def image_sets(dtype, batch=32):
    """Train (200) and test (100) batches of (B, 1, 16, 16) images, 10 classes."""
    x, y = digits_like(200, 1, size=SIZE)
    scaler = Scaler.fit("unit", x)
    train = Batches(x[:, None], y, batch, scaler, dtype, shuffle=True, seed=1)
    xt, yt = digits_like(100, 2, size=SIZE)
    return train, Batches(xt[:, None], yt, 50, scaler, dtype)


def conv_net(dtype, head="flatten", seed=0):
    """Conv ("same", even kernel) -> BatchNorm2d -> ReLU -> MaxPool -> Dropout2d -> strided
    conv -> AvgPool -> Flatten -> Linear, or the same trunk with a GlobalAvgPool2d ->
    BatchNorm1d -> Linear head."""
    rng = np.random.default_rng(seed)
    trunk = [bp.Conv2d(1, 4, (3, 2), padding="same", bias=False, rng=rng),       # (4, 16, 16)
             bp.BatchNorm2d(4), bp.ReLU(),
             bp.MaxPool2d(2),                                                    # (4, 8, 8)
             bp.Dropout2d(0.25, rng=2),
             bp.Conv2d(4, 6, 3, stride=2, padding=1, rng=rng), bp.Tanh()]       # (6, 4, 4)
    heads = {"flatten": [bp.AvgPool2d(2), bp.Flatten(), bp.Linear(24, 10, rng=rng)],
             "global": [bp.GlobalAvgPool2d(), bp.BatchNorm1d(6), bp.Linear(6, 10, rng=rng)]}
    return bp.Sequential(*trunk, *heads[head], input_shape=(1, SIZE, SIZE), dtype=dtype)


def run_compare(dtype, framework="torch", head="flatten", make_opt=None, epochs=2,
                clip_delta=None):
    model = conv_net(dtype, head)
    model.clip_delta = clip_delta
    opt = (make_opt or (lambda p: bp.SGD(p, lr=0.05, momentum=0.9)))(model.parameters())
    train, test = image_sets(dtype)
    result = compare(model, opt, bp.CrossEntropyLoss(), train, test, epochs,
                     framework=framework)
    return model, result


@pytest.mark.parametrize("head", ["flatten", "global"])
def test_conv_compare_float64_is_a_match(head):
    """flatten: SGD with momentum and the notebook's clip_delta (on every layer with
    parameters, convs and BatchNorm2d too); global: Adam."""
    adam = (lambda p: bp.Adam(p, lr=1e-3)) if head == "global" else None
    model, result = run_compare(np.float64, head=head, make_opt=adam,
                                clip_delta=0.5 if head == "flatten" else None)
    line, ok = verdict(result, "float64", "2 epochs")
    assert ok and line.startswith("MATCH"), line
    for row in result["epochs"]:
        assert row["max_abs_weight_diff"] < 1e-10
        assert row["bareprop"]["test_accuracy"] == row["torch"]["test_accuracy"]
        # eval mode: BatchNorm2d's running stats must have moved alike
        assert abs(row["bareprop"]["test_loss"] / row["torch"]["test_loss"] - 1) < 1e-10
    np.testing.assert_allclose(result["batch_loss"]["bareprop"], result["batch_loss"]["torch"],
                               rtol=1e-10)
    assert model[1].running_var.min() != 1.0          # the running stats did move


def test_conv_compare_verdict_can_differ():
    """The verdict is not a constant: a float64 result just over MATCH_TOL is a DIFFER and
    fails the run."""
    _, result = run_compare(np.float64, epochs=1)
    result["epochs"][-1]["max_abs_weight_diff"] = 2 * MATCH_TOL
    line, ok = verdict(result, "float64", "1 epoch")
    assert not ok and line.startswith("DIFFER")


def test_conv_compare_float32_drifts_by_round_off_only():
    model, result = run_compare(np.float32)
    assert model.dtype == np.float32
    line, ok = verdict(result, "float32", "2 epochs")
    assert ok and "drift" in line
    diff = result["epochs"][-1]["max_abs_weight_diff"]
    assert 0 < diff < 1e-4                          # round-off in float32, not a real gap
    np.testing.assert_allclose(result["batch_loss"]["bareprop"], result["batch_loss"]["torch"],
                               rtol=1e-4)


def test_conv_compare_against_keras():
    """Keras is NHWC: converted inputs, kernels, Flatten order, Dropout2d masks and torch's
    unbiased moving variance make it the same computation (float64, SGD with momentum)."""
    if importlib.util.find_spec("keras") is None:
        pytest.skip("keras not installed")
    for head in ("flatten", "global"):
        model, result = run_compare(np.float64, "keras", head, epochs=1)
        line, ok = verdict(result, "float64", "1 epoch")
        assert ok and "max |dW|" in line
        row = result["epochs"][0]
        assert row["max_abs_weight_diff"] < 5e-8, head       # seen: 4e-9, 5e-9
        # Keras reports the training loss through a float32 metric, and its Dense and loss
        # compute in float32 even here (Keras 3.15's result_type maps float64 to float32,
        # as JAX does by default): equal to float32 precision
        np.testing.assert_allclose(result["batch_loss"]["keras"], result["batch_loss"]["bareprop"],
                                   rtol=1e-6)
        assert abs(row["bareprop"]["test_loss"] / row["keras"]["test_loss"] - 1) < 1e-6, head
        assert row["bareprop"]["test_accuracy"] == row["keras"]["test_accuracy"]
    # a layer Keras has no twin for (a user's own, whose catalog entry declares none) is
    # refused in one line that names it; a nested Sequential is walked through
    from bareprop.reference.keras_twin import KerasTwin

    class Halver(bp.Module):
        preserves_shape = True

        def forward(self, x):
            return x / 2

    model = bp.Sequential(bp.Sequential(bp.Linear(4, 3, rng=0)), Halver(), input_shape=(4,))
    with pytest.raises(bp.ConfigError, match="keras has no twin for Halver; use --framework "
                                             "torch"):
        KerasTwin(model, bp.SGD(model.parameters(), lr=0.1), bp.CrossEntropyLoss())
    nested = bp.Sequential(bp.Sequential(bp.Linear(4, 3, rng=0)), input_shape=(4,))
    twin = KerasTwin(nested, bp.SGD(nested.parameters(), lr=0.1), bp.CrossEntropyLoss())
    np.testing.assert_allclose(twin.weights()[0], nested.parameters()[0].data)
