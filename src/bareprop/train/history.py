"""History: what a training run measured, batch by batch and epoch by epoch."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class History:
    """``batch_loss``: the loss of every training batch (the notebook's plot).
    ``epochs``: one dict per epoch: epoch, train_loss, train_accuracy, seconds, lr,
    and val_*/test_* loss and accuracy when those sets were given.
    """

    batch_loss: list[float] = field(default_factory=list)
    epochs: list[dict] = field(default_factory=list)

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
