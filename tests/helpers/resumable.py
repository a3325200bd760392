"""A run that --resume must end bit-identical to: its flags, and its trained weights."""
import numpy as np

FLAGS = ["--no-verify", "--hidden", "64", "32", "--epochs", "4", "--batch-size", "16",
         "--dropout", "0.2", "--augment", "affine", "--schedule", "onecycle", "--lr", "3e-3",
         "--val-fraction", "0.1", "--quiet", "--seed", "3"]


def weights(run_dir):
    with np.load(run_dir / "model.npz", allow_pickle=False) as z:
        return {k: z[k] for k in z.files if k != "__meta__"}
