"""Uploads to predict cannot make the server's memory grow with their number or their
declared size: an upload gets a far lower pixel bound than a file given to ``bareprop
predict`` (refused from its header), and at most a few are decoded at once. The server's
peak memory is measured under parallel hostile uploads."""
from __future__ import annotations

import io
import sys
import threading
import time
import urllib.error
import urllib.request

import pytest

pytest.importorskip("starlette")
pytest.importorskip("httpx")
from PIL import Image, ImageDraw  # noqa: E402
from starlette.testclient import TestClient  # noqa: E402

from bareprop.preprocess import load_grey  # noqa: E402
from bareprop.web import infer  # noqa: E402
from bareprop.web.app import create_app  # noqa: E402
from webpage import Server  # noqa: E402
from webruns import digit_png, make_runs  # noqa: E402

TOKEN = "uploads-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def stroke_png(side: int) -> bytes:
    """A PNG of a dark stroke on white paper, ``side`` pixels square: compresses to a few
    KiB whatever its size (a 7000x7000 one is ~60 KiB), so only its pixel count is large."""
    im = Image.new("L", (side, side), 255)
    ImageDraw.Draw(im).line([(side // 2, side // 6), (side // 2, side * 5 // 6)], fill=0,
                            width=max(1, side // 10))
    buf = io.BytesIO()
    im.save(buf, "PNG", optimize=True)
    return buf.getvalue()


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    return make_runs(tmp_path_factory.mktemp("uploads"))


def test_an_upload_gets_a_far_lower_pixel_bound_than_a_file(env, tmp_path):
    runs, data = env
    big = stroke_png(1200)                             # 1.44 megapixels: a photo, not a drawing
    app = create_app(runs, TOKEN, port=8767, data_dir=str(data), verify=False)
    with TestClient(app, base_url="http://127.0.0.1:8767") as client:
        ok = client.post("/api/runs/mlp/predict", content=digit_png(size=280), headers={
            **AUTH, "Content-Type": "image/png"})
        assert ok.status_code == 200, ok.json()
        for body in (big, stroke_png(7000)):
            t0 = time.perf_counter()
            r = client.post("/api/runs/mlp/predict", content=body,
                            headers={**AUTH, "Content-Type": "image/png"})
            assert r.status_code == 400, r.json()
            assert "1,000,000" in r.json()["error"] and "scale the image down" in r.json()["error"]
            assert time.perf_counter() - t0 < 2          # refused from the header
    (tmp_path / "photo.png").write_bytes(big)          # the same image as a file: read
    assert load_grey(tmp_path / "photo.png").shape == (1200, 1200)


def test_only_a_few_uploads_are_decoded_at_once(monkeypatch):
    now = [0]
    most = [0]
    guard = threading.Lock()
    real = infer.load_grey

    def slow_load(*a, **k):
        with guard:
            now[0] += 1
            most[0] = max(most[0], now[0])
        try:
            time.sleep(0.2)
            return real(*a, **k)
        finally:
            with guard:
                now[0] -= 1

    monkeypatch.setattr(infer, "load_grey", slow_load)
    out = []
    threads = [threading.Thread(target=lambda: out.append(infer.prepare_upload(digit_png())))
               for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(out) == 8 and all(a.shape == (28, 28) for a in out)
    assert most[0] <= 2, most[0]


def _peak_mib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return next(int(ln.split()[1]) // 1024 for ln in f if ln.startswith("VmHWM"))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/PID/status")
def test_the_servers_memory_stays_bounded_under_parallel_hostile_uploads(env):
    runs, data = env
    server = Server(runs, data)

    def post(body, answers):
        request = urllib.request.Request(
            f"{server.base}/api/runs/mlp/predict", data=body, method="POST",
            headers={"Authorization": f"Bearer {server.token}", "Content-Type": "image/png"})
        try:
            with urllib.request.urlopen(request, timeout=300) as r:
                answers.append(r.status)
        except urllib.error.HTTPError as e:
            answers.append(e.code)

    try:
        post(digit_png(), [])                               # the model loaded, warm
        before = _peak_mib(server.proc.pid)
        answers = []
        # eight hostile uploads (3000x3000, a few KiB each) and eight at the upload bound
        bodies = [stroke_png(3000)] * 8 + [stroke_png(1000)] * 8
        threads = [threading.Thread(target=post, args=(b, answers)) for b in bodies]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        grown = _peak_mib(server.proc.pid) - before
    finally:
        server.close()
    assert grown < 300, f"the server's peak memory grew by {grown} MiB"
    assert sorted(answers) == [200] * 8 + [400] * 8, answers
