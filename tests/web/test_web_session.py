"""The login cookie in a real browser (Chromium through Playwright): cookies ignore ports,
so a cookie of 127.0.0.1 would reach every other service on this machine, and a second
`bareprop serve` would overwrite the first one's. Neither may happen."""
import http.server
import shutil
import threading
from pathlib import Path

import pytest

from webpage import Server
from webruns import make_runs

sync_api = pytest.importorskip("playwright.sync_api")
CHROMIUM = "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else shutil.which("chromium")
pytestmark = pytest.mark.skipif(not CHROMIUM, reason="needs Debian's chromium (apt-get install chromium)")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
WAIT = 60_000


class Recorder(http.server.BaseHTTPRequestHandler):
    """Another local service: answers a page and records every Cookie header it is sent."""
    seen: list = []

    def do_GET(self):
        Recorder.seen.append(self.headers.get("Cookie") or "")
        body = b"<!doctype html><title>another service</title><p>hello"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    runs, data = make_runs(tmp_path_factory.mktemp("session"))
    first = Server(runs, data)
    try:
        second = Server(runs, data)
    except BaseException:
        first.close()
        raise
    yield first, second
    first.close()
    second.close()


@pytest.fixture(scope="module")
def other_service():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def api_status(page, path: str) -> int:
    """The status the page's own fetch of ``path`` (relative, with its cookie) gets."""
    return page.evaluate("p => fetch(p, {credentials: 'same-origin'}).then((r) => r.status)", path)


def test_two_servers_and_another_service_in_one_browser(servers, other_service):
    first, second = servers
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            context = browser.new_context()
            one = context.new_page()
            one.goto(first.url)
            one.wait_for_selector("#tab-draw.active", timeout=WAIT)
            assert api_status(one, "api/runs") == 200
            two = context.new_page()
            two.goto(second.url)                    # logging into a second server ...
            two.wait_for_selector("#tab-draw.active", timeout=WAIT)
            assert api_status(two, "api/runs") == 200
            assert api_status(one, "api/runs") == 200     # ... does not lock the first out
            one.reload()
            one.wait_for_selector("#model-select option", state="attached", timeout=WAIT)
            assert not one.locator("#banner").is_visible()
            # another service on this machine: its pages and its fetches carry no cookie of ours
            other = context.new_page()
            Recorder.seen.clear()
            other.goto(other_service + "/")
            for path in ("/api/runs", "/s/", "/static/app.js"):
                assert api_status(other, path) == 200
            assert len(Recorder.seen) >= 4            # the page, its favicon, the fetches
            for sent in Recorder.seen:
                assert first.token not in sent and second.token not in sent, sent
            cookies = {c["name"]: c for c in context.cookies()}
            assert len(cookies) == 2 and all(c["httpOnly"] for c in cookies.values())
        finally:
            browser.close()
