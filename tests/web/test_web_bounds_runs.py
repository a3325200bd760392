"""What the web app says about a run and does with it, under load and after crashes:
report builds at once on a fresh server all succeed (matplotlib's text rendering is not
thread-safe, so builds take turns); a lock file is believed only while the process it
names is the one that wrote it; a run this server did not start (an orphan of a killed
server) is shown running and Stop stops it; one Stop cannot reach says where it runs."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request

import pytest

pytest.importorskip("starlette")
pytest.importorskip("httpx")

from starlette.testclient import TestClient  # noqa: E402

from bareprop.web.app import create_app  # noqa: E402
from bareprop.web.jobs import Job, JobManager, _child_env  # noqa: E402
from webpage import Server  # noqa: E402
from webruns import make_runs  # noqa: E402

BASE = "http://127.0.0.1:8766"
TOKEN = "bounds-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    root = tmp_path_factory.mktemp("web-bounds")
    runs, data = make_runs(root)
    return root, runs, data


def test_report_builds_at_once_on_a_fresh_server_all_succeed(env, tmp_path):
    _, runs, data = env
    fresh = tmp_path / "runs"
    names = [f"copy{i}" for i in range(4)]  # four fail as surely as the six first seen
    for name in names:                       # runs without a report yet
        shutil.copytree(runs / "mlp", fresh / name,
                        ignore=shutil.ignore_patterns("report.html", ".*"))
    server = Server(fresh, data)
    answers = {}

    def get(name):
        request = urllib.request.Request(f"{server.base}/api/runs/{name}/report",
                                         headers={"Authorization": f"Bearer {server.token}"})
        try:
            with urllib.request.urlopen(request, timeout=300) as r:
                answers[name] = (r.status, r.read()[:200])
        except urllib.error.HTTPError as e:
            answers[name] = (e.code, e.read()[:300])
    try:
        threads = [threading.Thread(target=get, args=(n,)) for n in names]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        server.close()
    assert {n: a[0] for n, a in answers.items()} == {n: 200 for n in names}, answers


def copy_run(env, root, name, *, finished=True):
    """A copy of the module's trained MLP run as root/name (without metrics.json and
    model.npz unless ``finished``: a run that stopped part way)."""
    _, runs, _ = env
    skip = () if finished else ("metrics.json", "model.npz")
    shutil.copytree(runs / "mlp", root / name,
                    ignore=shutil.ignore_patterns("report.html", ".*", *skip))
    return root / name


@pytest.fixture
def client(env, tmp_path):
    root = tmp_path / "runs"
    root.mkdir()
    app = create_app(root, TOKEN, port=8766, data_dir=str(env[2]), verify=False)
    with TestClient(app, base_url=BASE) as c:
        c.root = root
        yield c


def test_a_lock_naming_an_unrelated_live_process_is_not_a_running_run(env, client):
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        for i, text in enumerate([f"{sleeper.pid}\n",         # an older bareprop's lock
                                  json.dumps({"pid": sleeper.pid, "start": "0:1",
                                              "token": "x"})]):   # the pid, reused since
            folder = copy_run(env, client.root, f"ghost{i}", finished=False)
            (folder / ".bareprop.lock").write_text(text)
            run = client.get(f"/api/runs/ghost{i}", headers=AUTH).json()
            assert run["state"] != "running", (text, run)
            assert client.post(f"/api/runs/ghost{i}/stop", headers=AUTH).status_code == 409
    finally:
        sleeper.kill()
        sleeper.wait()


def test_an_orphaned_job_is_shown_running_and_stop_stops_it(env, client):
    """A job whose server was killed (kill -9) trains on in its own session; a new server
    shows it running, and its Stop interrupts it as it would its own job."""
    _, _, data = env
    folder = client.root / "orphan"
    folder.mkdir()
    jobs = JobManager(client.root, data_dir=str(data), verify=False)
    try:
        argv = jobs.command(Job("orphan", folder, ["--hidden", "8", "--epochs", "5000"]))
    finally:
        jobs.close()
    with open(folder / "job.log", "ab") as log:        # as the killed server started it
        orphan = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log,
                                  stderr=subprocess.STDOUT, start_new_session=True,
                                  env=_child_env())
    try:
        deadline = time.time() + 60
        while time.time() < deadline and b'"running"' not in _read(folder / "events.jsonl"):
            time.sleep(0.05)
        run = client.get("/api/runs/orphan", headers=AUTH).json()
        assert run["state"] == "running" and run["error"] is None, run
        r = client.post("/api/runs/orphan/stop", headers=AUTH)
        assert r.status_code == 200 and r.json()["state"] in ("stopped", "stopping"), r.json()
        assert orphan.wait(60) == 130                   # ended as on Ctrl-C: resumable
        run = client.get("/api/runs/orphan", headers=AUTH).json()
        assert run["state"] == "stopped" and (folder / "checkpoint.npz").is_file(), run
    finally:
        if orphan.poll() is None:
            os.killpg(orphan.pid, signal.SIGKILL)
            orphan.wait()


def test_a_run_stop_cannot_reach_says_where_it_runs(env, client):
    """A live holder that is not ``bareprop train`` of that folder (here: this test
    process, which wrote the lock) is running, and the page says where; Stop says so too."""
    from bareprop.runs.lock import lock_line

    folder = copy_run(env, client.root, "elsewhere", finished=False)
    (folder / ".bareprop.lock").write_text(lock_line())
    run = client.get("/api/runs/elsewhere", headers=AUTH).json()
    pid = os.getpid()
    assert run["state"] == "running", run
    assert f"process {pid}" in run["error"] and "cannot stop" in run["error"], run
    r = client.post("/api/runs/elsewhere/stop", headers=AUTH)
    assert r.status_code == 409 and f"kill -INT {pid}" in r.json()["error"], r.json()
    assert (folder / ".bareprop.lock").exists()                 # nothing was touched


def _read(path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:
        return b""
