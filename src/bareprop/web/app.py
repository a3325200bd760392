"""The Starlette app of ``bareprop serve``: the pages (static files from the package),
the JSON API (docs/web.md) and the guard in front of both (security.py).

Every handler answers errors as JSON ``{"error": "...", "field"?: "..."}``; strings
from run folders are only ever JSON-encoded here (the pages put them into the DOM
as text), and a run's HTML report is served only as this server built it, sandboxed
(Reports).
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import threading
from pathlib import Path

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from ..errors import BarepropError, DataError, ModelFileError, OutputError
from ..explain.methods import METHODS as EXPLAIN_METHODS
from ..runs.layout import CHECKPOINT, COMPARE, EVENTS, INSPECT, METRICS, MODEL, REPORT
from ..runs.read import list_runs
from . import security
from .form import FormError, to_argv
from .infer import ModelCache, prepare_upload
from .jobs import ACTIVE, JobManager
from .runs import RunView
from .security import BodyError, Guard, error, json_body
from .stream import event_stream
from .upload import MAX_UPLOAD, UploadTooLarge, capped, read_upload

STATIC = Path(__file__).resolve().parent / "static"
PRESET_NOTES = {
    "default": "784-128-10 MLP, Adam with a one-cycle schedule (what plain train gives)",
    "seed": "the seed notebook exactly: raw pixels, SGD 1e-5, clipped deltas",
    "keras-seed": "the notebook's tf.keras reference: Glorot init, SGD 1e-4",
    "best-mlp": "784-1024-1024-10 with dropout and augmentation, Nesterov SGD",
    "lenet5": "LeNet-5: two tanh conv layers with average pooling",
    "cnn": "two conv blocks (32, 64 channels) with batch norm; the most accurate preset",
    "lstm": "an LSTM reading the image row by row (28 steps of 28 pixels), Adam",
    "vit": "a hybrid vision transformer: a 3x3 conv, 7x7 patches of its maps, two "
           "encoder blocks of 4 heads, AdamW",
}
SETTINGS = ("epochs", "batch_size", "lr", "optimizer", "seed", "augment", "schedule",
            "hidden", "arch", "momentum", "weight_decay", "label_smoothing", "dropout",
            "val_fraction", "dataset")
# The pages' own defence in depth: only this server's scripts, styles and connections,
# no framing (clickjacking), no referrer (the address once held the token).
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; "
                               "img-src 'self' data: blob:; connect-src 'self'; "
                               "frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
# A report is the server's own page, but it holds strings from a run folder: sandboxed (an
# opaque origin, no script, no form), it reaches nothing of this server's API.
REPORT_HEADERS = {
    "Content-Security-Policy": "sandbox; default-src 'none'; img-src data:; "
                               "style-src 'unsafe-inline'; form-action 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
MAX_REPORT = 256 << 20              # bytes of a report read back (its figures are inline)
MAX_SETTINGS = 64 << 10             # bytes of the Train form's JSON


class Reports:
    """The run reports this server built itself, served only as built.

    A report.html found in a run folder is never served as it is: the server builds the
    report (the code of ``bareprop report``), notes the SHA-256 of the page and the state
    of the files it was built from, and serves the page again only while both still
    match. A page planted in the folder, edited, linked (a symlink or a hard link to a
    file elsewhere), or older than the run's files is rebuilt first. Builds take turns
    (one lock): matplotlib's text rendering is not thread-safe, and a page must be read
    back before another build of it replaces it."""

    SOURCES = (METRICS, MODEL, COMPARE, INSPECT)

    def __init__(self, data_dir: str | None):
        self.data_dir = data_dir
        self.built: dict[str, tuple] = {}
        self.lock = threading.Lock()

    def page(self, folder: Path) -> bytes:
        from ..report import build_report

        with self.lock:
            sources = _stamp(folder, self.SOURCES)
            known = self.built.get(folder.name)
            if known is not None and known[0] == sources:
                body = security.read_own_file(folder, REPORT, MAX_REPORT)
                if body is not None and hashlib.sha256(body).digest() == known[1]:
                    return body
            self.built.pop(folder.name, None)
            build_report(folder, data_dir=self.data_dir)       # replaces report.html by rename
            body = security.read_own_file(folder, REPORT, MAX_REPORT)
            if body is None:
                raise OutputError(f"the report of {folder.name} could not be read back "
                                  "as the regular file just written; build it again")
            self.built[folder.name] = (sources, hashlib.sha256(body).digest())
            return body


class Api:
    def __init__(self, root: Path, jobs: JobManager, data_dir: str | None = None):
        self.root, self.jobs, self.data_dir = Path(root), jobs, data_dir
        self.models = ModelCache()
        self.reports = Reports(data_dir)
        self._views: dict[str, tuple] = {}

    # -- helpers ----------------------------------------------------------------------
    def folder(self, request: Request) -> Path | None:
        return security.run_dir(self.root, request.path_params["id"])

    def summary(self, view: RunView, details: bool = False) -> dict:
        out = view.details() if details else view.summary()
        job = self.jobs.state(view.id)
        if job is None:
            return out
        # queued/running as the job manager says; a job's stop or failure unless the
        # folder has moved on since (trained to the end, or running again from a shell)
        if job.state in ACTIVE or out["state"] not in ("running", "finished"):
            out["state"] = job.state
            if job.state == "failed":
                out["error"] = job.error
        return out

    def view(self, folder: Path) -> RunView:
        """RunView of ``folder``, reused while its files keep their sizes and times (a
        page polls /api/runs; a long run's events.jsonl holds thousands of lines)."""
        key = _stamp(folder)
        hit = self._views.get(folder.name)
        if hit is not None and hit[0] == key:
            return hit[1]
        view = RunView(folder)
        self._views[folder.name] = (key, view)
        return view

    def _pending_views(self) -> list[dict]:
        """Active jobs whose folders hold no run yet (queued, or starting up)."""
        return [{"id": j.id, "state": j.state, "preset": None, "dataset": None,
                 "kind": None, "arch": None, "test_accuracy": None, "val_accuracy": None,
                 "started": None, "duration_s": None, "epochs_done": 0, "epochs": None,
                 "has_model": False, "has_report": False, "error": j.error}
                for j in list(self.jobs.jobs.values()) if j.state in ACTIVE]

    # -- endpoints --------------------------------------------------------------------
    async def index(self, request: Request):
        page = STATIC / "index.html"
        if not page.is_file():
            return HTMLResponse("<!doctype html><title>bareprop serve</title><p>The pages "
                                "are not installed; the API is at /api/runs.</p>")
        return FileResponse(page, headers={"Cache-Control": "no-store", **PAGE_HEADERS})

    async def static(self, request: Request):
        rel = request.path_params["path"]
        path = (STATIC / rel).resolve()
        if not path.is_relative_to(STATIC) or not path.is_file():
            return error(404, f"no static file {rel!r}")
        return FileResponse(path, headers={"Cache-Control": "no-cache", **PAGE_HEADERS})

    async def presets(self, request: Request):
        return JSONResponse(await run_in_threadpool(_presets))

    async def runs(self, request: Request):
        def work():
            views = [v for v in map(self.view, list_runs(self.root)) if v.is_run]
            listed = [self.summary(v) for v in views]
            known = {r["id"] for r in listed}
            listed += [q for q in self._pending_views() if q["id"] not in known]
            listed.sort(key=lambda r: (r["started"] or "9999", r["id"]), reverse=True)
            return {"runs": listed}
        return JSONResponse(await run_in_threadpool(work))

    async def run(self, request: Request):
        folder = self.folder(request)
        if folder is None:
            return error(404, "no such run; pick one from /api/runs")
        return JSONResponse(await run_in_threadpool(
            lambda: self.summary(self.view(folder), details=True)))

    async def report(self, request: Request):
        folder = self.folder(request)
        if folder is None:
            return error(404, "no such run; pick one from /api/runs")
        try:
            body = await run_in_threadpool(self.reports.page, folder)
        except BarepropError as exc:
            return error(409, str(exc))
        return Response(body, media_type="text/html", headers=REPORT_HEADERS)

    def _loaded(self, folder: Path):
        model = security.safe_file(folder, MODEL)
        if model is None:
            raise ModelFileError("this run has no model.npz yet; wait for it to finish, "
                                 "or pick a finished run")
        return self.models.get(folder.name, model)

    async def model(self, request: Request):
        folder = self.folder(request)
        if folder is None:
            return error(404, "no such run; pick one from /api/runs")
        try:
            loaded = await run_in_threadpool(self._loaded, folder)
        except BarepropError as exc:
            return error(409, str(exc))
        return JSONResponse(loaded.description)

    async def predict(self, request: Request):
        folder = self.folder(request)
        if folder is None:
            return error(404, "no such run; pick one from /api/runs")
        try:
            data = await read_upload(request)
        except UploadTooLarge:
            return error(413, f"the image is larger than {MAX_UPLOAD >> 20} MiB; send a "
                              "smaller PNG or JPEG")
        except DataError as exc:
            return error(400, str(exc))

        compact = request.query_params.get("maps") == "u8"
        explain = request.query_params.get("explain") or None
        if explain is not None and explain not in EXPLAIN_METHODS:
            return error(400, f"unknown explanation {explain!r}; use one of "
                              f"{', '.join(EXPLAIN_METHODS)}", field="explain")

        def work():
            loaded = self._loaded(folder)
            return loaded.predict(prepare_upload(data), compact=compact, explain=explain)
        try:
            return JSONResponse(await run_in_threadpool(work))
        except DataError as exc:
            return error(400, str(exc))
        except BarepropError as exc:
            return error(409, str(exc))

    async def train(self, request: Request):
        try:
            form = json_body(request.headers.get("content-type"),
                             await capped(request, MAX_SETTINGS))
        except UploadTooLarge:
            return error(413, "the settings are larger than 64 KiB; send only the form's "
                              "fields")
        except BodyError as exc:
            return error(exc.status, str(exc))
        if not isinstance(form, dict):
            return error(400, "the body must be a JSON object of settings")
        try:
            argv = await run_in_threadpool(to_argv, form)
            job = self.jobs.submit(argv)
        except FormError as exc:
            return error(400, str(exc), exc.field)
        except BarepropError as exc:
            return error(400, str(exc))
        return JSONResponse({"id": job.id, "state": job.state}, status_code=202)

    async def stop(self, request: Request):
        refused = await _no_settings(request)
        if refused is not None:
            return refused
        run_id = request.path_params["id"]
        if security.run_dir(self.root, run_id) is None:
            return error(404, "no such run; pick one from /api/runs")
        try:
            job = await run_in_threadpool(self.jobs.stop, run_id)
        except BarepropError as exc:          # a run this server cannot stop: says where
            return error(409, str(exc))
        if job is None:
            return error(409, f"run {run_id} is not running or queued")
        return JSONResponse({"id": run_id, "state": job.state if job.state != "running"
                             else "stopping"})

    async def resume(self, request: Request):
        refused = await _no_settings(request)
        if refused is not None:
            return refused
        folder = self.folder(request)
        if folder is None:
            return error(404, "no such run; pick one from /api/runs")
        try:
            job = self.jobs.resume(folder.name, folder)
        except BarepropError as exc:
            return error(409, str(exc))
        return JSONResponse({"id": job.id, "state": job.state}, status_code=202)

    async def job_list(self, request: Request):
        return JSONResponse(self.jobs.summary())

    async def events(self, request: Request):
        folder = self.folder(request)
        if folder is None:
            return error(404, "no such run; pick one from /api/runs")
        stream = event_stream(request, folder, self._state, self.jobs.state)
        return StreamingResponse(stream, media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache",
                                          "X-Accel-Buffering": "no"})

    def _state(self, folder: Path) -> dict:
        view = self.view(folder)
        s = self.summary(view)
        return {"state": s["state"], "error": s["error"], "test_accuracy": s["test_accuracy"]}

