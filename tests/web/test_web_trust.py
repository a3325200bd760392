"""The web app's trust boundary through Starlette's TestClient: a run folder cannot put
markup or script into the app (reports are built and sandboxed by the server), a form
or another origin cannot start a job, and the login cookie is this server's alone."""
from __future__ import annotations

import http.cookiejar
import os
import shutil
import urllib.request

import pytest

pytest.importorskip("starlette")
pytest.importorskip("httpx")

from starlette.testclient import TestClient  # noqa: E402

from bareprop.web.app import create_app  # noqa: E402
from bareprop.web.security import BodyError, json_body, origin_ok  # noqa: E402
from webruns import AUTH, BASE, TOKEN, client, env, make_runs  # noqa: E402,F401

SANDBOX = ("sandbox; default-src 'none'; img-src data:; style-src 'unsafe-inline'; "
           "form-action 'none'")
PLANTED = (b"<!doctype html><p>PLANTED</p><form id=f method=post action=/api/train "
           b"enctype=text/plain><input name='{\"epochs\": 1, \"x\": \"' value='\"}'></form>"
           b"<script>document.getElementById('f').submit()</script>")


def no_jobs(client) -> bool:
    jobs = client.get("/api/jobs", headers=AUTH).json()
    return jobs["running"] == [] and jobs["queued"] == []


def newer_than_metrics(folder):
    stamp = (folder / "metrics.json").stat().st_mtime + 100
    os.utime(folder / "report.html", (stamp, stamp))


# -- reports: only what the server built, sandboxed ----------------------------------------
def test_a_planted_report_is_rebuilt_not_served(client, env):
    runs = env[1]
    folder = runs / "planted"
    shutil.copytree(runs / "mlp", folder)
    (folder / "report.html").write_bytes(PLANTED)
    newer_than_metrics(folder)                          # what the old check trusted
    r = client.get("/api/runs/planted/report", headers=AUTH)
    assert r.status_code == 200 and "PLANTED" not in r.text and "bareprop report" in r.text
    assert r.headers["content-security-policy"] == SANDBOX
    assert "<script" not in r.text.lower() and "<form" not in r.text.lower()
    built = (folder / "report.html").read_bytes()
    assert built == r.content                            # served as written, by the server
    # served again as built; planted again after the build: rebuilt again
    assert client.get("/api/runs/planted/report", headers=AUTH).content == built
    (folder / "report.html").write_bytes(PLANTED)
    newer_than_metrics(folder)
    again = client.get("/api/runs/planted/report", headers=AUTH)
    assert "PLANTED" not in again.text and again.headers["content-security-policy"] == SANDBOX
    assert no_jobs(client)


def test_a_report_without_metrics_is_never_served(client, env):
    folder = env[1] / "bare"
    folder.mkdir()
    (folder / "report.html").write_bytes(PLANTED)
    r = client.get("/api/runs/bare/report", headers=AUTH)
    assert r.status_code == 409 and "PLANTED" not in r.text
    assert "metrics.json" in r.json()["error"]


def test_a_hard_linked_report_is_not_served_nor_written_through(client, env, tmp_path):
    runs = env[1]
    folder = runs / "hardlinked"
    shutil.copytree(runs / "mlp", folder)
    outside = runs.parent / "outside-secret.html"       # the same file system: a hard link
    outside.write_bytes(b"<p>SECRET of another folder</p>")
    os.link(outside, folder / "report.html")
    newer_than_metrics(folder)
    r = client.get("/api/runs/hardlinked/report", headers=AUTH)
    assert r.status_code == 200 and "SECRET" not in r.text and "bareprop report" in r.text
    assert outside.read_bytes() == b"<p>SECRET of another folder</p>"    # untouched
    assert (folder / "report.html").stat().st_nlink == 1


def test_the_report_holds_no_script(client, env):
    r = client.get("/api/runs/cnn/report", headers=AUTH)
    assert r.status_code == 200 and r.headers["content-security-policy"] == SANDBOX
    page = r.text.lower()
    assert "<script" not in page and " on" + "load=" not in page and "javascript:" not in page


# -- JSON bodies: no form can send them, no smuggled keys, no deep nesting -----------------
@pytest.mark.parametrize("ctype", ["text/plain", "application/x-www-form-urlencoded",
                                   "multipart/form-data; boundary=x", None])
def test_train_refuses_bodies_a_form_can_send(client, ctype):
    headers = dict(AUTH, **({"Content-Type": ctype} if ctype else {}))
    r = client.post("/api/train", content=b'{"epochs": 1, "hidden": [8]}', headers=headers)
    assert r.status_code == 415 and "application/json" in r.json()["error"]
    assert no_jobs(client)


def test_duplicate_keys_are_refused(client):
    body = b'{"epochs": 1, "hidden": [8], "epochs": 2}'
    r = client.post("/api/train", content=body,
                    headers={**AUTH, "Content-Type": "application/json"})
    assert r.status_code == 400 and "'epochs' is given twice" in r.json()["error"]
    assert no_jobs(client)


@pytest.mark.parametrize("body", [b"[" * 60_000, b'{"a":' * 10_000 + b"1" + b"}" * 10_000,
                                  b'{"hidden": [[[[[8]]]]]}'])
