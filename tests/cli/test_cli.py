"""The bareprop command through a real subprocess: exit codes, files, JSON, one-line errors."""
import json
import re
import os
import subprocess
import sys

import pytest

from synthetic import write_dataset


def bareprop(*args, cwd=None, env_extra=None, timeout=120):
    env = {**os.environ, **(env_extra or {})}
    env.pop("BAREPROP_DATA_DIR", None) if env_extra is None else None
    return subprocess.run([sys.executable, "-m", "bareprop", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout, env=env)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return write_dataset(tmp_path_factory.mktemp("data") / "mnist")


def assert_one_line_error(r, code, *fragments):
    assert r.returncode == code, r.stderr
    err = r.stderr.strip()
    assert "Traceback" not in r.stderr and len(err.splitlines()) == 1, err
    for f in fragments:
        assert f in err, err


def test_train_writes_run_folder(tmp_path, data_dir):
    out = tmp_path / "run"
    r = bareprop("train", "--data-dir", data_dir, "--no-verify", "--epochs", "2", "--hidden",
                 "32", "16", "--activation", "relu", "tanh", "--out", out,
                 "--lr", "0.003")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    assert lines[0].startswith("Layer (type)") and "Total params: 25,818" in r.stdout
    assert re.fullmatch(r"test accuracy: [01]\.\d{4}", lines[-1])
    assert float(lines[-1].split(": ")[1]) > 0.5
    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("test_accuracy", "test_loss", "history", "seconds_per_epoch", "config",
                "per_class_accuracy", "batch_loss"):
        assert key in metrics
    assert len(metrics["history"]) == 2 and metrics["config"]["hidden"] == [32, 16]
    assert metrics["config"]["activation"] == ["relu", "tanh"]
    assert len(metrics["batch_loss"]) == 2 * 5  # 600 examples, batch 128: 5 batches
    assert abs(metrics["test_accuracy"] - float(lines[-1].split(": ")[1])) < 1e-4
    assert (out / "model.npz").stat().st_size > 0
    assert (out / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    ev = bareprop("evaluate", out / "model.npz", "--data-dir", data_dir, "--no-verify")
    assert ev.returncode == 0, ev.stderr
    assert f"accuracy: {metrics['test_accuracy']:.4f}" in ev.stdout
    assert ev.stdout.count("  0.") + ev.stdout.count("  1.0") >= 10  # per-class lines


def test_quiet_prints_only_the_final_result_line(tmp_path, data_dir):
    """--quiet: no summary table, settings line, progress or file list."""
    r = bareprop("train", "--data-dir", data_dir, "--no-verify", "--epochs", "1", "--hidden",
                 "8", "--out", tmp_path / "run", "--quiet", "--log", "csv")
    assert r.returncode == 0 and r.stderr == "", r.stderr
    assert re.fullmatch(r"test accuracy: [01]\.\d{4}\n", r.stdout), r.stdout
    assert (tmp_path / "run" / "metrics.csv").is_file()


def test_preset_and_override_recorded(tmp_path, data_dir):
    out = tmp_path / "seed"
    r = bareprop("train", "--preset", "seed", "--epochs", "1", "--data-dir", data_dir,
                 "--no-verify", "--out", out, "--quiet")
    assert r.returncode == 0, r.stderr
    cfg = json.loads((out / "metrics.json").read_text())["config"]
    assert cfg["preset"] == "seed" and cfg["epochs"] == 1 and cfg["lr"] == 1e-5
    assert cfg["clip_delta"] == 1.0 and cfg["scale"] == "raw" and cfg["init"] == "notebook"


@pytest.mark.parametrize("args,fragments", [
    (["--lr", "-1"], ["--lr", "positive"]),
    (["--lr", "0"], ["--lr", "positive"]),
    (["--batch-size", "0"], ["--batch-size", "at least 1"]),
    (["--hidden", "0"], ["--hidden", "at least 1"]),
    (["--hidden", "8", "8", "--activation", "relu", "tanh", "relu"], ["one per layer"]),
    (["--activation", "rleu"], ["unknown activation 'rleu'", "Did you mean 'relu'"]),
    (["--init", "xavier"], ["unknown init 'xavier'"]),
    (["--optimizer", "adamm"], ["unknown optimizer", "'adam'"]),
    (["--preset", "sed"], ["unknown preset", "'seed'"]),
    (["--dataset", "mnsit"], ["unknown dataset", "'mnist'"]),
    (["--epochs", "two"], ["--epochs", "integer"]),
    (["--scale", "unitt"], ["unknown scale", "'unit'"]),
    (["--arch", "flatten leakyrelu(1e400) linear(10)"],
     ["leakyrelu's negative_slope must be a finite number, got inf"]),
    (["--arch", "flatten leakyrelu(-1e999) linear(10)"], ["a finite number, got -inf"]),
    (["--arch", f"flatten leakyrelu(1{'0' * 400}) linear(10)"], ["a finite number, got 1000"]),
])
def test_bad_settings_are_refused_before_work(tmp_path, args, fragments):
    out = tmp_path / "never"
    r = bareprop("train", "--out", out, "--data-dir", tmp_path / "none", *args)
    assert_one_line_error(r, 2, *fragments)
    assert not out.exists()


def test_missing_data_is_one_clear_line(tmp_path):
    env = {"XDG_CACHE_HOME": str(tmp_path / "c"), "BAREPROP_DATA_DIR": "",
           "http_proxy": "http://127.0.0.1:9", "https_proxy": "http://127.0.0.1:9"}
    (tmp_path / "empty").mkdir()                    # a folder without the files: download
    r = bareprop("train", "--data-dir", tmp_path / "empty", "--out", tmp_path / "o",
                 env_extra=env)
    assert_one_line_error(r, 2, "could not download", "BAREPROP_DATA_DIR")
    r = bareprop("train", "--data-dir", tmp_path / "none", "--out", tmp_path / "o",
                 env_extra=env)                    # no such folder: said, not passed over
    assert_one_line_error(r, 2, "--data-dir", "is missing, not a folder")


def test_unwritable_out_dir(tmp_path, data_dir):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    r = bareprop("train", "--data-dir", data_dir, "--no-verify", "--out", blocker / "sub")
    assert_one_line_error(r, 2, "cannot write to output folder", "--out")


def test_diverging_run_stops_with_advice(tmp_path, data_dir):
    r = bareprop("train", "--data-dir", data_dir, "--no-verify", "--lr", "1e30", "--optimizer",
                 "sgd", "--scale", "raw", "--out", tmp_path / "o", "--quiet")
    assert_one_line_error(r, 1, "diverged", "--lr", "--scale")


def test_evaluate_bad_model_files(tmp_path, data_dir):
    r = bareprop("evaluate", tmp_path / "missing.npz")
    assert_one_line_error(r, 2, "no such model file")
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"PK\x03\x04garbage")
    assert_one_line_error(bareprop("evaluate", bad), 2, "not a readable bareprop model")


def test_help_and_version():
    assert bareprop("--version").stdout.startswith("bareprop ")
    r = bareprop("train", "--help")
    assert r.returncode == 0 and "--preset" in r.stdout and "--clip-delta" in r.stdout


def test_evaluate_a_model_trained_with_input_dropout(tmp_path, data_dir):
    """Bug: evaluate read model.layers[0].in_features, which a Dropout first layer lacks."""
    out = tmp_path / "run"
    r = bareprop("train", "--data-dir", data_dir, "--no-verify", "--epochs", "1", "--hidden", "8",
                 "--input-dropout", "0.2", "--out", out, "--quiet")
    assert r.returncode == 0, r.stderr
    r = bareprop("evaluate", out / "model.npz", "--data-dir", data_dir, "--no-verify")
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    assert re.search(r"accuracy: 0\.\d{4}", r.stdout), r.stdout
