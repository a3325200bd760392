"""A run that --resume must end bit-identical to: its flags, and its trained weights."""
import numpy as np

FLAGS = ["--no-verify", "--hidden", "64", "32", "--epochs", "4", "--batch-size", "16",
         "--dropout", "0.2", "--augment", "affine", "--schedule", "onecycle", "--lr", "3e-3",
         "--val-fraction", "0.1", "--quiet", "--seed", "3"]


def weights(run_dir):
    with np.load(run_dir / "model.npz", allow_pickle=False) as z:
        return {k: z[k] for k in z.files if k != "__meta__"}


def train_cut_after_first_epoch(train, data, out, *args) -> int:
    """``train(data, out, *args)`` stopped by a Ctrl-C right after epoch 1's checkpoint
    (the state --resume starts from); its exit code (130)."""
    import pytest

    from bareprop.train.callbacks import Checkpointer

    original = Checkpointer.on_epoch_end

    def stop(self, state, logs):
        original(self, state, logs)
        if logs["epoch"] == 1:
            raise KeyboardInterrupt

    with pytest.MonkeyPatch.context() as m:
        m.setattr(Checkpointer, "on_epoch_end", stop)
        return train(data, out, *args)
