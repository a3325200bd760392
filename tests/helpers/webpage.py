"""A real `bareprop serve` in a subprocess, for the browser tests: the test reads the address
from the server's one printed line and can ask the API with the token as a header. Also the
browser tests' shared fixtures (import them into the test module): ``browser``, Debian's
Chromium through Playwright, and ``shots``, the screenshots' folder."""
import json
import os
import queue
import shutil
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else shutil.which("chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
WAIT = 60_000       # ms: the longest a step may take on a loaded 2-core machine


@pytest.fixture(scope="module")
def browser():
    """Chromium, headless, for the test module (skipped without Playwright)."""
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


class open_page:
    """``with open_page(browser, server) as pg``: a fresh context's page at the app's own
    path (``server.app`` set to it); on leaving, no uncaught error may have reached the
    page, a script or style the server's Content-Security-Policy refused included."""

    def __init__(self, browser, server):
        self.browser, self.server, self.errors = browser, server, []

    def __enter__(self):
        self.context = self.browser.new_context(viewport={"width": 1360, "height": 900})
        pg = self.context.new_page()
        pg.on("pageerror", lambda e: self.errors.append(str(e)))
        pg.on("console", lambda m: self.errors.append(m.text)
              if "Content Security Policy" in m.text else None)
        pg.goto(self.server.url)    # sets the token cookie, then redirects to the app's path
        self.server.app = pg.url    # http://127.0.0.1:PORT/s/<id>/, where the cookie is sent
        return pg

    def __exit__(self, *exc):
        self.context.close()
        if exc[0] is None:
            assert not self.errors, f"uncaught errors in the page: {self.errors}"


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    """Where screenshots go: $BAREPROP_SCREENSHOTS, else a tmp folder."""
    folder = os.environ.get("BAREPROP_SCREENSHOTS")
    path = Path(folder) if folder else tmp_path_factory.mktemp("screenshots")
    path.mkdir(parents=True, exist_ok=True)
    return path


def env() -> dict:
    """This checkout's bareprop first on the path of every subprocess."""
    e = dict(os.environ)
    e["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), e.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return e


def bareprop(*args, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", "bareprop", *map(str, args)], env=env(),
                            capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"bareprop {' '.join(map(str, args))} failed:\n{result.stdout}\n{result.stderr}")
    return result


class Server:
    """`bareprop serve RUNS --data-dir DATA --no-verify` in a subprocess; .url is its printed line."""

    def __init__(self, runs: Path, data: Path, timeout: float = 60):
        self.runs = runs
        self.proc = subprocess.Popen([sys.executable, "-m", "bareprop", "serve", str(runs), "--data-dir", str(data),
                                      "--no-verify", "--no-browser"], env=env(), stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)
        self.lines: queue.Queue = queue.Queue()
        self.log: list[str] = []
        threading.Thread(target=self._pump, daemon=True).start()
        try:
            first = self.lines.get(timeout=timeout)
        except queue.Empty:
            self.close()
            raise AssertionError("bareprop serve printed no address within %ss" % timeout) from None
        assert first.startswith("http://127.0.0.1:") and "?token=" in first, first + "".join(self.log)
        self.url = first.strip()
        self.base, self.token = self.url.split("/?token=")

    def _pump(self):
        for line in self.proc.stdout:
            self.log.append(line)
            self.lines.put(line)

    def api(self, path: str, method: str = "GET") -> dict:
        """A JSON API answer, authorised by the token header (not the browser's cookie)."""
        request = urllib.request.Request(self.base + path, method=method,
                                         headers={"Authorization": f"Bearer {self.token}"})
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())

    def close(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
