"""Sweep folders in the web app's API: a sweep under the runs root is one entry of
/api/runs' "sweeps" (not a run), /api/sweeps/{id} gives its trials and their curves, and
each trial opens as a run by the id SWEEP/trials/NNNN (details, report, model, events).
A damaged sweep.json is listed with its error; a trial id that tries to leave the root
(``..``, a link at any level) is refused. The sweeps here are written by hand (a real
one is driven in test_web_browser_sweeps.py) with trials copied from tiny trained runs.
"""
from __future__ import annotations

import json
import math
import shutil

import pytest

pytest.importorskip("starlette")
pytest.importorskip("httpx")

from bareprop.runs.layout import LOCK  # noqa: E402
from bareprop.runs.lock import lock_line  # noqa: E402
from webruns import AUTH, client, digit_png, env  # noqa: E402,F401

SPACE = ["lr=log(0.0001,0.1)", "hidden=choice(16,32)"]


def trial_row(number: int, state: str = "complete", accs=(0.8, 0.9), reason=None):
    return {"number": number, "folder": f"trials/{number:04d}", "params": {"lr": 0.001 * (number + 1), "hidden": "16"},
            "state": state, "reason": reason, "val_accuracy": list(accs),
            "value": accs[-1] if state == "complete" else None, "seconds": 1.5}


def record(trials, state="finished", best=None, wanted=4) -> dict:
    return {"format": "bareprop-sweep", "version": 1, "state": state, "engine": "optuna",
            "prune": "median", "seed": 0, "trials_wanted": wanted,
            "settings": {"epochs": 2, "dataset": "mnist", "val_fraction": 0.1}, "space": SPACE,
            "trials": trials, "best": best, "trial_epochs": 0, "seconds": 12.5}


def write_sweep(runs, name: str, rec: dict, trials_from=None):
    """runs/name: sweep.json, an empty journal, and a trial folder per trial (a copy of
    the run ``trials_from``, made a trial: validation figures only)."""
    folder = runs / name
    (folder / "trials").mkdir(parents=True, exist_ok=True)
    (folder / "optuna.journal").write_text("")
    (folder / "sweep.json").write_text(json.dumps(rec))
    for t in rec["trials"] if trials_from else ():
        dest = folder / t["folder"]
        shutil.copytree(runs / trials_from, dest, ignore=shutil.ignore_patterns("report.html", ".*"))
        m = json.loads((dest / "metrics.json").read_text())
        m.update(test_accuracy=None, test_loss=None, val_accuracy=t["val_accuracy"][-1],
                 sweep_trial={"number": t["number"], "state": t["state"]})
        (dest / "metrics.json").write_text(json.dumps(m))
    return folder


@pytest.fixture(scope="module")
def sweep(env):
    """runs/mysweep: four trials (the best, one pruned, one failed, a plain one) copied
    from the mlp run; and runs/0001, a run named like a trial (from the cnn run)."""
    _, runs, _ = env
    trials = [trial_row(0, accs=(0.85, 0.95)), trial_row(1, accs=(0.7, 0.8)),
              trial_row(2, "pruned", (0.3,), "pruned after epoch 1 <b>by</b> the median rule"),
              trial_row(3, "failed", (0.1,), "diverged (loss nan)")]
    best = {"number": 0, "value": 0.95, "test_accuracy": 0.93, "folder": "trials/0000",
            "params": {"lr": 0.001}, "command": "bareprop train --lr 0.001"}
    folder = write_sweep(runs, "mysweep", record(trials, best=best), trials_from="mlp")
    shutil.copytree(runs / "cnn", runs / "0001")
    return folder


def listing(client) -> dict:
    r = client.get("/api/runs", headers=AUTH)
    assert r.status_code == 200, r.text
    return r.json()


def test_a_sweep_is_one_entry_beside_the_runs(client, sweep):
    got = listing(client)
    run_ids = {r["id"] for r in got["runs"]}
    assert "mysweep" not in run_ids and not any("/" in i for i in run_ids)
    assert {"mlp", "cnn", "0001"} <= run_ids
    s = {x["id"]: x for x in got["sweeps"]}["mysweep"]
    assert s["type"] == "sweep" and s["state"] == "finished" and s["error"] is None
    assert (s["engine"], s["prune"], s["dataset"]) == ("optuna", "median", "mnist")
    assert (s["trials_done"], s["trials_wanted"], s["trials_pruned"], s["trials_failed"]) == (4, 4, 1, 1)
    assert s["best_val_accuracy"] == 0.95 and s["test_accuracy"] == 0.93 and s["best_trial"] == 0
    assert s["best_id"] == "mysweep/trials/0000" and s["trial_epochs"] == 6
    assert s["duration_s"] == 12.5 and s["started"].endswith("+00:00")


