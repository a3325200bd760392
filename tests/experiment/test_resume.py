"""Checkpoints and --resume: a run killed mid-epoch ends bit-identical to an uninterrupted one."""
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from bareprop.train.checkpoint import load_checkpoint, save_checkpoint
from bareprop.errors import ModelFileError

from resumable import FLAGS, weights
from synthetic import write_dataset

def train(*args, **kw):
    return subprocess.Popen([sys.executable, "-m", "bareprop", "train", *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    # 12,000 examples: ~0.4 s an epoch here, so the kill 0.3 s after epoch 1's checkpoint
    # lands inside the run (at 3,000 the three remaining epochs took ~0.4 s in all and the
    # run could finish first, failing the test by timing alone)
    return write_dataset(tmp_path_factory.mktemp("d") / "mnist", n_train=12000, n_test=200)


def test_checkpoint_round_trip(tmp_path):
    state = {"epoch": 3, "model": {"0.weight": np.arange(6.0).reshape(2, 3)},
             "opt": [{"step": 5, "exp_avg": np.ones(2, np.float32)}], "name": "x", "none": None}
    save_checkpoint(tmp_path / "c.npz", state)
    back = load_checkpoint(tmp_path / "c.npz")
    assert back["epoch"] == 3 and back["name"] == "x" and back["none"] is None
    np.testing.assert_array_equal(back["model"]["0.weight"], state["model"]["0.weight"])
    assert back["opt"][0]["exp_avg"].dtype == np.float32 and back["opt"][0]["step"] == 5


def test_damaged_checkpoints_are_refused(tmp_path):
    save_checkpoint(tmp_path / "c.npz", {"epoch": 1})
    raw = (tmp_path / "c.npz").read_bytes()
    (tmp_path / "c.npz").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ModelFileError, match="truncated or corrupted"):
        load_checkpoint(tmp_path / "c.npz")
    with pytest.raises(ModelFileError, match="no such checkpoint"):
        load_checkpoint(tmp_path / "missing")


def test_kill_9_mid_epoch_then_resume_is_bit_identical(tmp_path, data):
    full = tmp_path / "full"
    p = train("--data-dir", data, "--out", full, *FLAGS)
    out, err = p.communicate(timeout=300)
    assert p.returncode == 0, err

    cut = tmp_path / "cut"
    p = train("--data-dir", data, "--out", cut, *FLAGS)
    ckpt = cut / "checkpoint.npz"
    deadline = time.time() + 240
    # a fresh run saves its starting state (epoch 0) at once: wait for epoch 1's
    while time.time() < deadline and not (ckpt.exists()            # epoch 1 done...
                                          and load_checkpoint(ckpt)["epoch"] >= 1):
        time.sleep(0.02)
    time.sleep(0.3)                                        # ...and into epoch 2
    assert p.poll() is None, "run ended before it could be killed"
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    assert not (cut / "model.npz").exists()
    epoch_at_kill = int(load_checkpoint(ckpt)["epoch"])
    assert 1 <= epoch_at_kill < 4

    r = subprocess.run([sys.executable, "-m", "bareprop", "train", "--resume", cut,
                        "--data-dir", data, "--no-verify", "--quiet"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert f"after epoch {epoch_at_kill}" in r.stderr
    a, b = weights(full), weights(cut)
    assert a.keys() == b.keys()
    for k in a:
        assert np.array_equal(a[k], b[k]), k          # bit-identical, not merely close
    assert out.strip().splitlines()[-1] == r.stdout.strip().splitlines()[-1]


def test_resume_without_a_checkpoint(tmp_path):
    r = subprocess.run([sys.executable, "-m", "bareprop", "train", "--resume", tmp_path],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "no checkpoint.npz to resume from" in r.stderr


def test_resume_refuses_changed_settings(tmp_path, data):
    r = subprocess.run([sys.executable, "-m", "bareprop", "train", "--resume", tmp_path,
                        "--lr", "0.1"], capture_output=True, text=True)
    assert r.returncode == 2 and "drop --lr" in r.stderr and "Traceback" not in r.stderr