def test_deeply_nested_json_is_400(client, body):
    r = client.post("/api/train", content=body,
                    headers={**AUTH, "Content-Type": "application/json; charset=utf-8"})
    assert r.status_code == 400, r.text
    assert "nests deeper" in r.json()["error"] or "not valid JSON" in r.json()["error"]


def test_stop_and_resume_take_no_form_body(client):
    for action in ("stop", "resume"):
        r = client.post(f"/api/runs/mlp/{action}", content=b"x=1",
                        headers={**AUTH, "Content-Type": "text/plain"})
        assert r.status_code == 415, action
    # the page's {} (and a bare POST) still reach the endpoint's own answer
    r = client.post("/api/runs/mlp/stop", json={}, headers=AUTH)
    assert r.status_code == 409


def test_json_body_checks():
    assert json_body("Application/JSON; charset=utf-8", b'{"a": [1, {"b": 2}]}') == \
        {"a": [1, {"b": 2}]}
    for ctype, body, status in [("text/plain", b"{}", 415), ("application/json", b"{", 400),
                                ("application/json", b'{"a": 1, "a": 1}', 400),
                                ("application/json", b"\xff", 400),
                                ("application/json", b"[[[[[]]]]]", 400)]:
        with pytest.raises(BodyError) as info:
            json_body(ctype, body)
        assert info.value.status == status, (ctype, body)


# -- Origin: the request's own Host, whatever the bind address -----------------------------
def test_origin_must_match_the_host_when_bound_everywhere(env):
    _, runs, data = env
    app = create_app(runs, TOKEN, host="0.0.0.0", port=8765, data_dir=str(data), verify=False)
    bad = {"lr": -1}                 # a 400 once past the guard: nothing can start
    with TestClient(app, base_url=BASE) as c:
        for origin, host in [("http://127.0.0.1:1", "127.0.0.1:8765"),     # another port
                             ("http://evil.example:8765", "box.lan:8765"),
                             ("http://127.0.0.1:8765", "box.lan:8765"),
                             ("null", "127.0.0.1:8765")]:
            r = c.post("/api/train", json=bad, headers={**AUTH, "Origin": origin, "Host": host})
            assert r.status_code == 403 and "cross-origin" in r.json()["error"], (origin, host)
        for origin, host in [("http://box.lan:8765", "box.lan:8765"),
                             ("http://127.0.0.1:8765", "127.0.0.1:8765")]:
            r = c.post("/api/train", json=bad, headers={**AUTH, "Origin": origin, "Host": host})
            assert r.status_code == 400 and r.json()["field"] == "lr", (origin, host)
        # any name, but this server's port
        r = c.get("/api/runs", headers={**AUTH, "Host": "box.lan:9999"})
        assert r.status_code == 403
        assert no_jobs(c)


def test_origin_ok():
    assert origin_ok("http://127.0.0.1:8765", "127.0.0.1:8765")
    assert origin_ok("HTTP://LocalHost:8765", "localhost:8765")
    assert origin_ok(None, "127.0.0.1:8765")                        # curl
    assert not origin_ok("http://127.0.0.1:8766", "127.0.0.1:8765")
    assert not origin_ok("http://127.0.0.1:8765.evil", "127.0.0.1:8765")
    assert not origin_ok("http://127.0.0.1:8765", None)
    assert not origin_ok(None, "127.0.0.1:8765", fetch_site="same-site")   # another port
    assert origin_ok("http://127.0.0.1:8765", "127.0.0.1:8765", fetch_site="same-origin")


# -- the cookie: this server's own ----------------------------------------------------------
def login(client):
    r = client.get(f"/?token={TOKEN}", follow_redirects=False)
    assert r.status_code == 303
    return r.headers["location"]


def test_the_cookie_is_named_and_scoped_per_server(env):
    _, runs, data = env
    jar = None
    pages = {}
    for port in (8765, 8766):        # two servers, one browser's cookie jar
        app = create_app(runs, f"token-{port}", port=port, data_dir=str(data), verify=False)
        c = TestClient(app, base_url=f"http://127.0.0.1:{port}")
        if jar is not None:
            c.cookies = jar
        r = c.get(f"/?token=token-{port}", follow_redirects=False)
        cookie = r.headers["set-cookie"]
        assert cookie.startswith(f"bareprop_{port}_") and "token-" in cookie
        assert f"Path={r.headers['location'].rstrip('/')}" in cookie
        jar = c.cookies
        pages[port] = (c, r.headers["location"])
    for port, (c, page) in pages.items():          # the first is not locked out
        c.cookies = jar
        assert c.get(page + "api/runs").status_code == 200, port
        assert c.get(page).status_code == 200 and c.get("/api/runs").status_code == 403
    # what a browser's jar sends to another service on this machine: nothing of either
    cj = http.cookiejar.CookieJar()
    for cookie in jar.jar:
        cj.set_cookie(cookie)
    for url in ("http://127.0.0.1:9999/", "http://127.0.0.1:9999/api/runs",
                "http://127.0.0.1:9999/s/"):
        request = urllib.request.Request(url)
        cj.add_cookie_header(request)
        assert "token-" not in (request.get_header("Cookie") or ""), url

