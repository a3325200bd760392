"""Run folders as an attacker or a clumsy user leaves them: planted symlinks are never
written through, a folder holding a run is not silently reused, two runs never share a
folder, and default folders never collide."""
import os
import subprocess
import sys
import time

import pytest

from bareprop.cli.main import main
from bareprop.runs.lock import lock_line
from bareprop.train.checkpoint import load_checkpoint, save_checkpoint

from oneline import one_line
from synthetic import write_dataset

TINY = ["--no-verify", "--quiet", "--hidden", "8", "--epochs", "1"]
#: every name bareprop writes in a run folder, and the old probe
WRITTEN = ["model.npz", "metrics.json", "checkpoint.npz", "loss.png", "inspect.json",
           "report.html", "compare.json", "compare.png", ".write-test", ".bareprop.lock"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_dataset(tmp_path_factory.mktemp("d") / "mnist")


def plant(run, outside, names, temps_only=()):
    """A symlink under each of ``names`` and each predictable temporary name (only those
    for ``temps_only``) in ``run``, pointing at a file of its own in ``outside``;
    returns what they hold."""
    run.mkdir(parents=True, exist_ok=True)
    outside.mkdir(exist_ok=True)
    pid = os.getpid()
    targets = {}
    for name in (*names, *temps_only):
        links = (f".{name}.tmp-{pid}", f"{name}.tmp")
        for link in links if name in temps_only else (name, *links):
            target = outside / f"victim-{link.strip('.')}"
            target.write_bytes(b"precious " + link.encode())
            (run / link).symlink_to(target)
            targets[target] = target.read_bytes()
    return targets


def untouched(outside, targets):
    assert sorted(outside.iterdir()) == sorted(targets)          # nothing new outside
    for target, data in targets.items():
        assert target.read_bytes() == data, target


# -- symlinks planted under every name bareprop writes --------------------------------------
def test_train_never_writes_through_a_planted_symlink(tmp_path, data):
    run, outside = tmp_path / "run", tmp_path / "outside"
    targets = plant(run, outside, WRITTEN)
    assert main(["train", "--data-dir", str(data), *TINY, "--out", str(run), "--overwrite"]) == 0
    untouched(outside, targets)
    for name in ("model.npz", "metrics.json", "checkpoint.npz", "loss.png", "inspect.json"):
        assert (run / name).is_file() and not (run / name).is_symlink()
    assert not os.path.lexists(run / ".bareprop.lock")


def test_resume_and_report_never_write_through_a_planted_symlink(tmp_path, data):
    run, outside = tmp_path / "run", tmp_path / "outside"
    assert main(["train", "--data-dir", str(data), "--no-verify", "--quiet", "--hidden", "8",
                 "--epochs", "2", "--schedule", "none", "--out", str(run)]) == 0
    state = load_checkpoint(run / "checkpoint.npz")     # back to "killed after epoch 1"
    state["epoch"], state["history"]["epochs"] = 1, state["history"]["epochs"][:1]
    save_checkpoint(run / "checkpoint.npz", state)
    for name in WRITTEN:
        if name != "checkpoint.npz" and os.path.lexists(run / name):
            (run / name).unlink()
    # compare.json would be read by report as its input: the compare test plants that one
    names = [n for n in WRITTEN if n not in ("checkpoint.npz", "compare.json")]
    targets = plant(run, outside, names, temps_only=("checkpoint.npz",))
    assert main(["train", "--resume", str(run), "--data-dir", str(data), "--no-verify",
                 "--quiet"]) == 0
    assert load_checkpoint(run / "checkpoint.npz")["epoch"] == 2
    assert main(["report", str(run), "--data-dir", str(data)]) == 0
    untouched(outside, targets)
    assert (run / "report.html").is_file() and not (run / "report.html").is_symlink()


def test_compare_never_writes_through_a_planted_symlink(tmp_path, data):
    pytest.importorskip("torch")
    run, outside = tmp_path / "run", tmp_path / "outside"
    targets = plant(run, outside, WRITTEN)
    assert main(["compare", "--data-dir", str(data), "--no-verify", "--hidden", "8",
                 "--epochs", "1", "--out", str(run), "--overwrite"]) == 0
    untouched(outside, targets)
    assert (run / "compare.json").is_file() and not (run / "compare.json").is_symlink()


def test_a_directory_where_a_file_goes_is_refused_in_one_line(tmp_path, data, capsys):
    run = tmp_path / "run"
    (run / "loss.png").mkdir(parents=True)
    assert main(["train", "--data-dir", str(data), *TINY, "--out", str(run)]) == 2
    one_line(capsys, "loss.png", "a directory is in its place")


# -- a folder holding a run ------------------------------------------------------------------
def test_a_folder_holding_a_run_is_refused_and_kept(tmp_path, data, capsys):
    run = tmp_path / "run"
    args = ["train", "--data-dir", str(data), *TINY, "--out", str(run)]
    assert main(args) == 0
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    capsys.readouterr()
    assert main(args + ["--seed", "1"]) == 2
    one_line(capsys, "already holds a run", f"--resume {run}", "new --out folder", "--overwrite")
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before
    assert main(args + ["--seed", "1", "--overwrite"]) == 0
    assert (run / "model.npz").read_bytes() != before["model.npz"]


def test_a_killed_runs_folder_is_refused_without_resume(tmp_path, data, capsys):
    """A folder with only a checkpoint (the run was killed before its end) is a run too."""
    run = tmp_path / "run"
    assert main(["train", "--data-dir", str(data), *TINY, "--out", str(run)]) == 0
    for name in ("model.npz", "metrics.json"):
        (run / name).unlink()
    capsys.readouterr()
    assert main(["train", "--data-dir", str(data), *TINY, "--out", str(run)]) == 2
    one_line(capsys, "checkpoint.npz", f"--resume {run}")


def test_compare_refuses_an_earlier_compare_but_joins_a_train_run(tmp_path, data, capsys):
    pytest.importorskip("torch")
    run = tmp_path / "run"
    args = ["--data-dir", str(data), *TINY, "--out", str(run)]
    assert main(["train", *args]) == 0
    assert main(["compare", *args]) == 0                       # beside the train run
    before = (run / "compare.json").read_bytes()
    capsys.readouterr()
    assert main(["compare", *args]) == 2
    one_line(capsys, "compare.json", "--overwrite")
    assert (run / "compare.json").read_bytes() == before


def dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_a_live_lock_refuses_and_a_stale_one_is_taken_over(tmp_path, data, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / ".bareprop.lock").write_text(lock_line())   # this test process: alive
    assert main(["train", "--data-dir", str(data), *TINY, "--out", str(run)]) == 2
    one_line(capsys, "in use by another bareprop run", f"pid {os.getpid()}")
    assert not (run / "model.npz").exists()

    (run / ".bareprop.lock").write_text(f"{dead_pid()}\n")    # a killed run's lock
    assert main(["train", "--data-dir", str(data), *TINY, "--out", str(run)]) == 2
    one_line(capsys, "already holds a run", ".bareprop.lock", "--overwrite")
    assert main(["train", "--data-dir", str(data), *TINY, "--out", str(run),
                 "--overwrite"]) == 0
    assert (run / "model.npz").is_file() and not os.path.lexists(run / ".bareprop.lock")


@pytest.mark.parametrize("make", [os.mkdir, os.mkfifo], ids=["directory", "fifo"])
def test_a_lock_that_is_no_file_is_one_line(tmp_path, data, capsys, make):
    run = tmp_path / "run"
    run.mkdir()
    make(run / ".bareprop.lock")
    assert main(["train", "--data-dir", str(data), *TINY, "--out", str(run), "--overwrite"]) == 2
    one_line(capsys, ".bareprop.lock", "not a bareprop lock file")


def test_resume_takes_over_the_lock_of_the_killed_run(tmp_path, data):
    run = tmp_path / "run"
    assert main(["train", "--data-dir", str(data), *TINY, "--out", str(run)]) == 0
    (run / ".bareprop.lock").write_text(f"{dead_pid()}\n")
    assert main(["train", "--resume", str(run), "--data-dir", str(data), "--no-verify",
                 "--quiet"]) == 0
    assert not os.path.lexists(run / ".bareprop.lock")


def test_two_runs_started_at_once_into_one_folder(tmp_path, data):
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "bareprop", "train", "--data-dir", str(data), *TINY,
           "--out", str(run)]
    procs = [subprocess.Popen(cmd + ["--seed", str(s)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for s in (1, 2)]
    results = [(p.wait(timeout=300), p.stderr.read()) for p in procs]
    codes = sorted(code for code, _ in results)
    assert codes == [0, 2], results
    err = next(e for code, e in results if code == 2).strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    assert "in use by another bareprop run" in err or "already holds a run" in err, err
    winner = next(i for i, (code, _) in enumerate(results) if code == 0)
    seed = load_checkpoint(run / "checkpoint.npz")["config"]["seed"]
    assert seed == winner + 1                 # the folder holds the winner's run, whole
    assert not os.path.lexists(run / ".bareprop.lock")


def test_default_folders_started_in_the_same_second_do_not_collide(tmp_path, data, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(time, "strftime", lambda *a: "20260101-000000")   # the same second
    for seed in ("1", "2"):
        assert main(["train", "--data-dir", str(data), *TINY, "--seed", seed]) == 0
    runs = sorted((tmp_path / "runs").iterdir())
    assert len(runs) == 2 and all(r.name.startswith("20260101-000000") for r in runs)
    seeds = {load_checkpoint(r / "checkpoint.npz")["config"]["seed"] for r in runs}
    assert seeds == {1, 2}



def test_download_never_writes_through_a_planted_symlink(tmp_path):
    from bareprop.data.download import download
    from httpfake import serve
    from synthetic import fake_spec

    spec, blobs = fake_spec(tmp_path)
    dest, outside = tmp_path / "dl", tmp_path / "outside"
    dest.mkdir()
    targets = {}
    outside.mkdir()
    for name in blobs:                       # the old, predictable partial-file names
        target = outside / name
        target.write_bytes(b"precious")
        (dest / f"{name}.part-{os.getpid()}").symlink_to(target)
        targets[target] = b"precious"
    with serve({f"/good/{n}": ("good", b) for n, b in blobs.items()}) as (url, _):
        download(spec, dest, mirrors=[f"{url}/good/"], progress=False)
    untouched(outside, targets)
    for name, blob in blobs.items():
        assert (dest / name).read_bytes() == blob and not (dest / name).is_symlink()
