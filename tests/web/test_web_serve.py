"""``bareprop serve`` as a user starts it: a real subprocess and raw HTTP requests (no
client library normalising the path): the printed line, the guards, traversal,
upload limits, a crashing job, and a shutdown that leaves a running job resumable.
"""
from __future__ import annotations

import http.client
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")

from webruns import digit_png, make_runs  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
LINE = re.compile(r"^http://127\.0\.0\.1:(\d+)/\?token=([A-Za-z0-9_-]{20,})$")


def serve(runs, data, stderr=subprocess.PIPE) -> dict:
    """`bareprop serve RUNS` in a subprocess, once it answers: its port, token and process."""
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    p = subprocess.Popen([sys.executable, "-m", "bareprop", "serve", str(runs), "--data-dir",
                          str(data), "--no-verify"], stdout=subprocess.PIPE,
                         stderr=stderr, text=True, env=env)
    line = p.stdout.readline().strip()
    m = LINE.match(line)
    assert m, f"not the address line: {line!r} {p.stderr.read() if p.poll() else ''}"
    port, token = int(m.group(1)), m.group(2)
    deadline = time.time() + 20
    while time.time() < deadline:                 # uvicorn binds just after the print
        try:
            request(port, "GET", "/api/runs", token=token)
            break
        except OSError:
            time.sleep(0.05)
    return {"port": port, "token": token, "runs": runs, "data": data, "proc": p}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    runs, data = make_runs(tmp_path_factory.mktemp("serve"))
    srv = serve(runs, data)
    yield srv
    p = srv["proc"]
    if p.poll() is None:
        p.send_signal(signal.SIGINT)
        p.wait(30)


def request(port, method, path, body=None, token=None, headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    h = {"Host": f"127.0.0.1:{port}"}
    if token:
        h["Authorization"] = f"Bearer {token}"
    h.update(headers or {})
    conn.request(method, path, body=body, headers=h)
    r = conn.getresponse()
    data = r.read()
    conn.close()
    return r.status, data


def test_printed_line_and_token(server):
    port, token = server["port"], server["token"]
    assert request(port, "GET", "/api/runs")[0] == 403
    assert request(port, "GET", "/api/runs", token="x" * len(token))[0] == 403
    status, data = request(port, "GET", "/api/runs", token=token)
    assert status == 200 and {"mlp", "cnn"} <= {r["id"] for r in json.loads(data)["runs"]}
    assert request(port, "GET", "/")[0] == 403


def test_wrong_host_is_refused(server):
    port, token = server["port"], server["token"]
    for host in ("rebind.example.com", f"rebind.example.com:{port}"):
        assert request(port, "GET", "/api/runs", token=token, headers={"Host": host})[0] == 403


@pytest.mark.parametrize("path", ["/api/runs/../runs", "/api/runs/%2e%2e/model",
                                  "/api/runs/..%2f..%2fetc/model", "/api/runs/%2E%2E",
                                  "/static/../../../../etc/passwd",
                                  "/static/%2e%2e/%2e%2e/app.py"])
def test_traversal(server, path):
    status, data = request(server["port"], "GET", path, token=server["token"])
    assert status in (400, 404) or (status == 200 and b'"runs"' in data), (path, status)
    assert b"root:" not in data and b"import " not in data


def test_symlink_escape(server, tmp_path):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "model.npz").write_bytes(b"not yours")
    (server["runs"] / "sneaky").symlink_to(outside)
    status, _ = request(server["port"], "GET", "/api/runs/sneaky/model", token=server["token"])
    assert status == 404


def test_oversized_upload_is_413(server):
    big = b"\x89PNG" + b"\0" * (3 << 20)
    status, data = request(server["port"], "POST", "/api/runs/mlp/predict", body=big,
                           token=server["token"], headers={"Content-Type": "image/png"})
    assert status == 413 and b"MiB" in data
    status, data = request(server["port"], "POST", "/api/runs/mlp/predict", body=digit_png(),
                           token=server["token"], headers={"Content-Type": "image/png"})
    assert status == 200 and "probabilities" in json.loads(data)


