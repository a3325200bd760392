"""History: what a training run measured, batch by batch and epoch by epoch."""
from __future__ import annotations

from dataclasses import dataclass, field

#: Keras' names for what bareprop's logs call otherwise (history.history's hint)
_KERAS = {"loss": "train_loss", "accuracy": "train_accuracy", "acc": "train_accuracy",
          "val_acc": "val_accuracy"}


class PerEpoch(dict):
    """key -> one value per epoch; a Keras name that bareprop spells otherwise ('loss')
    is a KeyError naming the key to use ('train_loss')."""

    def __missing__(self, key):
        known = ", ".join(self) if self else "none (no epoch has run)"
        instead = _KERAS.get(key)
        hint = f"bareprop calls it {instead!r}; " if instead in self else ""
        raise KeyError(f"{key!r}: {hint}recorded keys: {known}")


@dataclass
class History:
    """``batch_loss``: the loss of every training batch (the notebook's plot).
    ``epochs``: one dict per epoch: epoch, train_loss, train_accuracy, seconds, lr,
    and val_*/test_* loss and accuracy when those sets were given.
    ``history``: the same as Keras' ``History.history``, a dict of per-epoch lists:

    >>> h = History(epochs=[{"epoch": 1, "train_loss": 0.9}, {"epoch": 2, "train_loss": 0.5}])
    >>> h.history["train_loss"]
    [0.9, 0.5]
    """

    batch_loss: list[float] = field(default_factory=list)
    epochs: list[dict] = field(default_factory=list)

    @property
    def history(self) -> dict[str, list]:
        """key -> list with one value per epoch (None for an epoch that lacks the key),
        keys in the order the epochs' logs first have them."""
        keys = dict.fromkeys(k for e in self.epochs for k in e)
        return PerEpoch((k, self.series(k)) for k in keys)

    def to_dict(self) -> dict:
        return {"batch_loss": list(self.batch_loss), "epochs": list(self.epochs)}

    @classmethod
    def from_dict(cls, d: dict) -> "History":
        return cls(list(d.get("batch_loss", [])), list(d.get("epochs", [])))

    def series(self, key: str) -> list:
        return [e.get(key) for e in self.epochs]

    def plot(self, title: str = ""):
        """A matplotlib figure like the CLI's loss.png: loss per batch, loss and accuracy
        per epoch (train, and val/test when recorded). Needs ``bareprop[plots]``."""
        from .. import plots
        from ..errors import ConfigError

        fig = plots.training_figure(self, title)
        if fig is None:
            raise ConfigError(plots.INSTALL_HINT)
        return fig
