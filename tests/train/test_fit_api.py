"""fit as a PyTorch or Keras user meets it: a wrong call says what fit takes, the History
has Keras' dict of per-epoch lists, progress is printed unless verbose=False, and every
callback is closed however fit ends."""
import io

import numpy as np
import pytest

import bareprop as bp
from bareprop.train import Callback, ProgressBar

from synthetic import digits_like

USAGE = "bp.fit(model, loss_fn, optimizer, (x, y), epochs)"


@pytest.fixture
def setup():
    x, y = digits_like(64, 0)
    x = x.astype(np.float32) / 255
    model = bp.Sequential(bp.Flatten(), bp.Linear(784, 10, rng=0))
    return model, bp.CrossEntropyLoss(), bp.SGD(model.parameters(), lr=0.1), x, y


def test_keras_order_says_what_fit_takes(setup):
    model, loss, opt, x, y = setup
    for call, words in [(lambda: bp.fit(model, x, y), "fit got arrays where the loss"),
                        (lambda: bp.fit(model, loss, opt, x, y), "as one pair (x, y)"),
                        (lambda: bp.fit(model, loss, opt), "needs the training data")]:
        with pytest.raises(TypeError) as info:
            call()
        message = str(info.value)
        assert words in message and USAGE in message and "\n" not in message, message


def test_history_has_kerass_dict_of_lists(setup, capsys):
    model, loss, opt, x, y = setup
    h = bp.fit(model, loss, opt, (x, y), 3, validation_data=(x[:16], y[:16]))
    d = h.history
    assert list(d) == list(h.epochs[0])            # every key, in the logs' order
    assert d["epoch"] == [1, 2, 3] and d["train_loss"] == [e["train_loss"] for e in h.epochs]
    assert all(len(v) == 3 for v in d.values()) and len(d["val_accuracy"]) == 3
    with pytest.raises(KeyError, match="'loss': bareprop calls it 'train_loss'"):
        d["loss"]
    assert bp.History().history == {}


def test_fit_prints_a_line_per_epoch_unless_told_not_to(setup, capsys):
    model, loss, opt, x, y = setup
    bp.fit(model, loss, opt, (x, y), 2)
    out, err = capsys.readouterr()
    lines = err.splitlines()
    assert out == "" and len(lines) == 2 and lines[1].startswith("epoch 2/2  loss "), err
    bp.fit(model, loss, opt, (x, y), 2, verbose=False)
    assert capsys.readouterr() == ("", "")
    log = io.StringIO()                      # a ProgressBar given is the one used
    bp.fit(model, loss, opt, (x, y), 2, callbacks=[ProgressBar(file=log)])
    assert capsys.readouterr() == ("", "") and len(log.getvalue().splitlines()) == 2


class Recorder(Callback):
    needs_grads = False

    def __init__(self, log, name, fail_close=False):
        self.log, self.name, self.fail_close = log, name, fail_close

    def on_train_end(self, state):
        self.log.append(f"{self.name} end")

    def close(self):
        self.log.append(f"{self.name} close")
        if self.fail_close:
            raise OSError(f"{self.name} could not close")


class Interrupt(Callback):
    needs_grads = False

    def on_batch_end(self, state, loss, batch_size):
        if state.epoch == 1:
            raise KeyboardInterrupt


def test_every_callback_is_closed_however_fit_ends(setup):
    model, loss, opt, x, y = setup
    log = []
    bp.fit(model, loss, opt, (x, y), 1, callbacks=[Recorder(log, "a")])
    assert log == ["a end", "a close"]
    log.clear()
    with pytest.raises(KeyboardInterrupt):               # Ctrl-C in epoch 2
        bp.fit(model, loss, opt, (x, y), 3,
               callbacks=[Recorder(log, "a", fail_close=True), Interrupt(), Recorder(log, "b")])
    assert log == ["a close", "b close"]                 # closed, not ended; b despite a
    log.clear()
    with pytest.raises(OSError, match="a could not close"):  # a clean end reports it
        bp.fit(model, loss, opt, (x, y), 1,
               callbacks=[Recorder(log, "a", fail_close=True), Recorder(log, "b")])
    assert log == ["a end", "b end", "a close", "b close"]
