"""Faults through the CLI: one line, a non-zero exit, nothing already saved is lost."""
import gzip
import subprocess
import sys

import numpy as np
import pytest

import bareprop as bp
from bareprop.data import write_idx
from bareprop.data.registry import STANDARD_FILES

from synthetic import write_dataset


def cli(*args):
    return subprocess.run([sys.executable, "-m", "bareprop", *map(str, args)],
                          capture_output=True, text=True, timeout=300)


def one_line(r, code, *fragments):
    assert r.returncode == code, (r.returncode, r.stderr)
    err = r.stderr.strip()
    assert "Traceback" not in r.stderr and len(err.splitlines()) == 1, err
    for f in fragments:
        assert f in err, err


@pytest.mark.parametrize("damage,fragments", [
    (lambda p: p.write_bytes(b""), ["is empty"]),
    (lambda p: p.write_bytes(b"\x00\x00\x08"), ["named .gz but"]),
    (lambda p: p.write_bytes(gzip.compress(b"\x00\x00\x08")), ["truncated header"]),
    (lambda p: p.write_bytes(gzip.compress(b"\x08\x03\x00\x00")), ["wrong magic"]),
    (lambda p: p.write_bytes(p.read_bytes()[:-200]), ["truncated payload"]),
    (lambda p: p.write_bytes(gzip.compress(b"\x00\x00\x07\x01\x00\x00\x00\x01x")),
     ["unknown IDX dtype code 0x07"]),
    (lambda p: p.write_bytes(gzip.compress(gzip.decompress(p.read_bytes()) + b"extra")),
     ["longer than its header says"]),
    (lambda p: p.write_bytes(p.read_bytes()[:30] + b"\xff" * 40 + p.read_bytes()[70:]),
     ["corrupt gzip stream"]),
    (lambda p: write_idx(p, np.zeros(10, np.uint8)), ["600 images but 10 labels"]),
    (lambda p: write_idx(p, np.full(600, 12, np.uint8)), ["labels must lie in 0..9"]),
])
def test_damaged_data_files(tmp_path, damage, fragments):
    folder = write_dataset(tmp_path / "mnist")
    target = "train_labels" if "labels" in fragments[0] else "train_images"
    damage(folder / STANDARD_FILES[target])
    r = cli("train", "--data-dir", folder, "--no-verify", "--out", tmp_path / "o", "--quiet")
    one_line(r, 2, *fragments)


def test_directory_where_a_data_file_should_be(tmp_path):
    folder = write_dataset(tmp_path / "mnist")
    (folder / STANDARD_FILES["test_labels"]).unlink()
    (folder / STANDARD_FILES["test_labels"]).mkdir()
    r = cli("train", "--data-dir", folder, "--no-verify", "--out", tmp_path / "o", "--quiet")
    one_line(r, 2, "is a directory where the IDX file")


def test_divergence_leaves_the_last_good_checkpoint(tmp_path):
    folder = write_dataset(tmp_path / "mnist")
    out = tmp_path / "run"
    # epoch 1 trains normally; the exponential schedule then multiplies lr by 1e12
    r = cli("train", "--data-dir", folder, "--no-verify", "--out", out, "--quiet",
            "--optimizer", "sgd", "--lr", "0.01", "--schedule", "exponential", "--gamma", "1e12",
            "--scale", "raw", "--epochs", "3")
    one_line(r, 1, "diverged", "lower the learning rate")
    from bareprop.train.checkpoint import load_checkpoint

    ckpt = load_checkpoint(out / "checkpoint.npz")
    assert ckpt["epoch"] == 1
    assert all(np.all(np.isfinite(v)) for v in ckpt["model"].values())
    assert not (out / "model.npz").exists()


def test_input_size_mismatch_is_refused(tmp_path):
    folder = write_dataset(tmp_path / "mnist")
    bp.save(bp.Sequential(bp.Linear(100, 10, rng=0)), tmp_path / "m.npz")
    r = cli("evaluate", tmp_path / "m.npz", "--data-dir", folder, "--no-verify")
    one_line(r, 2, "model expects 100 inputs", "784 pixels")


def test_model_file_that_is_a_directory_or_garbage(tmp_path):
    (tmp_path / "m.npz").mkdir()  # a folder is read as a run folder holding model.npz
    one_line(cli("evaluate", tmp_path / "m.npz"), 2, "no such model file")
    (tmp_path / "g.npz").write_bytes(b"\x00" * 100)
    one_line(cli("predict", tmp_path / "g.npz", tmp_path / "x.png"), 2,
             "not a readable bareprop model")


def test_disk_full_while_saving_keeps_the_old_files(tmp_path, monkeypatch, capsys):
    """ENOSPC on the next write: one clear line, exit 2, the previous files byte-identical."""
    from bareprop.cli.main import main

    folder = write_dataset(tmp_path / "mnist")
    out = tmp_path / "run"
    args = ["train", "--data-dir", str(folder), "--no-verify", "--out", str(out), "--quiet",
            "--epochs", "1"]
    assert main(args) == 0
    before = {name: (out / name).read_bytes() for name in ("model.npz", "checkpoint.npz")}
    capsys.readouterr()

    def disk_full(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("bareprop.archive.os.fsync", disk_full)
    assert main(args + ["--seed", "1", "--overwrite"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "No space left on device" in err
    assert "unchanged" in err
    for name, data in before.items():
        assert (out / name).read_bytes() == data
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["model.npz", "checkpoint.npz", "metrics.json", "loss.png", "inspect.json"])