def test_sweep_details_give_every_trial_and_its_curve(client, sweep):
    d = client.get("/api/sweeps/mysweep", headers=AUTH).json()
    assert d["space"] == SPACE and d["settings"]["epochs"] == 2 and not d["trials_cut"]
    assert d["best"] == {"number": 0, "value": 0.95, "test_accuracy": 0.93,
                         "command": "bareprop train --lr 0.001", "id": "mysweep/trials/0000"}
    rows = {t["number"]: t for t in d["trials"]}
    assert [t["id"] for t in d["trials"]] == [f"mysweep/trials/{n:04d}" for n in range(4)]
    assert rows[0]["best"] and not any(rows[n]["best"] for n in (1, 2, 3))
    assert rows[0]["val_accuracy"] == [0.85, 0.95] and rows[0]["epochs"] == 2
    assert rows[2]["state"] == "pruned" and rows[2]["reason"].startswith("pruned after epoch 1 <b>")
    assert rows[3]["state"] == "failed" and rows[3]["value"] is None
    assert rows[1]["params"] == {"lr": 0.002, "hidden": "16"}
    assert client.get("/api/sweeps/mlp", headers=AUTH).status_code == 404      # a run
    assert client.get("/api/sweeps/nope", headers=AUTH).status_code == 404


def test_a_sweep_has_its_report(client, sweep):
    r = client.get("/api/sweeps/mysweep/report", headers=AUTH)
    assert r.status_code == 200 and r.headers["content-security-policy"].startswith("sandbox;")
    assert "bareprop report" in r.text and "&lt;b&gt;by&lt;/b&gt;" in r.text
    assert client.get("/api/sweeps/mlp/report", headers=AUTH).status_code == 404


def test_a_trial_opens_as_a_run(client, sweep):
    d = client.get("/api/runs/mysweep/trials/0001", headers=AUTH).json()
    assert d["id"] == "mysweep/trials/0001" and d["state"] == "finished" and d["kind"] == "mlp"
    assert d["test_accuracy"] is None
    assert d["history"]["epoch"] == [1] and d["has_model"]
    r = client.get("/api/runs/mysweep/trials/0001/report", headers=AUTH)
    assert r.status_code == 200 and r.headers["content-security-policy"].startswith("sandbox;")
    # the trial and the run named like it are two runs (each cache keeps them apart)
    trial = client.get("/api/runs/mysweep/trials/0001/model", headers=AUTH).json()
    run = client.get("/api/runs/0001/model", headers=AUTH).json()
    assert (trial["kind"], trial["id"], run["kind"]) == ("mlp", "mysweep/trials/0001", "cnn")
    assert client.get("/api/runs/0001", headers=AUTH).json()["kind"] == "cnn"
    p = client.post("/api/runs/mysweep/trials/0001/predict", content=digit_png(),
                    headers={**AUTH, "Content-Type": "image/png"})
    assert p.status_code == 200 and len(p.json()["probabilities"]) == 10
    with client.stream("GET", "/api/runs/mysweep/trials/0001/events", headers=AUTH) as s:
        text = "".join(s.iter_text())
    assert "event: epoch" in text and text.rstrip().endswith('"test_accuracy": null}')
    # a trial in training is running; Stop is not how it ends (its sweep ends it)
    (sweep / "trials" / "0002" / LOCK).write_text(lock_line())
    try:
        d = client.get("/api/runs/mysweep/trials/0002", headers=AUTH).json()
        assert d["state"] == "running" and d["error"] is None
    finally:
        (sweep / "trials" / "0002" / LOCK).unlink()


def test_a_sweep_and_its_trials_are_not_runs_to_start_or_stop(client, sweep):
    assert client.get("/api/runs/mysweep", headers=AUTH).status_code == 404
    for path in ("/api/runs/mysweep/stop", "/api/runs/mysweep/resume",
                 "/api/runs/mysweep/trials/0001/stop", "/api/runs/mysweep/trials/0001/resume"):
        assert client.post(path, headers=AUTH).status_code in (404, 405), path


@pytest.mark.parametrize("bad", ["mysweep/trials/..", "mysweep/trials/%2e%2e",
                                 "mysweep/trials/..%2f..%2fmlp", "mysweep/trials/.hidden",
                                 "mysweep/trials/0001%2f..", "..%2fmysweep/trials/0001",
                                 "mlp/trials/0001", "mysweep/trials/0001%00"])
def test_trial_ids_that_escape_are_refused(client, sweep, bad):
    for suffix in ("", "/model", "/report", "/events"):
        r = client.get(f"/api/runs/{bad}{suffix}", headers=AUTH)
        assert r.status_code in (400, 404), (bad, suffix, r.status_code)
        assert "\"history\"" not in r.text and "<html" not in r.text


