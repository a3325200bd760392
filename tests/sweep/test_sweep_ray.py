"""``bareprop sweep --engine ray``: the same trials through Ray Tune on a local Ray
cluster the sweep starts, and a --ray-address nobody answers at refused in one line."""
import os
import socket
import subprocess
import sys
import time

import pytest

from bareprop.runs.jsonfiles import read_run_json

from synthetic import write_dataset

pytest.importorskip("ray")
pytest.importorskip("optuna")


def cli(*args, timeout=600, cwd=None):
    return subprocess.run([sys.executable, "-m", "bareprop", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout, cwd=cwd,
                          env={**os.environ, "RAY_USAGE_STATS_ENABLED": "0"})


def test_a_sweep_through_a_local_ray_cluster(tmp_path):
    write_dataset(tmp_path / "mnist", n_train=800)
    out = tmp_path / "s"
    # a relative --data-dir: Tune runs each trial in a folder of its own, and the trials
    # must still train on these files (not on whatever else bareprop finds)
    r = cli("sweep", "--engine", "ray", "--data-dir", "mnist", "--no-verify", "--epochs", "1",
            "--hidden", "32", "--space", "lr=log(1e-3,1e-1)", "--trials", "2", "--jobs", "1",
            "--prune", "asha", "--out", "s", cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    rec = read_run_json(out / "sweep.json")
    assert rec["engine"] == "ray" and rec["state"] == "finished"
    assert sorted(t["number"] for t in rec["trials"]) == [0, 1]
    for t in rec["trials"]:
        assert t["state"] in ("complete", "pruned"), t
        metrics = read_run_json(out / t["folder"] / "metrics.json")   # a whole run folder
        assert [e["val_accuracy"] for e in metrics["history"]] == t["val_accuracy"]
        assert 1e-3 <= t["params"]["lr"] <= 1e-1
    best = rec["best"]
    assert best is not None and best["value"] == max(t["value"] for t in rec["trials"]
                                                      if t["state"] == "complete")
    best_metrics = read_run_json(out / best["folder"] / "metrics.json")
    assert best_metrics["test_accuracy"] == best["test_accuracy"]
    # the synthetic digits are easy: a model trained on them scores well on their test set
    assert best["value"] > 0.5 and best["test_accuracy"] > 0.5
    assert best_metrics["config"]["data_dir"] == str(tmp_path / "mnist")
    assert (out / "ray" / "bareprop").is_dir()          # Tune's own state, for --resume


def test_an_unreachable_ray_address_is_one_line_within_30_s(tmp_path):
    with socket.socket() as s:          # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    t0 = time.monotonic()
    r = cli("sweep", "--engine", "ray", "--ray-address", f"127.0.0.1:{port}", "--space",
            "lr=log(1e-3,1e-1)", "--out", tmp_path / "s")
    assert time.monotonic() - t0 < 30
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert f"--ray-address 127.0.0.1:{port}: no Ray cluster answers there" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not (tmp_path / "s").exists()                # refused before the folder
