"""``bareprop sweep`` end to end on a small synthetic dataset: trials as run folders, the
test set used once, the best trial reproduced bit for bit, a seeded sweep drawn the same
twice, faults recorded and the sweep going on, Ctrl-C and --resume, bad input."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from bareprop.runs.jsonfiles import read_run_json

from synthetic import write_dataset

pytest.importorskip("optuna")


def cli(*args, env=None, timeout=300):
    return subprocess.run([sys.executable, "-m", "bareprop", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def one_line(r, code, *fragments):
    assert r.returncode == code, (r.returncode, r.stdout, r.stderr)
    err = r.stderr.strip()
    assert "Traceback" not in r.stderr and len(err.splitlines()) == 1, err
    for f in fragments:
        assert f in err, err


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_dataset(tmp_path_factory.mktemp("sweepdata") / "mnist", n_train=800)


def base(data, out, *extra):
    return ["sweep", "--data-dir", data, "--no-verify", "--epochs", "2", "--batch-size", "64",
            "--hidden", "32", "--out", out, *extra]


def record(out):
    return read_run_json(out / "sweep.json")


def test_a_sweep_its_trials_and_its_best(tmp_path, data):
    out = tmp_path / "s"
    args = base(data, out, "--space", "lr=log(1e-3,1e-1)", "--space",
                "dropout=uniform(0,0.3)", "--trials", "2", "--prune", "none", "--jobs", "1")
    r = cli(*args)
    assert r.returncode == 0, r.stderr
    rec = record(out)

    # the same seed with --jobs 1 draws and trains the same trials in the same order
    again = [str(tmp_path / "s2") if a == out else a for a in args]
    assert cli(*again).returncode == 0
    same = record(tmp_path / "s2")["trials"]
    assert [(t["params"], t["val_accuracy"], t["value"]) for t in same] == \
        [(t["params"], t["val_accuracy"], t["value"]) for t in rec["trials"]]
    assert rec["state"] == "finished" and len(rec["trials"]) == 2
    assert rec["trial_epochs"] == 4
    best = rec["best"]
    values = [t["value"] for t in rec["trials"]]
    assert best["value"] == max(values)
    assert f"test accuracy of the best trial (the test set's one use): " \
           f"{best['test_accuracy']:.4f}" in r.stdout
    for t in rec["trials"]:
        assert t["state"] == "complete" and len(t["val_accuracy"]) == 2
        folder = out / t["folder"]
        metrics = read_run_json(folder / "metrics.json")      # a whole run folder
        assert (folder / "model.npz").is_file() and (folder / "checkpoint.npz").is_file()
        assert metrics["val_accuracy"] == t["value"]
        # the test set is evaluated for the best trial alone
        if t["number"] == best["number"]:
            assert metrics["test_accuracy"] == best["test_accuracy"]
        else:
            assert metrics["test_accuracy"] is None
    assert (out / "sweep.png").is_file() and (out / "optuna.journal").is_file()

    # a trial that is not the best reports its validation accuracy, and no test figure
    other = next(t for t in rec["trials"] if t["number"] != best["number"])
    assert cli("report", out / other["folder"]).returncode == 0
    page = (out / other["folder"] / "report.html").read_text()
    assert f"validation accuracy {other['value']:.4f} (a sweep" in page
    assert "Confusion matrix" not in page

    # the reproduction command retrains the best trial to the same validation accuracy
    env_words, words = [], best["command"].split()
    while "=" in words[0] and not words[0].startswith("-"):
        env_words.append(words.pop(0))
    assert words[:2] == ["bareprop", "train"]
    again = cli(*words[1:], "--out", tmp_path / "again", "--quiet",
                env=dict(w.split("=", 1) for w in env_words))
    assert again.returncode == 0, again.stderr
    history = read_run_json(tmp_path / "again" / "metrics.json")["history"]
    assert history[-1]["val_accuracy"] == best["value"]


def test_a_diverging_trial_is_recorded_and_the_sweep_goes_on(tmp_path, data):
    out = tmp_path / "s"
    r = cli(*base(data, out, "--optimizer", "sgd", "--scale", "raw", "--space",
                  "lr=choice(1e6)", "--trials", "2", "--prune", "none"))
    assert r.returncode == 1, r.stderr          # every trial failed: no best
    rec = record(out)
    assert [t["state"] for t in rec["trials"]] == ["failed", "failed"]
    assert all("training diverged" in t["reason"] for t in rec["trials"])
    assert rec["best"] is None and "the test set was not used" in r.stdout


def wait_for(out, ready, seconds=240):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(0.05)
        try:
            trials = json.loads((out / "sweep.json").read_text())["trials"]
        except (OSError, ValueError):
            continue
        if ready(trials):
            return
    raise AssertionError("the sweep never got there")


def test_interrupted_and_resumed(tmp_path, data):
    out = tmp_path / "s"
    args = base(data, out, "--space", "lr=log(1e-3,1e-1)", "--trials", "3", "--epochs", "25",
                "--prune", "none")
    proc = subprocess.Popen([sys.executable, "-m", "bareprop", *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # wait until the first trial has ended and the second has trained an epoch
    wait_for(out, lambda trials: len(trials) > 1 and trials[0]["state"] == "complete"
             and trials[1]["val_accuracy"])
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "continue with: bareprop sweep --resume" in err and "Traceback" not in err
    rec = record(out)
    assert rec["state"] == "interrupted"
    assert rec["trials"][1]["state"] == "running"
    first = (out / "trials/0000/model.npz").read_bytes()

    # a second sweep into the folder is refused; --resume continues it
    one_line(cli(*args), 2, "already holds a sweep; continue it with --resume")
    r = cli("sweep", "--resume", "--out", out, "--data-dir", data)
    assert r.returncode == 0, r.stderr
    rec = record(out)
    assert rec["state"] == "finished" and len(rec["trials"]) == 3
    assert [t["state"] for t in rec["trials"]] == ["complete"] * 3
    assert all(len(t["val_accuracy"]) == 25 for t in rec["trials"])
    assert rec["trials"][1]["resumed_after"] >= 1        # on from its checkpoint
    # the resumed sampler draws on rather than repeating the first trials' values
    assert len({t["params"]["lr"] for t in rec["trials"]}) == 3
    assert "resumed_after" not in rec["trials"][2]
    assert (out / "trials/0000/model.npz").read_bytes() == first      # not run again
    ended_now = [w[1] for w in map(str.split, r.stdout.splitlines())
                 if len(w) > 1 and w[0] == "trial" and w[1].isdigit()]
    assert ended_now == ["0001", "0002"]                 # trial 0 is not run again

    # --resume keeps the saved settings; a larger --trials extends a finished sweep
    one_line(cli("sweep", "--resume", "--out", out, "--lr", "0.1"), 2,
             "--resume continues a sweep with its saved settings; drop --lr")
    r = cli("sweep", "--resume", "--out", out, "--data-dir", data, "--trials", "4",
            "--epochs", "2")
    one_line(r, 2, "drop --epochs")
    one_line(cli("sweep", "--resume", "--out", out, "--trials", "2"), 2,
             "--trials 2 is fewer than the 3 trials")
    r = cli("sweep", "--resume", "--out", out, "--data-dir", data, "--trials", "4")
    assert r.returncode == 0, r.stderr
    assert [t["number"] for t in record(out)["trials"]] == [0, 1, 2, 3]


@pytest.mark.parametrize("args,fragment", [
    (["--space", "lr=log(1e-4,1e-1)", "--trials", "0"], "--trials: must be at least 1"),
    (["--space", "dropout=uniform(0,1.5)"], "must be between 0 and 1, got 1.5"),
    (["--space", "lr=log(-1,1)"], "must be a positive number"),
    (["--space", "colour=choice(red)"], "unknown --space flag 'colour'"),
    (["--space", "optimizer=choice()"], "choice() needs one or more values"),
    (["--space", "lr=log(1e-4,1e-1)", "--val-fraction", "0"], "--val-fraction must be above 0"),
    (["--space", "lr=log(1e-4,1e-1)", "--engine", "spark"], "--engine must be one of"),
    (["--space", "lr=log(1e-4,1e-1)", "--ray-address", "1.2.3.4:6379"], "add --engine ray"),
    ([], "at least one --space"),
])
def test_bad_input_is_one_line_before_any_trial(tmp_path, data, args, fragment):
    out = tmp_path / "s"
    r = cli(*base(data, out, *args))
    one_line(r, 2, fragment)
    assert not out.exists()                         # nothing claimed, nothing started


def test_a_folder_holding_something_else_is_refused(tmp_path, data):
    run = tmp_path / "run"
    run.mkdir()
    (run / "notes.txt").write_text("mine")
    one_line(cli(*base(data, run, "--space", "lr=log(1e-3,1e-1)")), 2,
             "already holds other files (notes.txt)")
    assert (run / "notes.txt").read_text() == "mine"
    one_line(cli("sweep", "--resume", "--out", run), 2, "holds no sweep (sweep.json) to resume")
    one_line(cli("sweep", "--space", "lr=log(1e-3,1e-1)"), 2, "a sweep needs --out DIR")


def test_killed_outright_then_resumed_at_once(tmp_path, data):
    """kill -9 of the sweep: its trial process notices at its epoch's end and stops as
    interrupted (not failed); a --resume started at once waits for it, then runs it on.
    Also: --jobs above the core count is capped with a warning."""
    out = tmp_path / "s"
    args = base(data, out, "--space", "lr=log(1e-3,1e-1)", "--trials", "2", "--epochs", "25",
                "--prune", "none", "--jobs", "64")
    proc = subprocess.Popen([sys.executable, "-m", "bareprop", *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for(out, lambda trials: trials and trials[0]["val_accuracy"])
    proc.kill()
    _, err = proc.communicate(timeout=60)
    assert "--jobs 64 is more than this machine's" in err
    cores = len(os.sched_getaffinity(0))
    r = cli("sweep", "--resume", "--out", out, "--data-dir", data)
    assert r.returncode == 0, r.stderr
    rec = record(out)
    assert rec["jobs"] == cores
    assert [t["state"] for t in rec["trials"]] == ["complete", "complete"], rec["trials"]
    assert rec["trials"][0]["resumed_after"] >= 1
    assert all(len(t["val_accuracy"]) == 25 for t in rec["trials"])
    # the study is gone: resuming would run trials over these; refused
    (out / "optuna.journal").unlink()
    one_line(cli("sweep", "--resume", "--out", out), 2, "holds trials but no optuna.journal")
    one_line(cli("sweep", "--resume", "--out", out, "--trials", "1"), 2,
             "holds trials but no optuna.journal")


def test_a_missing_extra_names_it(tmp_path, data):
    shim = tmp_path / "shim" / "optuna"
    shim.mkdir(parents=True)
    (shim / "__init__.py").write_text("raise ImportError('no optuna here')\n")
    r = cli(*base(data, tmp_path / "s", "--space", "lr=log(1e-3,1e-1)"),
            env={"PYTHONPATH": str(tmp_path / "shim")})
    one_line(r, 2, "pip install 'bareprop[sweep]'")