async def _no_settings(request: Request) -> Response | None:
    """Stop and resume take no settings: an empty body, or JSON (the page sends {})."""
    try:
        body = await capped(request, MAX_SETTINGS)
        if body.strip():
            json_body(request.headers.get("content-type"), body)
    except UploadTooLarge:
        return error(413, "this request takes no body")
    except BodyError as exc:
        return error(exc.status, str(exc))
    return None


def _stamp(folder: Path, names=(METRICS, MODEL, CHECKPOINT, EVENTS, REPORT)) -> tuple:
    """(name, mtime_ns, size, inode) of the files a RunView (or a report) is made from
    (a lock's pid is checked by RunView.state, never cached)."""
    out = []
    for name in names:
        try:
            st = os.lstat(folder / name)
            out.append((name, st.st_mtime_ns, st.st_size, st.st_ino))
        except OSError:
            out.append((name, None, None))
    return tuple(out)


def _presets() -> dict:
    from ..data.augment import PRESETS as AUGMENTS
    from ..experiment import PRESETS, make_config
    from ..experiment.arch import family
    from ..experiment.config import OPTIMIZERS, SCHEDULES

    out = []
    for name in PRESETS:
        cfg = make_config({"preset": name}).to_dict()
        out.append({"name": name, "description": PRESET_NOTES.get(name, ""),
                    "kind": family(cfg["arch"]),
                    "settings": {k: cfg[k] for k in SETTINGS}})
    return {"presets": out, "datasets": ["mnist", "fashion-mnist"],
            "optimizers": list(OPTIMIZERS), "schedules": list(SCHEDULES),
            "augments": [*AUGMENTS, "auto"]}


