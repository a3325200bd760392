"""events.jsonl and job.log read by the web app in bounded memory, never through a link:
a long events file is summarised (the latest attempt's epochs, batches evenly thinned),
not held; a line that never ends does not grow the live stream; the job's last error is
not read through a link planted at job.log."""
from __future__ import annotations

import json
import os
import shutil
import threading
import tracemalloc

import pytest

pytest.importorskip("starlette")
pytest.importorskip("httpx")
from starlette.testclient import TestClient  # noqa: E402

from bareprop.web.app import create_app  # noqa: E402
from bareprop.web.jobs import Job, JobManager, last_error  # noqa: E402
from bareprop.web.runs import RunView  # noqa: E402
from webruns import make_runs  # noqa: E402

TOKEN = "events-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
BASE = "http://127.0.0.1:8768"


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    return make_runs(tmp_path_factory.mktemp("events"))


def unfinished(env, root, name):
    """The module's MLP run copied to root/name without its results: a run that stopped."""
    runs, _ = env
    shutil.copytree(runs / "mlp", root / name, ignore=shutil.ignore_patterns(
        "metrics.json", "model.npz", "report.html", ".*"))
    return root / name


def batch(step, loss=1.0):
    return {"event": "batch", "epoch": 1 + step // 1000, "batch": step % 1000 + 1,
            "batches": 1000, "step": step, "loss": loss, "lr": 0.1,
            "examples_per_s": 5000.0, "eta_s": 1.0, "t": 1e9 + step}


def test_a_long_events_file_is_summarised_not_held(env, tmp_path):
    folder = unfinished(env, tmp_path, "long")
    lines = [{"event": "state", "state": "running", "epochs": 130, "t": 1e9}]
    lines += [batch(s) for s in range(1, 50_001)]
    lines += [{"event": "epoch", "epoch": e, "epochs": 130, "train_loss": 1.0 / e,
               "t": 1e9 + e} for e in range(1, 121)]
    lines += [{"event": "state", "state": "stopped", "t": 2e9}]
    # resumed from epoch 91: its epochs and steps come again, and win
    lines += [batch(s, loss=0.5) for s in range(50_000 - 5, 50_010)]
    lines += [{"event": "epoch", "epoch": e, "epochs": 130, "train_loss": 0.5,
               "t": 3e9} for e in (91, 92)]
    with open(folder / "events.jsonl", "w") as f:
        for e in lines:
            f.write(json.dumps(e) + "\n")
        f.write("x" * (1 << 20) + "\n")                 # garbage, one long line
        f.write('{"event": "batch", "step": 1e999}\n{"event": "epoch", "epoch": NaN}\n')
    assert os.path.getsize(folder / "events.jsonl") > 8 << 20
    tracemalloc.start()
    try:
        view = RunView(folder)
        held, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert held < 12 << 20, f"a RunView holds {held >> 20} MiB"
    assert peak < 40 << 20, f"reading it took {peak >> 20} MiB"
    d = view.details()
    assert d["state"] == "stopped" and d["epochs_done"] == 92
    assert d["history"]["epoch"] == list(range(1, 93))
    steps, losses = d["batches"]["step"], d["batches"]["loss"]
    assert 1000 <= len(steps) <= 2000 and steps == sorted(steps)
    assert steps[-1] == 50_009 and losses[-1] == 0.5 and steps[0] < 100
    assert d["started"] is not None and d["duration_s"] == 3e9 - 1e9


def test_a_line_without_end_does_not_grow_the_live_stream(env, tmp_path):
    runs, data = env
    root = tmp_path / "runs"
    root.mkdir()
    folder = unfinished(env, root, "endless")
    with open(folder / "events.jsonl", "w") as f:
        f.write(json.dumps({"event": "state", "state": "running", "t": 1e9}) + "\n")
        f.write('{"event": "batch", "pad": "' + "y" * (24 << 20))   # and no newline
    jobs = JobManager(root, data_dir=str(data), verify=False)
    job = Job("endless", folder, [], state="queued")    # keeps the stream open
    jobs.jobs["endless"] = job
    app = create_app(root, TOKEN, port=8768, data_dir=str(data), verify=False, jobs=jobs)
    got = []
    tracemalloc.start()
    try:
        with TestClient(app, base_url=BASE) as client, \
                client.stream("GET", "/api/runs/endless/events", headers=AUTH) as s:
            tracemalloc.reset_peak()
            base = tracemalloc.get_traced_memory()[0]
            appended = False
            kind = None
            for line in s.iter_lines():
                if line.startswith("event: "):
                    kind = line[7:]
                    continue
                if not line.startswith("data: "):
                    continue
                got.append((kind, json.loads(line[6:])))
                if not appended:     # the line ends at last, and a good one follows
                    with open(folder / "events.jsonl", "a") as f:
                        f.write('"}\n' + json.dumps(batch(7)) + "\n")
                    appended = True
                if kind == "batch":
                    threading.Timer(0, lambda: setattr(job, "state", "stopped")).start()
            peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
        jobs.close()
    assert peak < 8 << 20, f"the stream held {peak >> 20} MiB"
    assert [e.get("step") for k, e in got if k == "batch"] == [7], got
    assert got[-1][0] == "state" and got[-1][1]["state"] == "stopped"


def test_the_jobs_last_error_is_not_read_through_a_link(tmp_path):
    outside = tmp_path / "secret.txt"
    outside.write_text("bareprop: error: a line from a file outside the run\n")
    run = tmp_path / "run"
    run.mkdir()
    (run / "job.log").symlink_to(outside)
    assert last_error(run / "job.log") is None
    (run / "job.log").unlink()
    (run / "job.log").write_text("Traceback ...\nbareprop: error: the real one\nmore\n")
    assert last_error(run / "job.log") == "bareprop: error: the real one"