def test_links_are_not_followed_at_any_level(client, env, sweep, tmp_path):
    _, runs, _ = env
    (runs / "alias").symlink_to(sweep)                           # the sweep folder a link
    (sweep / "trials" / "0009").symlink_to(runs / "mlp")        # a trial folder a link
    linked = runs / "linked"                                     # the trials folder a link
    linked.mkdir()
    (linked / "sweep.json").write_text(json.dumps(record([trial_row(0)])))
    (linked / "trials").symlink_to(sweep / "trials")
    for path in ("alias/trials/0000", "mysweep/trials/0009", "linked/trials/0000"):
        assert client.get(f"/api/runs/{path}", headers=AUTH).status_code == 404, path
        assert client.get(f"/api/runs/{path}/model", headers=AUTH).status_code == 404, path
    assert client.get("/api/sweeps/alias", headers=AUTH).status_code == 404
    got = listing(client)
    assert "alias" not in {s["id"] for s in got["sweeps"]}
    # a trial whose folder cannot be opened is listed without an id: no dead link
    assert [t["id"] for t in client.get("/api/sweeps/linked", headers=AUTH).json()["trials"]] == [None]
    # a sweep.json that is a link is not read
    planted = runs / "planted"
    planted.mkdir()
    (planted / "sweep.json").symlink_to(sweep / "sweep.json")
    s = {x["id"]: x for x in listing(client)["sweeps"]}["planted"]
    assert s["state"] == "incomplete" and "not a regular file" in s["error"] and s["trials_done"] == 0
    for name in ("alias", "linked", "planted"):
        (runs / name).unlink() if (runs / name).is_symlink() else shutil.rmtree(runs / name)
    (sweep / "trials" / "0009").unlink()


@pytest.mark.parametrize("text,says", [
    ("{not json", "not valid JSON"),
    (json.dumps({"format": "bareprop-sweep"}), "settings is missing"),
    (json.dumps({**record([]), "trials": [{"number": 0}]}), "trials[0].folder is missing"),
    ("[]", "not a bareprop sweep record"),
])
def test_a_damaged_sweep_json_is_listed_with_its_error(client, env, text, says):
    _, runs, _ = env
    folder = runs / "damaged"
    folder.mkdir()
    (folder / "sweep.json").write_text(text)
    try:
        s = {x["id"]: x for x in listing(client)["sweeps"]}["damaged"]
        assert s["state"] == "incomplete" and says in s["error"], s["error"]
        assert s["trials_done"] == 0 and s["best_val_accuracy"] is None
        d = client.get("/api/sweeps/damaged", headers=AUTH)
        assert d.status_code == 200 and d.json()["trials"] == [] and says in d.json()["error"]
    finally:
        shutil.rmtree(folder)


def test_numbers_that_are_not_json_become_null(client, env):
    """NaN and an int too large for a float are valid to Python's json, not to JSON."""
    _, runs, _ = env
    rows = [{**trial_row(0, accs=(0.5, math.nan)), "value": 0.5}, trial_row(1)]
    folder = write_sweep(runs, "odd", record(rows))
    try:
        s = {x["id"]: x for x in listing(client)["sweeps"]}["odd"]
        assert s["error"] is None
        d = client.get("/api/sweeps/odd", headers=AUTH).json()
        assert d["trials"][0]["val_accuracy"] == [0.5, None]
        assert d["trials"][0]["id"] is None         # no trial folders were written
    finally:
        shutil.rmtree(folder)
    # a value or a time that is no finite number: the record is refused whole (the
    # report would draw it), and listed with the field at fault
    for bad in ({"value": 10 ** 400}, {"seconds": math.inf}):
        folder = write_sweep(runs, "odd", record([{**trial_row(0), **bad}]))
        try:
            s = {x["id"]: x for x in listing(client)["sweeps"]}["odd"]
            assert "trials[0]." in s["error"] and "is not finite" in s["error"], s["error"]
        finally:
            shutil.rmtree(folder)


def test_a_running_sweep_shows_as_running_and_follows_its_record(client, env):
    """Running while the process its lock names lives (here: this test's own process);
    each rewrite of sweep.json is seen at the next poll; left "running" by a process
    that is gone, it is interrupted and says how to resume."""
    _, runs, _ = env
    rows = [trial_row(0), trial_row(1, "running", (0.6,))]
    folder = write_sweep(runs, "live", record(rows, state="running"))
    (folder / LOCK).write_text(lock_line())
    try:
        s = {x["id"]: x for x in listing(client)["sweeps"]}["live"]
        assert s["state"] == "running" and s["error"] is None
        assert (s["trials_done"], s["trials_running"], s["trial_epochs"]) == (1, 1, 3)
        assert s["best_val_accuracy"] == 0.9 and s["test_accuracy"] is None
        rows[1]["val_accuracy"].append(0.65)                      # the next epoch
        rows.append(trial_row(2, "running", ()))
        (folder / "sweep.json").write_text(json.dumps(record(rows, state="running")))
        s = {x["id"]: x for x in listing(client)["sweeps"]}["live"]
        assert (s["trials_running"], s["trial_epochs"]) == (2, 4)
        d = client.get("/api/sweeps/live", headers=AUTH).json()
        assert d["trials"][1]["val_accuracy"] == [0.6, 0.65] and d["best"] is None
        (folder / LOCK).unlink()                                  # its process is gone
        s = {x["id"]: x for x in listing(client)["sweeps"]}["live"]
        assert s["state"] == "interrupted" and "--resume" in s["error"]
    finally:
        shutil.rmtree(folder)