def create_app(root: Path, token: str, host: str = "127.0.0.1", port: int = 8000,
               max_jobs: int = 1, data_dir: str | None = None, verify: bool = True,
               jobs: JobManager | None = None) -> Starlette:
    """The app for RUNS_DIR ``root``; ``jobs`` may be given (the tests share one)."""
    jobs = jobs or JobManager(root, max_jobs=max_jobs, data_dir=data_dir, verify=verify)
    api = Api(root, jobs, data_dir)
    routes = [
        Route("/", api.index),
        Route("/static/{path:path}", api.static),
        Route("/api/presets", api.presets),
        Route("/api/runs", api.runs),
        Route("/api/jobs", api.job_list),
        Route("/api/train", api.train, methods=["POST"]),
        Route("/api/runs/{id}", api.run),
        Route("/api/runs/{id}/report", api.report),
        Route("/api/runs/{id}/model", api.model),
        Route("/api/runs/{id}/events", api.events),
        Route("/api/runs/{id}/predict", api.predict, methods=["POST"]),
        Route("/api/runs/{id}/stop", api.stop, methods=["POST"]),
        Route("/api/runs/{id}/resume", api.resume, methods=["POST"]),
    ]

    async def not_found(request, exc):
        return error(404, f"no such page or endpoint {request.url.path!r}; see docs/web.md")

    async def not_allowed(request, exc):
        return error(405, f"{request.method} is not allowed here; see docs/web.md")

    async def crashed(request, exc):
        return error(500, f"internal error ({type(exc).__name__}: {exc}); the server keeps "
                          "running")

    @contextlib.asynccontextmanager
    async def lifespan(app):
        yield
        await run_in_threadpool(jobs.close)       # SIGINT the jobs: they stay resumable

    app = Starlette(routes=routes, lifespan=lifespan,
                    exception_handlers={404: not_found, 405: not_allowed, 500: crashed})
    app.state.api = api
    return Guard(app, token, security.allowed_hosts(host, port), port)
