"""Data-parallel training under mpirun (issue #15): the same answer as one process,
bit-identical replicas, one voice, agreed refusals, and no hang when a rank fails.

The mpirun tests run real Open MPI jobs of 2 and 3 ranks (oversubscribed, one BLAS
thread each); the rest check the pieces without MPI.
"""
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import bareprop as bp
from bareprop.data.batches import Batches, shard_bounds
from bareprop.distributed.agree import ReplicaMismatch, raised_on_every_rank
from bareprop.distributed.shard import check_world
from bareprop.errors import ConfigError
from bareprop.experiment import make_config
from bareprop.experiment.resume import check_world_size
from bareprop.train.checkpoint import load_checkpoint

from conftest import ROOT
from synthetic import write_dataset

TESTS = Path(__file__).resolve().parents[1] / "helpers"      # the MPI scripts
MPIRUN = Path(sys.executable).parent / "mpirun"


def _env(**extra):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "src"), str(TESTS)]),
               OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", BAREPROP_NUM_THREADS="1",
               **extra)
    env.pop("BAREPROP_TEST_FAULT", None)
    env.update(extra)
    return env


def mpirun(k: int, *args, timeout: float = 120, **env):
    """``mpirun -n k python ARGS`` (an Open MPI job on this machine); CompletedProcess."""
    if not MPIRUN.exists():
        pytest.skip("mpirun not found beside the Python (pip install 'bareprop[mpi]')")
    pytest.importorskip("mpi4py")
    cmd = [str(MPIRUN), "-n", str(k), "--oversubscribe", sys.executable, *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=_env(**env))


def cli(*args):
    return subprocess.run([sys.executable, "-m", "bareprop", *map(str, args)],
                          capture_output=True, text=True, timeout=120, env=_env())


def ours(stderr: str) -> list[str]:
    """bareprop's own lines of a job's stderr: mpirun adds its report around them, and
    may forward them after a stray space."""
    return re.findall(r"bareprop: [^\n]*", stderr)


def close(a: np.ndarray, b: np.ndarray, rel: float = 1e-12) -> bool:
    """max |a - b| <= rel * max |a|: the proof's "equal within 1e-12 relative"."""
    return a.shape == b.shape and np.max(np.abs(a - b)) <= rel * max(np.max(np.abs(a)), 1e-300)


# ---- the library: bp.fit(..., comm=...) on K ranks against one process -------------

@pytest.fixture(scope="module", params=[2, 3], ids=["2-ranks", "3-ranks"])
def worker_run(request, tmp_path_factory):
    out = tmp_path_factory.mktemp(f"w{request.param}") / "states.npz"
    r = mpirun(request.param, "-m", "mpi4py", TESTS / "mpi_worker.py", out)
    assert r.returncode == 0, r.stderr[-3000:]
    return request.param, dict(np.load(out))


@pytest.fixture(scope="module")
def single_states():
    import mpi_worker

    return {case: mpi_worker.train(*case) for case in mpi_worker.CASES}


@pytest.mark.parametrize("case", [("mlp", "sgd"), ("mlp", "adam"), ("cnn", "sgd"),
                                  ("cnn", "adam"), ("lstm", "adam"), ("vit", "sgd")])
def test_k_ranks_end_with_the_single_process_weights(worker_run, single_states, case):
    """Float64, no dropout or augmentation: every weight and the validation losses of
    each epoch equal one process's within 1e-12 relative (uneven shards for K = 3,
    and an empty one in each epoch's last batch); every rank's weights hash the same."""
    k, saved = worker_run
    model, history = single_states[case]
    name = "-".join(case)
    for key, value in model.state_dict().items():
        assert close(value, saved[f"{name}/{key}"]), (key, np.max(np.abs(value - saved[f"{name}/{key}"])))
    assert close(np.array(history.series("val_loss")), saved[f"{name}/val_loss"])
    prints = saved[f"{name}/fingerprints"]
    assert len(prints) == k and len(set(prints)) == 1, prints


