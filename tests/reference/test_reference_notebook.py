"""--preset seed reproduces the notebook: same init, same batches -> same weights."""
import numpy as np
import pytest

import bareprop as bp
from bareprop.experiment import build_model, build_optimizer, make_config
from bareprop.data import Batches, Scaler
from bareprop.reference.notebook import notebook_step

from synthetic import digits_like


@pytest.mark.parametrize("order,tolerance", [("notebook", 1e-12), ("standard", None)])
def test_seed_preset_matches_the_notebook_arithmetic(order, tolerance):
    cfg = make_config({"dtype": "float64", "update_order": order}, preset="seed")
    x, y = digits_like(700, 3)
    train = Batches(x, y.astype(np.int64), cfg.batch_size, Scaler(cfg.scale), np.float64,
                    shuffle=True, seed=1)
    model = build_model(cfg, (28, 28), 10)      # as the CLI builds it: Flatten, Linear, ReLU, Linear
    weights = [model[1].weight.data.copy(), model[3].weight.data.copy()]
    biases = [model[1].bias.data.copy(), model[3].bias.data.copy()]
    ref_losses = []
    for epoch in range(2):
        for xb, yb in train.epoch(epoch):
            ref_losses.append(notebook_step(weights, biases, xb, yb, cfg.lr, cfg.clip_delta))
    h = bp.fit(model, bp.CrossEntropyLoss(), build_optimizer(cfg, model.parameters()), train, 2,
               update_order=cfg.update_order)
    assert len(h.batch_loss) == len(ref_losses) == 2 * 6  # 700 = 5 x 128 + 60: last batch kept
    gaps = [np.abs(p.data - r).max() / np.abs(r).max()
            for p, r in zip(model.parameters(), [weights[0], biases[0], weights[1], biases[1]])]
    if tolerance is not None:
        assert max(gaps) < tolerance
        np.testing.assert_allclose(h.batch_loss, ref_losses, rtol=1e-12)
    else:  # the notebook's order is a real difference, which is why the preset keeps it
        assert max(gaps) > 1e-9


def test_seed_preset_settings_are_the_notebooks():
    cfg = make_config({}, preset="seed")
    assert (cfg.hidden, cfg.activation, cfg.init, cfg.scale, cfg.optimizer, cfg.lr,
            cfg.clip_delta, cfg.batch_size, cfg.epochs, cfg.update_order) == \
        ((128,), ("relu",), "notebook", "raw", "sgd", 1e-5, 1.0, 128, 3, "notebook")
    model = build_model(cfg, 784, 10)
    assert model.num_parameters() == 101_770
    assert abs(model[0].weight.data.std() - 1 / 784) / (1 / 784) < 0.02
    assert np.all(model[0].bias.data == 0)


def test_explicit_flags_override_the_preset():
    cfg = make_config({"lr": 0.5, "epochs": 1}, preset="keras-seed")
    assert cfg.lr == 0.5 and cfg.epochs == 1 and cfg.init == "xavier_uniform"


def test_best_mlp_preset_builds_with_dataset_aware_augmentation():
    from bareprop.data.augment import make_augment

    cfg = make_config({}, preset="best-mlp")
    model = build_model(cfg, 784, 10)
    kinds = [type(layer).__name__ for layer in model.layers]
    assert kinds == ["Linear", "ReLU", "Dropout", "Linear", "ReLU", "Dropout", "Linear"]
    assert cfg.augment == "auto" and cfg.epochs == 48
    assert make_augment("auto", dataset="mnist").max_rotate > 0          # digits: affine
    fashion = make_augment("auto", dataset="fashion-mnist")
    assert fashion.hflip and fashion.max_rotate == 0                      # clothes: mirror