def test_cross_origin_post_is_refused(server):
    port = server["port"]
    status, _ = request(port, "POST", "/api/train", body=b'{"epochs": 1}', token=server["token"],
                        headers={"Origin": "http://evil.example",
                                 "Content-Type": "application/json"})
    assert status == 403


def tiny_parts(n: int = 40_000) -> bytes:
    """A 2 MB multipart form of ``n`` tiny fields (the standard library's MIME parser took
    seconds of the event loop over it)."""
    part = b'--x\r\nContent-Disposition: form-data; name="a"\r\n\r\n1\r\n'
    return part * n + b"--x--\r\n"


def test_a_multipart_bomb_does_not_stall_the_server(server):
    """Four forms of 40,000 parts at once: each is refused (400), and the server answers
    other requests meanwhile (a generous bound: the point is not minutes, not speed)."""
    port, token = server["port"], server["token"]
    body, answers = tiny_parts(), []

    def bomb():
        answers.append(request(port, "POST", "/api/runs/mlp/predict", body=body, token=token,
                               headers={"Content-Type": "multipart/form-data; boundary=x"}))
    threads = [threading.Thread(target=bomb) for _ in range(4)]
    for t in threads:
        t.start()
    worst = 0.0
    while any(t.is_alive() for t in threads) or worst == 0.0:
        start = time.monotonic()
        assert request(port, "GET", "/api/jobs", token=token)[0] == 200
        worst = max(worst, time.monotonic() - start)
    for t in threads:
        t.join()
    assert [status for status, _ in answers] == [400] * 4
    assert all(b"more than 16 parts" in data for _, data in answers)
    assert worst < 3.0, f"a request waited {worst:.1f} s behind the multipart parsing"


def test_a_client_that_leaves_mid_request_leaves_no_traceback(server, tmp_path):
    """An upload cut short, a JSON body cut short and an event stream closed early: the
    server logs nothing for them (it printed a traceback each) and goes on serving."""
    import socket

    log = tmp_path / "stderr.txt"
    with open(log, "w") as stderr:
        srv = serve(server["runs"], server["data"], stderr=stderr)
    port, token = srv["port"], srv["token"]
    head = f"Host: 127.0.0.1:{port}\r\nAuthorization: Bearer {token}\r\n"
    try:
        for raw in (f"POST /api/runs/mlp/predict HTTP/1.1\r\n{head}Content-Type: image/png\r\n"
                    "Content-Length: 100000\r\n\r\nabc",
                    f"POST /api/train HTTP/1.1\r\n{head}Content-Type: application/json\r\n"
                    "Content-Length: 1000\r\n\r\n{",
                    f"POST /api/runs/mlp/predict HTTP/1.1\r\n{head}Content-Type: "
                    "multipart/form-data; boundary=x\r\nContent-Length: 100000\r\n\r\n--x\r\n",
                    f"GET /api/runs/mlp/events HTTP/1.1\r\n{head}\r\n"):
            sock = socket.create_connection(("127.0.0.1", port))
            sock.sendall(raw.encode())
            time.sleep(0.3)
            sock.close()
        time.sleep(0.5)
        assert request(port, "GET", "/api/runs", token=token)[0] == 200
    finally:
        srv["proc"].send_signal(signal.SIGINT)
        srv["proc"].wait(30)
    text = log.read_text()
    assert "Traceback" not in text and "Exception" not in text, text


