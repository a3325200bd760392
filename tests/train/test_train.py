"""fit / evaluate: learning happens, History is complete, results are exact and seeded."""
import numpy as np
import pytest

import bareprop as bp
from bareprop.data import Batches, Scaler

from synthetic import digits_like


def setup(seed=0, n=500, bs=64):
    x, y = digits_like(n, 1)
    xt, yt = digits_like(130, 2)
    train = Batches(x, y.astype(np.int64), bs, Scaler("unit"), shuffle=True, seed=seed)
    test = Batches(xt, yt.astype(np.int64), 50, Scaler("unit"))
    model = bp.Sequential(bp.Flatten(), bp.Linear(784, 32, rng=seed), bp.ReLU(),
                          bp.Linear(32, 10, rng=seed + 1))
    return model, train, test


def test_fit_learns_and_records_history():
    model, train, test = setup()
    opt = bp.Adam(model.parameters(), lr=3e-3)
    h = bp.fit(model, bp.CrossEntropyLoss(), opt, train, 4, test=test)
    assert len(h.batch_loss) == 4 * len(train) == 4 * 8
    assert [e["epoch"] for e in h.epochs] == [1, 2, 3, 4]
    for key in ("train_loss", "train_accuracy", "test_loss", "test_accuracy", "seconds", "lr"):
        assert all(key in e for e in h.epochs)
    assert h.epochs[-1]["train_loss"] < h.epochs[0]["train_loss"]
    assert h.epochs[-1]["test_accuracy"] > 0.9


def test_evaluate_is_exact_over_all_examples():
    model, _, test = setup()
    r = bp.evaluate(model, bp.CrossEntropyLoss(), test)
    x = Scaler("unit").apply(test.x)
    logits = model(x)
    assert r.accuracy == np.mean(logits.argmax(1) == test.y)  # 130 = 2 x 50 + 30
    assert abs(r.loss - bp.CrossEntropyLoss()(logits, test.y)) < 1e-5
    assert len(r.predictions) == 130


def test_same_seed_same_weights_and_metrics():
    runs = []
    for _ in range(2):
        model, train, test = setup(seed=5)
        h = bp.fit(model, bp.CrossEntropyLoss(), bp.SGD(model.parameters(), lr=0.1,
                                                         momentum=0.9), train, 2, test=test)
        runs.append((model.state_dict(), h))
    (s1, h1), (s2, h2) = runs
    assert all(np.array_equal(s1[k], s2[k]) for k in s1)
    assert h1.batch_loss == h2.batch_loss
    assert [e["test_accuracy"] for e in h1.epochs] == [e["test_accuracy"] for e in h2.epochs]


def test_divergence_stops_at_once():
    model, train, _ = setup()
    opt = bp.SGD(model.parameters(), lr=1e30)
    with pytest.raises(bp.TrainingDiverged, match="lower the learning rate"):
        bp.fit(model, bp.CrossEntropyLoss(), opt, train, 3)


def test_callbacks_can_stop_training():
    class StopAfterOne(bp.Callback):
        def on_epoch_end(self, state, logs):
            state.stop_training = True

    model, train, _ = setup()
    h = bp.fit(model, bp.CrossEntropyLoss(), bp.Adam(model.parameters()), train, 5,
               callbacks=[StopAfterOne()])
    assert len(h.epochs) == 1


def test_notebook_order_updates_every_layer_with_parameters():
    """Bug: the notebook's per-layer update reached Linear only, so BatchNorm1d's gamma and
    beta never moved under update_order="notebook". Any layer with parameters is updated
    in both orders, and both orders take the same first step for the top layer."""
    def net():
        return bp.Sequential(bp.Flatten(), bp.Linear(784, 16, rng=0), bp.BatchNorm1d(16), bp.ReLU(),
                             bp.Linear(16, 10, rng=1))
    x, y = digits_like(64, 3)
    data = Batches(x, y.astype(np.int64), 32, Scaler("unit"))
    for order in ("standard", "notebook"):
        model = net()
        before = {k: v.copy() for k, v in model.state_dict().items()}
        bp.fit(model, bp.CrossEntropyLoss(), bp.SGD(model.parameters(), lr=0.1), data, 1,
               update_order=order)
        after = model.state_dict()
        for name, _ in model.named_parameters():
            assert not np.array_equal(before[name], after[name]), (order, name)