def test_batch_norm_and_dropout_keep_the_ranks_identical(worker_run):
    k, saved = worker_run
    prints = saved["bn-adam/fingerprints"]
    assert len(prints) == k and len(set(prints)) == 1, prints
    assert np.all(np.isfinite(saved["bn-adam/val_loss"]))


def test_running_statistics_follow_the_documented_rule(worker_run):
    """One step of BatchNorm1d(20) (momentum 0.1) on a batch of 40 split over K ranks:
    running_mean = 0.9 * 0 + 0.1 * (the global batch's mean), running_var = 0.9 * 1 +
    0.1 * sum_r (n_r / N) * (rank r's unbiased shard variance)."""
    import mpi_worker

    k, saved = worker_run
    x = mpi_worker.data(False)[0][:mpi_worker.BATCH]
    shards = np.array_split(x, k)
    var = sum(len(s) / len(x) * s.var(axis=0, ddof=1) for s in shards)
    assert np.allclose(saved["bnstep-sgd/0.running_mean"], 0.1 * x.mean(axis=0), rtol=1e-12,
                       atol=1e-15)
    assert np.allclose(saved["bnstep-sgd/0.running_var"], 0.9 + 0.1 * var, rtol=1e-12)
    # and not what one process would hold (the global batch's variance)
    assert not np.allclose(saved["bnstep-sgd/0.running_var"],
                           0.9 + 0.1 * x.var(axis=0, ddof=1), rtol=1e-6)


# ---- the command line under mpirun ---------------------------------------------------

TRAIN = ("train", "--no-verify", "--quiet", "--dtype", "float64", "--batch-size", "128")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return write_dataset(tmp_path_factory.mktemp("data") / "mnist")


def test_cli_three_ranks_match_one_process(data_dir, tmp_path):
    """The default preset (one-cycle Adam, label smoothing) with a validation split and
    early stopping, 3 ranks against 1: the same weights, the same per-epoch validation
    losses; rank 0 alone prints and writes; the run records its process count."""
    flags = ("--data-dir", data_dir, "--epochs", "3", "--val-fraction", "0.2",
             "--early-stop", "2", "--log", "tensorboard,csv")
    one = cli(*TRAIN, *flags, "--out", tmp_path / "one")
    assert one.returncode == 0, one.stderr
    loud = [a for a in TRAIN if a != "--quiet"]           # the summary, printed once
    r = mpirun(3, "-m", "bareprop", *loud, *flags, "--out", tmp_path / "three")
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.count("test accuracy:") == 1 and r.stdout.count("Total params") == 1
    a, b = bp.load(tmp_path / "one" / "model.npz"), bp.load(tmp_path / "three" / "model.npz")
    for (name, p), (_, q) in zip(a.named_parameters(), b.named_parameters()):
        assert close(p.data, q.data), name
    m1 = json.loads((tmp_path / "one" / "metrics.json").read_text())
    m3 = json.loads((tmp_path / "three" / "metrics.json").read_text())
    assert m3["processes"] == 3 and m1["processes"] == 1
    assert close(np.array([e["val_loss"] for e in m1["history"]]),
                 np.array([e["val_loss"] for e in m3["history"]]))
    assert [e["val_accuracy"] for e in m1["history"]] == [e["val_accuracy"] for e in m3["history"]]
    assert all(e["allreduce_seconds"] >= 0 for e in m3["history"])
    assert sorted(os.listdir(tmp_path / "three")) == sorted(os.listdir(tmp_path / "one"))
    for part in ("epochs", "batches"):   # rank 0 alone logs: one event file each, not three
        assert len(os.listdir(tmp_path / "three" / "tensorboard" / part)) == 1


def test_cli_refusals_are_one_line_from_rank_zero(data_dir, tmp_path):
    r = mpirun(2, "-m", "bareprop", *TRAIN, "--data-dir", data_dir, "--preset", "seed",
               "--out", tmp_path / "seed")
    assert r.returncode != 0
    lines = ours(r.stderr)
    assert len(lines) == 1 and "--update-order notebook" in lines[0] and \
        "without mpirun" in lines[0], r.stderr
    assert "Traceback" not in r.stderr and not (tmp_path / "seed" / "checkpoint.npz").exists()