def wait(port, token, run_id, states, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        status, data = request(port, "GET", f"/api/runs/{run_id}", token=token)
        if status == 200 and json.loads(data)["state"] in states:
            return json.loads(data)
        time.sleep(0.1)
    raise AssertionError(f"{run_id} never reached {states}")


def test_crashing_job_then_server_still_serves(server):
    port, token = server["port"], server["token"]
    status, data = request(port, "POST", "/api/train", token=token,
                           body=json.dumps({"epochs": 200, "hidden": [8]}).encode(),
                           headers={"Content-Type": "application/json"})
    assert status == 202
    run_id = json.loads(data)["id"]
    folder = server["runs"] / run_id
    deadline = time.time() + 60
    while time.time() < deadline and not (folder / "events.jsonl").exists():
        time.sleep(0.02)
    from bareprop.runs.lock import read_lock

    pid = read_lock(folder / ".bareprop.lock").pid         # the job's own process
    os.kill(pid, signal.SIGKILL)                           # the job crashes hard
    d = wait(port, token, run_id, ("failed",))
    assert "killed by SIGKILL" in d["error"]
    assert request(port, "GET", "/api/runs", token=token)[0] == 200
    assert server["proc"].poll() is None


def test_shutdown_leaves_a_running_job_resumable(server):
    port, token = server["port"], server["token"]
    status, data = request(port, "POST", "/api/train", token=token,
                           body=json.dumps({"epochs": 300, "hidden": [8]}).encode(),
                           headers={"Content-Type": "application/json"})
    run_id = json.loads(data)["id"]
    folder = server["runs"] / run_id
    deadline = time.time() + 60
    while time.time() < deadline and not (folder / "events.jsonl").exists():
        time.sleep(0.02)
    p = server["proc"]
    p.send_signal(signal.SIGINT)                           # Ctrl-C at the server
    assert p.wait(30) in (0, 130)                         # 130: as any Ctrl-C
    assert "Traceback" not in p.stderr.read()
    lines = (folder / "events.jsonl").read_text().splitlines()
    assert json.loads(lines[-1])["state"] == "stopped"
    assert (folder / "checkpoint.npz").is_file() and not (folder / ".bareprop.lock").exists()
    assert not (folder / "model.npz").exists()


def test_bad_serve_arguments_are_one_line(tmp_path):
    import socket

    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    (tmp_path / "afile").write_text("x")
    cases = [(["--port", str(taken.getsockname()[1])], "cannot listen on"),
             (["--port", "70000"], "--port must be between"),
             ([str(tmp_path / "afile")], "is a file, not a folder"),
             (["--max-jobs", "0"], "must be at least 1"),
             (["--host", ""], "--host is empty"),
             (["--data-dir", str(tmp_path / "missing")], "no such folder")]
    try:
        for args, words in cases:
            r = subprocess.run([sys.executable, "-m", "bareprop", "serve", *args],
                               capture_output=True, text=True, env=env, timeout=60,
                               cwd=tmp_path)
            assert r.returncode == 2 and words in r.stderr, (args, r.stderr)
            assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
            assert r.stdout == ""
    finally:
        taken.close()


def test_without_the_web_extra_serve_names_it_and_nothing_imports_it(tmp_path):
    fake = tmp_path / "shadow" / "starlette"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('not installed')\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path / "shadow"),
                                                       str(ROOT / "src")]))
    r = subprocess.run([sys.executable, "-m", "bareprop", "serve", str(tmp_path / "runs")],
                       capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 2 and "pip install 'bareprop[web]'" in r.stderr
    assert "Traceback" not in r.stderr
    r = subprocess.run([sys.executable, "-c", "import sys, bareprop, bareprop.cli.main as m; "
                        "m.build_parser(); print([k for k in ('starlette', 'uvicorn') "
                        "if k in sys.modules])"], capture_output=True, text=True, env=env)
    assert r.stdout.strip() == "[]", r.stderr


def test_the_listening_socket_sends_small_responses_at_once():
    """TCP_NODELAY on the listener (inherited by each connection): without it a predict's
    small JSON body waited ~40 ms for the client's delayed ACK."""
    import socket

    from bareprop.cli.serve_cmd import bind

    sock = bind("127.0.0.1", 0)
    try:
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
    finally:
        sock.close()
