"""The JSON API of ``bareprop serve`` through Starlette's TestClient: every endpoint,
the token, Host and Origin guards, run-id validation, uploads and their limits.
Training jobs are real ``bareprop train`` subprocesses on a 600-example synthetic set.
"""
from __future__ import annotations

import json
import os
import re
import struct
import time
import zlib

import numpy as np
import pytest

pytest.importorskip("starlette")
pytest.importorskip("httpx")

from starlette.testclient import TestClient  # noqa: E402

from bareprop.cli.predict_cmd import predict as cli_predict  # noqa: E402
from bareprop.inference import Predictor  # noqa: E402
from bareprop.web.app import MAX_UPLOAD, create_app  # noqa: E402
from webruns import AUTH, BASE, TOKEN, client, digit_png, env, make_runs  # noqa: E402,F401



def wait_state(client, run_id, states, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        r = client.get(f"/api/runs/{run_id}", headers=AUTH)
        if r.status_code == 200 and r.json()["state"] in states:
            return r.json()
        time.sleep(0.1)
    raise AssertionError(f"{run_id} never reached {states}: {r.json()}")


# -- the guard ---------------------------------------------------------------------------
def test_no_or_wrong_token_is_403(client):
    fresh = TestClient(client.app, base_url=BASE)
    for path in ("/api/runs", "/api/runs/mlp", "/api/presets", "/api/jobs", "/"):
        assert fresh.get(path).status_code == 403, path
    r = fresh.get("/api/runs", headers={"Authorization": "Bearer wrong"})
    assert r.status_code == 403 and "token" in r.json()["error"]
    assert fresh.post("/api/train", json={"epochs": 1}).status_code == 403
    assert fresh.get("/api/runs", headers={"X-Bareprop-Token": TOKEN}).status_code == 200


def test_tokened_url_sets_the_cookie(client):
    fresh = TestClient(client.app, base_url=BASE, follow_redirects=False)
    r = fresh.get(f"/?token={TOKEN}")
    page = r.headers["location"]                   # this server's own path: /s/<id>/
    assert r.status_code == 303 and re.fullmatch(r"/s/[0-9a-f]{16}/", page)
    cookie = r.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie
    assert fresh.get(page + "api/runs").status_code == 200          # the cookie now
    assert fresh.get(page).status_code == 200
    assert fresh.get(page.rstrip("/")).headers["location"] == page
    assert TestClient(client.app, base_url=BASE).get("/?token=nope").status_code == 403


def test_wrong_host_is_refused(client):
    for host in ("evil.example:8765", "127.0.0.1:9999", "attacker.com"):
        r = client.get("/api/runs", headers={**AUTH, "Host": host})
        assert r.status_code == 403 and "Host" in r.json()["error"], host
    assert client.get("/api/runs", headers={**AUTH, "Host": "localhost:8765"}).status_code \
        == 200


def test_cross_origin_post_is_refused(client):
    for origin in ("http://evil.example", "http://127.0.0.1:1", "null"):
        r = client.post("/api/train", json={"epochs": 1}, headers={**AUTH, "Origin": origin})
        assert r.status_code == 403 and "cross-origin" in r.json()["error"]
    r = client.post("/api/runs/mlp/predict", content=digit_png(),
                    headers={**AUTH, "Origin": BASE, "Content-Type": "image/png"})
    assert r.status_code == 200


# -- run ids -----------------------------------------------------------------------------
@pytest.mark.parametrize("bad", ["..", "%2e%2e", "%2E%2E", ".hidden", "..%2f..%2fetc",
                                 "a%00b", "%2e%2e%2fdata"])
def test_traversal_in_a_run_id_is_refused(client, bad):
    for suffix in ("", "/model", "/report"):
        r = client.get(f"/api/runs/{bad}{suffix}", headers=AUTH)
        assert r.status_code in (400, 404), (bad, suffix, r.status_code)
        assert "root:" not in r.text and "\"mnist\"" not in r.text


def test_symlinks_are_not_followed(client, env, tmp_path):
    root, runs, _ = env
    (runs / "escape").symlink_to(runs / "mlp")               # a run folder that is a link
    assert client.get("/api/runs/escape/model", headers=AUTH).status_code == 404
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("secret")
    linked = runs / "linked"
    linked.mkdir()
    (linked / "model.npz").symlink_to(runs / "mlp" / "model.npz")   # a file that is a link
    (linked / "report.html").symlink_to(outside / "secret.txt")
    assert client.get("/api/runs/linked/model", headers=AUTH).status_code == 409
    assert "secret" not in client.get("/api/runs/linked/report", headers=AUTH).text
    ids = [r["id"] for r in client.get("/api/runs", headers=AUTH).json()["runs"]]
    assert "escape" not in ids


# -- reading runs ------------------------------------------------------------------------
def test_runs_list_and_details(client):
    runs = {r["id"]: r for r in client.get("/api/runs", headers=AUTH).json()["runs"]}
    assert runs["mlp"]["kind"] == "mlp" and runs["cnn"]["kind"] == "cnn"
    for r in (runs["mlp"], runs["cnn"]):
        assert r["state"] == "finished" and r["has_model"] and r["epochs_done"] == 1
        assert 0 <= r["test_accuracy"] <= 1 and r["dataset"] == "mnist"
        assert r["started"].endswith("+00:00") and r["duration_s"] > 0
    assert runs["mlp"]["arch"] == "MLP 784-16-10"
    d = client.get("/api/runs/mlp", headers=AUTH).json()
    assert d["config"]["hidden"] == [16]
    assert d["history"]["epoch"] == [1] and len(d["history"]["train_loss"]) == 1
    assert d["batches"]["step"] == list(range(1, 6)) and len(d["batches"]["loss"]) == 5


def test_presets(client):
    p = client.get("/api/presets", headers=AUTH).json()
    kinds = {x["name"]: x["kind"] for x in p["presets"]}
    assert kinds["default"] == "mlp" and kinds["cnn"] == "cnn"
    assert kinds["lstm"] == "rnn" and kinds["vit"] == "transformer"
    default = next(x for x in p["presets"] if x["name"] == "default")
    assert default["settings"]["lr"] == 3e-3 and default["settings"]["optimizer"] == "adam"
    assert "adam" in p["optimizers"] and "onecycle" in p["schedules"]


def test_model_views(client):
    m = client.get("/api/runs/mlp/model", headers=AUTH).json()
    assert m["kind"] == "mlp" and m["classes"] == [str(i) for i in range(10)]
    assert m["first_layer"]["type"] == "dense" and m["first_layer"]["shape"] == [16, 28, 28]
    assert np.array(m["first_layer"]["values"]).shape == (16, 28, 28)
    assert [x["type"] for x in m["layers"]] == ["Flatten", "Linear", "ReLU", "Linear"]
    c = client.get("/api/runs/cnn/model", headers=AUTH).json()
    assert c["kind"] == "cnn" and c["input_shape"] == [1, 28, 28]
    assert c["first_layer"]["type"] == "conv" and c["first_layer"]["shape"] == [4, 1, 3, 3]
    assert c["layers"][0]["output_shape"] == [4, 28, 28]


def test_report_is_generated_on_demand(client, env):
    r = client.get("/api/runs/mlp/report", headers=AUTH)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert "bareprop report" in r.text and (env[1] / "mlp" / "report.html").is_file()
    assert "default-src 'none'" in r.headers["content-security-policy"]
    assert r.headers["content-security-policy"].startswith("sandbox;")


# -- predict -----------------------------------------------------------------------------
@pytest.mark.parametrize("run", ["mlp", "cnn"])
@pytest.mark.parametrize("kind", ["one", "zero"])
def test_predict_matches_the_cli(client, env, tmp_path, run, kind):
    png = digit_png(kind)
    path = tmp_path / "d.png"
    path.write_bytes(png)
    want = cli_predict(Predictor.from_file(env[1] / run), [path], top=10)[0]
    r = client.post(f"/api/runs/{run}/predict", files={"image": ("d.png", png, "image/png")},
                    headers=AUTH)
    assert r.status_code == 200, r.text
    got = r.json()
    assert got["label"] == want["class"] and got["class"] == int(want["class"])
    probs = {t["class"]: t["probability"] for t in want["top"]}
    assert np.allclose(got["probabilities"], [probs[str(i)] for i in range(10)], atol=1e-6)
    x = np.array(got["input"])
    assert x.shape == (28, 28) and 0 <= x.min() and x.max() == 1.0      # ink is 1
    raw = client.post(f"/api/runs/{run}/predict", content=png,
                      headers={**AUTH, "Content-Type": "image/png"}).json()
    assert raw["probabilities"] == got["probabilities"]
    types = [a["type"] for a in got["activations"]]
    assert types[-1] == "dense" and ("conv" in types) == (run == "cnn")
    for a in got["activations"]:
        assert np.array(a["values"]).shape[0] <= (4 if a["type"] == "conv" else 256)
        assert a["min"] <= a["max"]


@pytest.mark.parametrize("run,method", [("cnn", "gradcam"), ("mlp", "saliency"),
                                        ("cnn", "occlusion")])
def test_predict_explains_as_the_library(client, env, run, method):
    """?explain=METHOD adds the method's map of the predicted class over the 28x28 input:
    bp.explain on the image as predict prepared it (raw floats, and u8 with maps=u8)."""
    from bareprop.explain.methods import check, picture
    from bareprop.explain.methods import run as attribute

    model = client.get(f"/api/runs/{run}/model", headers=AUTH).json()
    assert ("gradcam" in model["explain_methods"]) == (run == "cnn")
    png = digit_png("one")
    r = client.post(f"/api/runs/{run}/predict?explain={method}", content=png,
                    headers={**AUTH, "Content-Type": "image/png"})
    assert r.status_code == 200, r.text
    got = r.json()
    why = got["explanation"]
    assert why["method"] == method and why["target"] == got["class"] and why["shown"] == [28, 28]
    predictor = Predictor.from_file(env[1] / run)
    x = predictor.prepare((np.array(got["input"]) * 255).round().astype(np.uint8)[None])
    want = picture(attribute(method, predictor.model, x, np.array([got["class"]]),
                             **check(method, predictor.model)))[0]
    np.testing.assert_allclose(why["values"], want, rtol=1e-3, atol=1e-3 * np.abs(want).max())
    compact = client.post(f"/api/runs/{run}/predict?maps=u8&explain={method}", content=png,
                          headers={**AUTH, "Content-Type": "image/png"}).json()["explanation"]
    assert "u8" in compact and compact["min"] == why["min"] and compact["max"] == why["max"]
    plain = client.post(f"/api/runs/{run}/predict", content=png,
                        headers={**AUTH, "Content-Type": "image/png"}).json()
    assert plain["explanation"] is None


def test_predict_refuses_an_unknown_or_impossible_explanation(client):
    r = client.post("/api/runs/mlp/predict?explain=lime", content=digit_png(),
                    headers={**AUTH, "Content-Type": "image/png"})
    assert r.status_code == 400 and r.json()["field"] == "explain"
    assert "unknown explanation 'lime'" in r.json()["error"]
    r = client.post("/api/runs/mlp/predict?explain=gradcam", content=digit_png(),
                    headers={**AUTH, "Content-Type": "image/png"})
    assert r.status_code == 409 and "no layer with an (N, C, h, w) output" in r.json()["error"]


def test_predict_refuses_bad_uploads(client):
    big = b"\x89PNG" + b"\0" * (MAX_UPLOAD + 10)
    r = client.post("/api/runs/mlp/predict", content=big,
                    headers={**AUTH, "Content-Type": "image/png"})
    assert r.status_code == 413 and "MiB" in r.json()["error"]

    def chunks():                          # no Content-Length: the streamed size counts
        for _ in range(40):
            yield b"\0" * (64 << 10)
    r = client.post("/api/runs/mlp/predict", content=chunks(),
                    headers={**AUTH, "Content-Type": "image/png"})
    assert r.status_code == 413
    r = client.post("/api/runs/mlp/predict", content=b"not an image",
                    headers={**AUTH, "Content-Type": "image/png"})
    assert r.status_code == 400 and "not a PNG or JPEG image" in r.json()["error"]
    r = client.post("/api/runs/mlp/predict", content=bomb_png(),
                    headers={**AUTH, "Content-Type": "image/png"})
    assert r.status_code == 400 and "pixels" in r.json()["error"]
    r = client.post("/api/runs/mlp/predict", files={"other": ("x.png", digit_png())},
                    headers=AUTH)
    assert r.status_code == 400 and "'image'" in r.json()["error"]
    r = client.post("/api/runs/nope/predict", content=digit_png(), headers=AUTH)
    assert r.status_code == 404


def form(*parts: bytes, boundary: bytes = b"b0") -> bytes:
    return b"".join(b"--" + boundary + b"\r\n" + p + b"\r\n" for p in parts) + \
        b"--" + boundary + b"--\r\n"


def nested(depth: int) -> bytes:
    """A part holding a multipart holding a multipart ... ``depth`` levels down."""
    inner = b"Content-Disposition: form-data; name=\"leaf\"\r\n\r\nx"
    for i in range(depth):
        b = f"n{i}".encode()
        inner = (b"Content-Disposition: form-data; name=\"box\"\r\nContent-Type: "
                 b"multipart/mixed; boundary=" + b + b"\r\n\r\n" + form(inner, boundary=b))
    return inner


def test_multipart_forms_are_parsed_flat_and_bounded(client):
    """The image field among others (a quoted boundary, a preamble) is found; a form of
    more parts than the page sends, or nested thousands deep, is a 400 (a nested form was
    a RecursionError, a 500)."""
    png = digit_png()
    fields = [b'Content-Disposition: form-data; name="note"\r\n\r\nhi',
              b'Content-Disposition: form-data; name="image"; filename="d.png"\r\n'
              b"Content-Type: image/png\r\n\r\n" + png]
    raw = client.post("/api/runs/mlp/predict", content=png,
                      headers={**AUTH, "Content-Type": "image/png"}).json()
    r = client.post("/api/runs/mlp/predict", content=b"preamble\r\n" + form(*fields),
                    headers={**AUTH, "Content-Type": 'multipart/form-data; boundary="b0"'})
    assert r.status_code == 200 and r.json()["probabilities"] == raw["probabilities"]
    cases = [(form(*[fields[0]] * 17, fields[1]), "more than 16 parts"),
             (form(nested(3000)), "no 'image' field"),
             (form(b"no blank line after the headers"), "malformed")]
    for body, words in cases:
        r = client.post("/api/runs/mlp/predict", content=body,
                        headers={**AUTH, "Content-Type": "multipart/form-data; boundary=b0"})
        assert r.status_code == 400 and words in r.json()["error"], (words, r.text)
    r = client.post("/api/runs/mlp/predict", content=form(*fields),
                    headers={**AUTH, "Content-Type": "multipart/form-data"})
    assert r.status_code == 400 and "boundary" in r.json()["error"]


def bomb_png(side: int = 100_000) -> bytes:
    """A small PNG whose header declares side x side pixels (10 gigapixels)."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + \
            struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + \
        chunk(b"IDAT", zlib.compress(b"\0" * 1000)) + chunk(b"IEND", b"")


# -- training jobs -----------------------------------------------------------------------
def test_train_form_is_validated_like_the_cli(client):
    cases = [({"lr": -1}, "lr"), ({"optimizer": "adm"}, "optimizer"), ({"epochs": "x"}, "epochs"),
             ({"colour": "red"}, "colour"), ({"preset": "cnn", "hidden": [8]}, "hidden"),
             ({"momentum": 0.9}, "momentum"), ({"dataset": "--overwrite"}, "dataset"),
             ({"epochs": True}, "epochs"), ({"preset": "nope"}, "preset"),
             # a list item must not become a flag of its own (--resume of another folder)
             ({"hidden": [8, "--resume", "/etc"]}, "hidden"), ({"hidden": "8 --overwrite"},
                                                              "hidden"),
             ({"hidden": [-8]}, "hidden"), ({"lr": "--lr=1"}, "lr"),
             ({"arch": "linear(10)", "preset": "--resume=/x"}, "preset")]
    for body, field in cases:
        r = client.post("/api/train", json=body, headers=AUTH)
        assert r.status_code == 400 and r.json()["field"] == field, (body, r.json())
    r = client.post("/api/train", content=b"[1, 2", headers={**AUTH,
                                                              "Content-Type": "application/json"})
    assert r.status_code == 400
    assert client.get("/api/jobs", headers=AUTH).json()["running"] == []



@pytest.mark.parametrize("body,message", [
    ({"epochs": 0}, "epochs: must be at least 1, got 0"),
    ({"batch_size": "x"}, "batch_size: expected a positive integer, got 'x'"),
    ({"dropout": 2}, "dropout: must be between 0 and 1, got 2"),
])
def test_train_form_errors_name_the_form_field_not_the_cli_flag(client, body, message):
    """A value refused on its own is worded for the page: the field's name, not
    argparse's "argument --epochs:"."""
    r = client.post("/api/train", json=body, headers=AUTH)
    assert r.status_code == 400
    assert r.json()["error"] == message and r.json()["field"] == next(iter(body))

def test_a_job_trains_and_streams_its_events(client, env):
    r = client.post("/api/train", json={"preset": "default", "epochs": 2, "hidden": [8],
                                        "limit": None}, headers=AUTH)
    assert r.status_code == 202 and r.json()["state"] in ("queued", "running")
    run_id = r.json()["id"]
    events = []
    with client.stream("GET", f"/api/runs/{run_id}/events", headers=AUTH) as s:
        assert s.headers["content-type"].startswith("text/event-stream")
        kind = None
        for line in s.iter_lines():
            if line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: "):
                events.append((kind, json.loads(line[6:])))
    kinds = [k for k, _ in events]
    assert kinds[-1] == "state" and events[-1][1]["state"] == "finished"
    assert 0 <= events[-1][1]["test_accuracy"] <= 1
    epochs = [e for k, e in events if k == "epoch"]
    assert [e["epoch"] for e in epochs] == [1, 2] and all(e["epochs"] == 2 for e in epochs)
    batches = [e for k, e in events if k == "batch"]
    assert batches and batches[-1]["step"] == 10 and batches[-1]["batches"] == 5
    assert batches[0]["step"] == 1 and 6 in [b["step"] for b in batches]   # epochs' edges
    assert {"loss", "lr", "examples_per_s", "eta_s", "t"} <= set(batches[-1])
    assert any(k == "log" and "test accuracy" in e["line"] for k, e in events)
    d = client.get(f"/api/runs/{run_id}", headers=AUTH).json()
    assert d["state"] == "finished" and d["preset"] == "default" and d["epochs_done"] == 2
    # a page opened afterwards gets the whole run replayed, then the final state
    with client.stream("GET", f"/api/runs/{run_id}/events", headers=AUTH) as s:
        text = "".join(s.iter_text())
    assert text.count("event: epoch") == 2 and text.rstrip().endswith("}")
    assert '"state": "finished"' in text.strip().split("\n\n")[-1]


def test_stop_keeps_the_run_resumable_and_resume_finishes_it(client, env):
    run_id = client.post("/api/train", json={"epochs": 40, "hidden": [8]},
                         headers=AUTH).json()["id"]
    folder = env[1] / run_id
    deadline = time.time() + 60
    while time.time() < deadline and not (folder / "events.jsonl").exists():
        time.sleep(0.02)
    r = client.post(f"/api/runs/{run_id}/stop", headers=AUTH)
    assert r.status_code == 200 and r.json()["state"] == "stopped"
    d = wait_state(client, run_id, ("stopped",))
    assert not d["has_model"] and d["epochs_done"] < 40
    assert (folder / "checkpoint.npz").is_file() and not (folder / ".bareprop.lock").exists()
    assert client.post(f"/api/runs/{run_id}/stop", headers=AUTH).status_code == 409
    r = client.post(f"/api/runs/{run_id}/resume", headers=AUTH)
    assert r.status_code == 202
    d = wait_state(client, run_id, ("finished", "failed"), timeout=90)
    assert d["state"] == "finished" and d["epochs_done"] == 40, d
    assert "resuming" in (folder / "job.log").read_text()
    assert client.post(f"/api/runs/{run_id}/resume", headers=AUTH).status_code == 409


def test_a_crashing_job_is_failed_and_the_server_keeps_serving(client, env):
    run_id = client.post("/api/train", json={"epochs": 400, "hidden": [8]},
                         headers=AUTH).json()["id"]
    api = client.app.app.state.api
    deadline = time.time() + 60
    while time.time() < deadline and (api.jobs.state(run_id).proc is None or
                                      not (env[1] / run_id / "events.jsonl").exists()):
        time.sleep(0.05)
    os.kill(api.jobs.state(run_id).proc.pid, 9)             # the job dies hard
    d = wait_state(client, run_id, ("failed",))
    assert "killed by SIGKILL" in d["error"]
    assert client.get("/api/runs", headers=AUTH).status_code == 200
    assert client.post("/api/runs/mlp/predict", content=digit_png(),
                       headers={**AUTH, "Content-Type": "image/png"}).status_code == 200
    # and it failed with a checkpoint: it can be resumed
    assert (env[1] / run_id / "checkpoint.npz").is_file()


def test_jobs_queue_beyond_max_jobs(env):
    _, runs, data = env
    app = create_app(runs, TOKEN, port=8765, data_dir=str(data), verify=False, max_jobs=1)
    with TestClient(app, base_url=BASE) as c:
        a = c.post("/api/train", json={"epochs": 300, "hidden": [8]}, headers=AUTH).json()
        b = c.post("/api/train", json={"epochs": 1, "hidden": [8]}, headers=AUTH).json()
        assert b["state"] == "queued"
        jobs = c.get("/api/jobs", headers=AUTH).json()
        assert jobs["max_jobs"] == 1 and jobs["queued"] == [b["id"]]
        assert {r["id"]: r["state"] for r in
                c.get("/api/runs", headers=AUTH).json()["runs"]}[b["id"]] == "queued"
        assert c.post(f"/api/runs/{b['id']}/stop", headers=AUTH).json()["state"] == "stopped"
        assert c.post(f"/api/runs/{a['id']}/stop", headers=AUTH).status_code == 200
    assert not (runs / b["id"]).exists() or not any((runs / b["id"]).iterdir())


def test_errors_are_json(client):
    r = client.get("/api/nothing", headers=AUTH)
    assert r.status_code == 404 and "error" in r.json()
    r = client.get("/api/train", headers=AUTH)
    assert r.status_code == 405 and "error" in r.json()
    assert client.get("/api/runs/nope", headers=AUTH).status_code == 404
    assert client.post("/api/runs/mlp/resume", headers=AUTH).status_code == 409


def test_a_run_interrupted_before_its_first_epoch_ends_resumes(env, tmp_path):
    """Ctrl-C (SIGINT) during epoch 1: the starting checkpoint (epoch 0) is kept and
    --resume trains the run from the start to the same weights as an uninterrupted run."""
    import subprocess
    import sys

    from bareprop.train.checkpoint import load_checkpoint
    from webruns import train

    _, _, data = env
    flags = ["--hidden", "8", "--epochs", "2"]
    full = train(tmp_path, "full", data, *flags)
    out = tmp_path / "cut"
    p = subprocess.Popen([sys.executable, "-m", "bareprop", "train", "--data-dir", str(data),
                          "--no-verify", "--quiet", "--events", "--out", str(out), *flags],
                         stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while time.time() < deadline and not (out / "events.jsonl").exists():
        time.sleep(0.005)
    p.send_signal(2)
    assert p.wait(60) == 130 and "interrupted" in p.stderr.read()
    assert load_checkpoint(out / "checkpoint.npz")["epoch"] == 0
    assert json.loads((out / "events.jsonl").read_text().splitlines()[-1])["state"] == "stopped"
    r = subprocess.run([sys.executable, "-m", "bareprop", "train", "--resume", str(out),
                        "--data-dir", str(data), "--no-verify", "--quiet"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    a, b = Predictor.from_file(full).model, Predictor.from_file(out).model
    for (name, pa), (_, pb) in zip(a.named_parameters(), b.named_parameters()):
        assert np.array_equal(pa.data, pb.data), name


def test_compact_feature_maps_decode_to_the_float_ones(client):
    import base64

    png = digit_png("zero")
    full = client.post("/api/runs/cnn/predict", content=png,
                       headers={**AUTH, "Content-Type": "image/png"}).json()
    small = client.post("/api/runs/cnn/predict?maps=u8", content=png,
                        headers={**AUTH, "Content-Type": "image/png"}).json()
    assert small["probabilities"] == full["probabilities"]
    convs = [(a, b) for a, b in zip(full["activations"], small["activations"])
             if a["type"] == "conv"]
    assert convs
    for a, b in convs:
        assert "values" not in b and b["shape"] == a["shape"]
        assert b["shown"] == list(np.shape(a["values"]))        # what the page unpacks by
        q = np.frombuffer(base64.b64decode(b["u8"]), np.uint8).reshape(b["shown"])
        back = b["min"] + q * (b["max"] - b["min"]) / 255
        assert np.allclose(back, a["values"], atol=(b["max"] - b["min"]) / 500 + 1e-3)


def test_a_resumed_epoch_is_replayed_once():
    from bareprop.runs.read import latest_attempt

    first = [{"event": "batch", "step": s} for s in (1, 2, 3)] + \
        [{"event": "epoch", "epoch": 1}, {"event": "batch", "step": 4},
         {"event": "batch", "step": 5}, {"event": "state", "state": "stopped"}]
    again = [{"event": "state", "state": "running"}, {"event": "batch", "step": 4},
             {"event": "batch", "step": 6}, {"event": "epoch", "epoch": 2}]
    kept = latest_attempt(first + again)
    assert [e.get("step") for e in kept if e["event"] == "batch"] == [1, 2, 3, 4, 6]
    assert [e.get("epoch") for e in kept if e["event"] == "epoch"] == [1, 2]
    assert [e["state"] for e in kept if e["event"] == "state"] == ["stopped", "running"]


def test_a_run_started_from_a_shell_with_events_is_watched_live(client, env):
    import subprocess
    import sys

    _, runs, data = env
    out = runs / "from-shell"
    p = subprocess.Popen([sys.executable, "-m", "bareprop", "train", "--data-dir", str(data),
                          "--no-verify", "--quiet", "--events", "--hidden", "8",
                          "--epochs", "10", "--out", str(out)],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 60
        while time.time() < deadline and not (out / "events.jsonl").exists():
            time.sleep(0.02)
        if p.poll() is None:            # its lock names a live process: not ours to resume
            r = client.post("/api/runs/from-shell/resume", headers=AUTH)
            assert r.status_code == 409 or p.poll() is not None, r.json()
        states, epochs = [], []
        with client.stream("GET", "/api/runs/from-shell/events", headers=AUTH) as s:
            kind = None
            for line in s.iter_lines():
                if line.startswith("event: "):
                    kind = line[7:]
                elif line.startswith("data: "):
                    data_ = json.loads(line[6:])
                    if kind == "state":
                        states.append(data_["state"])
                    elif kind == "epoch":
                        epochs.append(data_["epoch"])
    finally:
        p.wait(120)
    assert states[0] == "running" and states[-1] == "finished", states
    assert epochs == list(range(1, 11))


def test_pages_carry_a_content_security_policy(client):
    for path in ("/", "/static/app.js"):
        r = client.get(path, headers=AUTH)
        if r.status_code == 404:        # pages not installed in this checkout
            continue
        assert r.status_code == 200
        csp = r.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["referrer-policy"] == "no-referrer"
    assert client.get("/static/../app.py", headers=AUTH).status_code == 404