def test_events_under_mpirun_is_one_agreed_line(data_dir, tmp_path):
    """--events is refused like any other setting: agreed by every rank, one line from
    rank 0, no MPI_Abort report."""
    r = mpirun(2, "-m", "bareprop", *TRAIN, "--data-dir", data_dir, "--events",
               "--out", tmp_path / "ev")
    assert r.returncode == 2, r.stderr
    assert ours(r.stderr) == ["bareprop: error: --events is not supported under mpirun (the "
                              "event log is for bareprop serve's jobs); leave it out"], r.stderr
    assert "MPI_ABORT" not in r.stderr.upper() and "Traceback" not in r.stderr, r.stderr
    assert not (tmp_path / "ev").exists()


def test_other_commands_refuse_mpirun(tmp_path):
    """Decided from the launcher's environment alone (here set by hand: no job needed)."""
    r = subprocess.run([sys.executable, "-m", "bareprop", "evaluate", tmp_path / "m.npz"],
                       capture_output=True, text=True, timeout=60,
                       env=_env(OMPI_COMM_WORLD_SIZE="2", OMPI_COMM_WORLD_RANK="0"))
    assert r.returncode == 2
    assert r.stderr.strip() == ("bareprop: error: only 'bareprop train' runs on several "
                                "processes; run 'bareprop evaluate' as one process, without "
                                "mpirun"), r.stderr
    r = subprocess.run([sys.executable, "-m", "bareprop", "evaluate", tmp_path / "m.npz"],
                       capture_output=True, text=True, timeout=60,
                       env=_env(OMPI_COMM_WORLD_SIZE="2", OMPI_COMM_WORLD_RANK="1"))
    assert r.returncode == 2 and r.stderr == "" and r.stdout == ""     # rank 1 is silent


@pytest.mark.parametrize("how", ["error", "raise"])
def test_a_rank_that_raises_stops_every_rank(data_dir, tmp_path, how):
    """Rank 1 fails in its 8th step (epoch 2 of 3): the job ends within seconds with an
    error naming the rank, and the checkpoint of epoch 1 is intact."""
    stamp = tmp_path / "failed-at"
    t0 = time.time()
    r = mpirun(2, TESTS / "mpi_fault.py", *TRAIN, "--data-dir", data_dir, "--epochs", "3",
               "--out", tmp_path / "run", timeout=60,
               BAREPROP_TEST_FAULT=f"1:8:{how}:{stamp}")
    assert r.returncode != 0
    assert time.time() - float(stamp.read_text()) < 20 and time.time() - t0 < 60
    want = "bareprop: error: rank 1: cannot write the shard log" if how == "error" else \
        "bareprop: error: rank 1 failed (RuntimeError)"
    assert any(line.startswith(want) for line in ours(r.stderr)), r.stderr
    assert load_checkpoint(tmp_path / "run" / "checkpoint.npz")["epoch"] == 1
    assert not (tmp_path / "run" / "model.npz").exists()


