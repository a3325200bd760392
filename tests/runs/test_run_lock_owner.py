"""The lock says whose it is, and a run folder is left clean after a crash: a lock naming
a live but unrelated process (a pid the system reused, a hand-made file) is stale and
taken over; a full disk while claiming the folder is one line and leaves no lock; the
temporaries a killed write left are removed by the next run to hold the folder, and
only those bareprop made for files only the holder writes."""
import json
import os
import subprocess
import sys

import pytest

from bareprop.cli.main import main

from oneline import one_line
from synthetic import write_dataset

TINY = ["--no-verify", "--quiet", "--hidden", "8", "--epochs", "1"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_dataset(tmp_path_factory.mktemp("d") / "mnist")


@pytest.fixture
def sleeper():
    p = subprocess.Popen(["sleep", "120"])
    yield p
    p.kill()
    p.wait()


@pytest.mark.parametrize("kind", ["pid alone", "pid reused"])
def test_a_lock_naming_a_live_unrelated_process_is_taken_over(tmp_path, data, capsys,
                                                               sleeper, kind):
    from bareprop.runs.lock import live_holder

    run = tmp_path / "run"
    assert main(["train", "--data-dir", str(data), *TINY, "--out", str(run)]) == 0
    text = f"{sleeper.pid}\n" if kind == "pid alone" else \
        json.dumps({"pid": sleeper.pid, "start": "another boot:1", "token": "0" * 16})
    (run / ".bareprop.lock").write_text(text)
    assert live_holder(run) is None                 # not a run training there
    assert main(["train", "--resume", str(run), "--data-dir", str(data), "--no-verify",
                 "--quiet"]) == 0, capsys.readouterr().err
    assert not os.path.lexists(run / ".bareprop.lock")


def test_the_lock_names_its_process_its_start_and_a_token(tmp_path):
    from bareprop.runs.lock import claim_run_folder, live_holder
    from bareprop.runs.process import process_start

    run, lock = claim_run_folder(str(tmp_path / "run"))
    with lock:
        held = json.loads((run / ".bareprop.lock").read_text())
        assert held["pid"] == os.getpid() and held["start"] == process_start(os.getpid())
        assert len(held["token"]) == 16 and live_holder(run).pid == os.getpid()
        # a later holder's lock (taken over after ours went stale) is not removed by us
        (run / ".bareprop.lock").write_text(json.dumps({**held, "token": "f" * 16}))
    assert os.path.lexists(run / ".bareprop.lock")


FULL = """
import resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)       # a write past the limit fails (EFBIG)
resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))   # no byte fits: a full disk to writes
from bareprop.cli.main import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX resource limits")
def test_a_full_disk_while_claiming_the_folder_is_one_line_and_leaves_no_lock(tmp_path, data):
    run = tmp_path / "run"
    p = subprocess.run([sys.executable, "-c", FULL, "train", "--data-dir", str(data), *TINY,
                        "--out", str(run)], capture_output=True, text=True, timeout=300)
    err = p.stderr.strip()
    assert p.returncode == 2 and "Traceback" not in err and len(err.splitlines()) == 1, err
    assert err.startswith("bareprop: error: cannot write to output folder") and \
        "free some space" in err, err
    assert list(run.iterdir()) == []                # no lock, empty or not


def test_a_killed_writes_temporaries_are_removed_at_the_next_start(tmp_path, data):
    run, outside = tmp_path / "run", tmp_path / "outside"
    outside.mkdir()
    (outside / "victim").write_bytes(b"precious")
    assert main(["train", "--data-dir", str(data), "--no-verify", "--quiet", "--hidden", "8",
                 "--epochs", "2", "--out", str(run)]) == 0
    stale = [".checkpoint.npz.k3x_9q2a.tmp", ".model.npz.abcdefgh.tmp",
             ".metrics.json.0000aaaa.tmp", ".loss.png.zz_zz_zz.tmp"]
    for name in stale:                               # a kill -9 between write and rename
        (run / name).write_bytes(b"\0" * 4096)
    kept = [".report.html.abcdefgh.tmp",             # bareprop report writes it, lock or not
            ".checkpoint.npz.tmp", "checkpoint.npz.abcdefgh.tmp", ".notes.abcdefgh.tmp",
            ".checkpoint.npz.ABCDEFGH.tmp", ".checkpoint.npz.abcdefghi.tmp"]
    for name in kept:
        (run / name).write_bytes(b"keep")
    (run / ".inspect.json.abcdefgh.tmp").symlink_to(outside / "victim")   # not ours
    assert main(["train", "--data-dir", str(data), *TINY, "--out", str(run),
                 "--overwrite"]) == 0
    left = {p.name for p in run.iterdir()}
    assert not left & set(stale), left
    assert set(kept) | {".inspect.json.abcdefgh.tmp"} <= left
    assert (outside / "victim").read_bytes() == b"precious"


def test_a_live_runs_temporaries_are_never_touched(tmp_path, data, capsys):
    from bareprop.runs.lock import lock_line

    run = tmp_path / "run"
    run.mkdir()
    (run / ".bareprop.lock").write_text(lock_line())      # a live run holds the folder
    (run / ".checkpoint.npz.abcdefgh.tmp").write_bytes(b"being written")
    assert main(["train", "--data-dir", str(data), *TINY, "--out", str(run),
                 "--overwrite"]) == 2
    one_line(capsys, "in use by another bareprop run", f"pid {os.getpid()}")
    assert (run / ".checkpoint.npz.abcdefgh.tmp").read_bytes() == b"being written"
