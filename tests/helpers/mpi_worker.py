"""Run under mpirun by test_distributed.py: trains the proof's small nets with
bp.fit(..., comm=...) and has rank 0 write every final state plus every rank's
fingerprint. Imported by the test too, which trains the same nets in one process.

    mpirun -n K python -m mpi4py tests/helpers/mpi_worker.py OUT.npz

(``-m mpi4py``: an exception on one rank aborts the job instead of leaving the others
waiting in an allreduce.)
"""
import sys

import numpy as np

import bareprop as bp

N, BATCH, EPOCHS = 202, 40, 2       # batches of 40 and a last one of 2: uneven shards
                                    # for K = 3 (14, 13, 13), an empty one in the last (1, 1, 0)


def data(image: bool):
    rng = np.random.default_rng(7)
    y = rng.integers(0, 10, N)
    x = rng.normal(size=(N, 1, 12, 12)) if image else rng.normal(size=(N, 20))
    if image:
        x[:, 0, 0, :] += y[:, None]                             # learnable: row 0 says y
    else:
        x[:, 0] += y
    return x, y


def model(kind: str):
    if kind == "mlp":
        return bp.Sequential(bp.Linear(20, 16, rng=1), bp.Tanh(), bp.Linear(16, 10, rng=2),
                             dtype=np.float64)
    if kind in SEQUENCE:         # an image read row by row; a small vision transformer
        from bareprop.experiment.arch import build

        return build(SEQUENCE[kind], (1, 12, 12), n_classes=10, dtype=np.float64, seed=1)
    if kind == "cnn":            # no batch norm: its statistics are per rank (see "bn")
        return bp.Sequential(bp.Conv2d(1, 4, 3, rng=1), bp.ReLU(), bp.MaxPool2d(2),
                             bp.Flatten(), bp.Linear(4 * 5 * 5, 10, rng=2), dtype=np.float64,
                             input_shape=(1, 12, 12))
    return bp.Sequential(bp.Conv2d(1, 4, 3, rng=1), bp.BatchNorm2d(4), bp.ReLU(),
                         bp.MaxPool2d(2), bp.Flatten(), bp.Linear(4 * 5 * 5, 16, rng=2),
                         bp.BatchNorm1d(16), bp.ReLU(), bp.Dropout(0.3),
                         bp.Linear(16, 10, rng=3), dtype=np.float64, input_shape=(1, 12, 12))


#: the recurrent and attention nets of the proof, as --arch strings (no dropout)
SEQUENCE = {"lstm": "rows lstm(6,bidirectional=true) linear(10)",
            "vit": "patches(4,8) clstoken posembed transformer(heads=2,ff=16,dropout=0) "
                   "firsttoken layernorm linear(10)"}

# the proof's four (float64, no dropout or augmentation: equal to one process), then
# batch norm with dropout (ranks must stay identical), then one step of a net whose
# first layer is a BatchNorm1d (its running statistics follow the documented rule), then
# a bidirectional LSTM and a vision transformer (equal to one process, as the four)
CASES = [(net, opt) for net in ("mlp", "cnn") for opt in ("sgd", "adam")] + \
    [("bn", "adam"), ("bnstep", "sgd"), ("lstm", "adam"), ("vit", "sgd")]


def train(net: str, opt: str, comm=None, epochs: int = EPOCHS):
    x, y = data(net not in ("mlp", "bnstep"))
    if net == "bnstep":
        m = bp.Sequential(bp.BatchNorm1d(20), bp.Linear(20, 10, rng=1), dtype=np.float64)
        batches, epochs = bp.data.Batches(x[:BATCH], y[:BATCH], BATCH, None, np.float64), 1
    else:
        m = model(net)
        # batch norm gets no shard of one example: whole batches only
        batches = bp.data.Batches(x, y, BATCH, None, np.float64, shuffle=True, seed=3,
                                  drop_last=net == "bn")
    o = bp.SGD(m.parameters(), lr=0.05, momentum=0.9) if opt == "sgd" else \
        bp.Adam(m.parameters(), lr=1e-2)
    h = bp.fit(m, bp.CrossEntropyLoss(), o, batches, epochs, seed=3,
               validation_data=(x[:57], y[:57]), comm=comm)
    return m, h


def main(out: str) -> None:
    from bareprop.distributed import from_environment
    from bareprop.distributed.gradsync import fingerprint

    comm = from_environment()
    saved = {}
    for net, opt in CASES:
        m, h = train(net, opt, comm)
        for k, v in m.state_dict().items():
            saved[f"{net}-{opt}/{k}"] = v
        saved[f"{net}-{opt}/val_loss"] = np.array(h.series("val_loss"))
        saved[f"{net}-{opt}/fingerprints"] = np.array(comm.allgather(fingerprint(m)))
    if comm.rank == 0:
        np.savez(out, **saved)


if __name__ == "__main__":
    main(sys.argv[1])