def test_killed_rank_then_resume_is_bit_identical(data_dir, tmp_path):
    """SIGKILL rank 1 in its 8th step (epoch 2 of 2, 5 steps an epoch): every rank is
    gone within seconds; the checkpoint of epoch 1 is intact; --resume refuses another
    process count with one line, and with the same count ends bit-identical to an
    uninterrupted 2-rank run."""
    flags = (*TRAIN, "--data-dir", data_dir, "--epochs", "2", "--dropout", "0.2",
             "--augment", "affine")        # per-rank draws must resume exactly too
    whole = mpirun(2, "-m", "bareprop", *flags, "--out", tmp_path / "whole")
    assert whole.returncode == 0, whole.stderr[-3000:]
    stamp = tmp_path / "killed-at"
    r = mpirun(2, TESTS / "mpi_fault.py", *flags, "--out", tmp_path / "run", timeout=60,
               BAREPROP_TEST_FAULT=f"1:8:kill:{stamp}")
    assert r.returncode != 0
    assert time.time() - float(stamp.read_text()) < 20
    assert load_checkpoint(tmp_path / "run" / "checkpoint.npz")["epoch"] == 1
    assert not (tmp_path / "run" / "model.npz").exists()

    alone = cli("train", "--resume", tmp_path / "run")
    assert alone.returncode == 2 and ours(alone.stderr) == [
        f"bareprop: error: {tmp_path / 'run'} was trained on 2 processes, this is 1; a run "
        f"resumes only with the count it was started with: mpirun -n 2 bareprop train "
        f"--resume {tmp_path / 'run'}"], alone.stderr
    three = mpirun(3, "-m", "bareprop", "train", "--resume", tmp_path / "run")
    assert three.returncode != 0 and len(ours(three.stderr)) == 1 and \
        "was trained on 2 processes, this is 3" in three.stderr, three.stderr

    resumed = mpirun(2, "-m", "bareprop", "train", "--resume", tmp_path / "run", "--quiet")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    a = bp.load(tmp_path / "whole" / "model.npz").state_dict()
    b = bp.load(tmp_path / "run" / "model.npz").state_dict()
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


# ---- the pieces, without MPI -----------------------------------------------------------

def test_one_process_never_imports_mpi(tmp_path, data_dir):
    code = ("import sys; from bareprop.cli.main import main; "
            f"rc = main(['train', '--data-dir', {str(data_dir)!r}, '--no-verify', '--quiet', "
            f"'--epochs', '1', '--out', {str(tmp_path / 'r')!r}]); "
            "assert rc == 0; assert not [m for m in sys.modules if m.startswith('mpi4py')]")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       timeout=120, env=_env())
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("n", [0, 1, 2, 7, 10, 128])
@pytest.mark.parametrize("world", [1, 2, 3, 5])
def test_shards_are_array_split(n, world):
    items = np.arange(n)
    parts = [items[slice(*shard_bounds(n, world, r))] for r in range(world)]
    for got, want in zip(parts, np.array_split(items, world)):
        assert np.array_equal(got, want)


def test_batches_shard_each_global_batch_and_augment_per_rank():
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 255, (23, 28, 28)).astype(np.uint8), np.arange(23)
    whole = Batches(x, y, 10, None, np.float64, shuffle=True, seed=4)
    merged = [np.concatenate([b[1] for b in group]) for group in
              zip(*(list(whole.epoch(2, rank, 3)) for rank in range(3)))]
    assert [list(m) for m in merged] == [list(b[1]) for b in whole.epoch(2)]
    from bareprop.data.augment import make_augment

    aug = Batches(x, y, 10, None, np.float64, shuffle=True, seed=4, augment=make_augment("affine"))
    r0, r1 = next(aug.epoch(2, 0, 2)), next(aug.epoch(2, 1, 2))
    plain = next(whole.epoch(2, 1, 2))[0]
    expect = make_augment("affine")(plain, np.random.default_rng([4, 2, 1, 1]))
    assert np.array_equal(r1[0], expect)             # rank 1's own stream, on its shard
    assert not np.array_equal(r0[0], make_augment("affine")(
        next(whole.epoch(2, 0, 2))[0], np.random.default_rng([4, 2, 1, 1])))


def test_dropout_draws_per_rank():
    from bareprop.train.loop import reseed

    masks = []
    for rank in (0, 1):
        m = bp.Sequential(bp.Linear(4, 64, rng=0), bp.Dropout(0.5))
        reseed(m, 3, 1, rank, 2)
        m(np.ones((8, 4)))
        masks.append(m.layers[1]._mask.copy())
    assert not np.array_equal(*masks)
    one = bp.Sequential(bp.Linear(4, 64, rng=0), bp.Dropout(0.5))
    reseed(one, 3, 1)               # one process: the stream it always had
    one(np.ones((8, 4)))
    ref = np.random.default_rng([3, 1, 2, 0]).random((8, 64), dtype=np.float32) >= 0.5
    assert np.array_equal(one.layers[1]._mask > 0, ref)


def test_world_refusals():
    mlp = bp.Sequential(bp.Linear(784, 10))
    check_world(make_config({"epochs": 1}), 4, 600, mlp)          # accepted
    with pytest.raises(ConfigError, match="--update-order notebook .the seed preset's."):
        check_world(make_config({"preset": "seed"}), 2, 600, mlp)
    with pytest.raises(ConfigError, match="--clip-delta"):
        check_world(make_config({"clip_delta": 1.0}), 2, 600, mlp)
    # 600 = 4 x 128 + 88: the last batch of 88 on 100 ranks leaves shards of 1 (and 0)
    with pytest.raises(ConfigError, match="a batch of 88 on 100 processes gives some a shard"):
        check_world(make_config({"batchnorm": True}), 100, 600, mlp)
    check_world(make_config({"batchnorm": True}), 44, 600, mlp)   # 2 each at least


def test_resume_with_another_count_is_one_line():
    check_world_size({"world_size": 2}, 2, "runs/x")
    with pytest.raises(ConfigError, match=r"runs/x was trained on one process, this is 3; "
                                          r".*bareprop train --resume runs/x \(one process"):
        check_world_size({"world_size": 1}, 3, "runs/x")


def test_replica_mismatch_is_raised_on_every_rank():
    from bareprop.distributed.gradsync import check_replicas, fingerprint

    m = bp.Sequential(bp.Linear(3, 2, rng=0))

    class TwoRanks:
        def allgather(self, obj):
            return [obj, "0" * 32]

    with pytest.raises(ReplicaMismatch, match="rank.s. 1 differs from rank 0's after epoch 4") \
            as info:
        check_replicas(TwoRanks(), m, "after epoch 4")
    assert raised_on_every_rank(info.value)

    class Agreeing:
        def allgather(self, obj):
            return [obj, obj]

    check_replicas(Agreeing(), m, "after epoch 4")
    assert fingerprint(m) != fingerprint(bp.Sequential(bp.Linear(3, 2, rng=1)))


def test_scaling_model_recovers_the_fit_and_its_50_percent_batch():
    """benchmarks/mpi_model.py: the compute line through the two measured points, the
    ring-allreduce time, and B50 (the batch at which the efficiency is exactly 50%)."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import mpi_model
    finally:
        sys.path.pop(0)
    c0, c1, mib = 2e-3, 50e-6, 4 * 2**20            # 2 ms + 50 us per example, 4 MiB
    rows = [{"net": "n", "processes": 1, "blas_threads": 1, "batch": 256,
             "seconds_per_step": c0 + c1 * 256, "allreduce_bytes": mib,
             "allreduce_seconds_per_step": 0.0},
            {"net": "n", "processes": 2, "blas_threads": 1, "batch": 256,
             "seconds_per_step": c0 + c1 * 128 + 1e-3, "allreduce_bytes": mib,
             "allreduce_seconds_per_step": 1e-3}]
    fit = mpi_model.fit_compute(rows)
    assert fit["c0"] == pytest.approx(c0) and fit["c1"] == pytest.approx(c1)
    # 10 Gbit/s, no latency: 2 (K-1)/K x 4 MiB / 1.25 GB/s
    assert mpi_model.allreduce_seconds(4, mib, 10, 0.0) == pytest.approx(1.5 * mib / 1.25e9)
    effs = [mpi_model.project(fit, k, 10, 30e-6)["efficiency"] for k in mpi_model.KS]
    assert effs == sorted(effs, reverse=True) and effs[0] < 1
    for k in (4, 16, 64):
        b50 = mpi_model.project(fit, k, 10, 30e-6)["b50"]
        assert mpi_model.project(fit, k, 10, 30e-6, batch=b50)["efficiency"] == \
            pytest.approx(0.5)
    text = mpi_model.table({"date": "d", "machine": {"cpu": "c", "cpus": 2}, "command": "x",
                            "rows": rows})
    assert text.count("| 10 Gbit/s Ethernet (TCP) |") == len(mpi_model.KS)
