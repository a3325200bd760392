"""The Starlette app of ``bareprop serve``: the pages (static files from the package),
the JSON API (docs/web.md) and the guard in front of both (security.py).

Every handler answers errors as JSON ``{"error": "...", "field"?: "..."}``; strings
from run folders are only ever JSON-encoded here (the pages put them into the DOM
as text), and a run's HTML report is served only as this server built it, sandboxed
(reports.py). A sweep folder is listed beside the runs (sweeps.py); its trials are
opened as runs, by the routes under ``/api/runs/{sweep}/trials/{trial}``.
"""
from __future__ import annotations

import contextlib
from functools import partial
from pathlib import Path

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from ..errors import BarepropError, DataError, ModelFileError
from ..explain.methods import METHODS as EXPLAIN_METHODS
from ..runs.layout import MODEL, TRIALS
from ..runs.read import list_runs
from . import security
from .form import FormError, to_argv
from .infer import ModelCache, prepare_upload
from .jobs import ACTIVE, JobManager
from .reports import REPORT_HEADERS, Reports
from .runs import RunView, stamp
from .security import BodyError, Guard, error, json_body
from .stream import event_stream
from .sweeps import Sweeps, is_sweep
from .upload import MAX_UPLOAD, UploadTooLarge, capped, read_upload

STATIC = Path(__file__).resolve().parent / "static"
PRESET_NOTES = {
    "default": "784-128-10 MLP, Adam with a one-cycle schedule (what plain train gives)",
    "seed": "the seed notebook exactly: raw pixels, SGD 1e-5, clipped deltas",
    "keras-seed": "the notebook's tf.keras reference: Glorot init, SGD 1e-4",
    "best-mlp": "784-1024-1024-10 with dropout and augmentation, Nesterov SGD",
    "lenet5": "LeNet-5: two tanh conv layers with average pooling",
    "cnn": "two conv blocks (32, 64 channels) with batch norm, about 5 minutes a run",
    "best-cnn": "the cnn preset with a 256-unit head and less dropout, 25 epochs: the most "
                "accurate preset",
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
MAX_SETTINGS = 64 << 10             # bytes of the Train form's JSON
NO_RUN = "no such run; pick one from /api/runs (a sweep's trials: /api/sweeps/{id})"
NO_SWEEP = "no such sweep; pick one from /api/runs (its \"sweeps\")"


class Api:
    def __init__(self, root: Path, jobs: JobManager, data_dir: str | None = None):
        self.root, self.jobs, self.data_dir = Path(root), jobs, data_dir
        self.models = ModelCache()
        self.reports = Reports(data_dir)
        self.sweeps = Sweeps()
        self._views: dict[str, tuple] = {}

    # -- helpers ----------------------------------------------------------------------
    def folder(self, request: Request) -> Path | None:
        """The run folder a route names: ``{id}``, a run directly under the root (a sweep
        is no run: its trials are), or ``{sweep}/trials/{trial}``, a sweep's trial
        (security.trial_dir); None when there is no such run."""
        p = request.path_params
        if "trial" in p:
            sweep = security.run_dir(self.root, p["sweep"])
            return security.trial_dir(self.root, p["sweep"], p["trial"]) \
                if sweep is not None and is_sweep(sweep) else None
        folder = security.run_dir(self.root, p["id"])
        return None if folder is None or is_sweep(folder) else folder

    @staticmethod
    def run_id(request: Request) -> str:
        """The id of the run a route names (what views, models and reports are kept by)."""
        p = request.path_params
        return f"{p['sweep']}/{TRIALS}/{p['trial']}" if "trial" in p else p["id"]

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

    def view(self, folder: Path, run_id: str | None = None) -> RunView:
        """RunView of ``folder``, reused while its files keep their sizes and times (a
        page polls /api/runs; a long run's events.jsonl holds thousands of lines)."""
        run_id = run_id or folder.name
        key = stamp(folder)
        hit = self._views.get(run_id)
        if hit is not None and hit[0] == key:
            return hit[1]
        view = RunView(folder, run_id)
        self._views[run_id] = (key, view)
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
            folders = list_runs(self.root)
            swept = [f for f in folders if is_sweep(f)]     # one entry each, not a run
            sweeps = [self.sweeps.view(f).summary() for f in swept]
            views = [v for v in map(self.view, (f for f in folders if f not in swept))
                     if v.is_run]
            listed = [self.summary(v) for v in views]
            known = {r["id"] for r in listed}
            listed += [q for q in self._pending_views() if q["id"] not in known]
            for entries in (listed, sweeps):
                entries.sort(key=lambda r: (r["started"] or "9999", r["id"]), reverse=True)
            return {"runs": listed, "sweeps": sweeps}
        return JSONResponse(await run_in_threadpool(work))

    async def run(self, request: Request):
        folder = self.folder(request)
        if folder is None:
            return error(404, NO_RUN)
        return JSONResponse(await run_in_threadpool(
            lambda: self.summary(self.view(folder, self.run_id(request)), details=True)))

    async def sweep(self, request: Request):
        folder = security.run_dir(self.root, request.path_params["id"])
        if folder is None or not is_sweep(folder):
            return error(404, NO_SWEEP)
        return JSONResponse(await run_in_threadpool(
            lambda: self.sweeps.view(folder).details()))

    async def report(self, request: Request):
        folder = self.folder(request)
        if folder is None:
            return error(404, NO_RUN)
        return await self._report(folder, self.run_id(request))

    async def sweep_report(self, request: Request):
        folder = security.run_dir(self.root, request.path_params["id"])
        if folder is None or not is_sweep(folder):
            return error(404, NO_SWEEP)
        return await self._report(folder, folder.name)     # a sweep's name is no run's

    async def _report(self, folder: Path, key: str):
        try:
            body = await run_in_threadpool(self.reports.page, folder, key)
        except BarepropError as exc:
            return error(409, str(exc))
        return Response(body, media_type="text/html", headers=REPORT_HEADERS)

    def _loaded(self, folder: Path, run_id: str):
        model = security.safe_file(folder, MODEL)
        if model is None:
            raise ModelFileError("this run has no model.npz yet; wait for it to finish, "
                                 "or pick a finished run")
        return self.models.get(run_id, model)

    async def model(self, request: Request):
        folder = self.folder(request)
        if folder is None:
            return error(404, NO_RUN)
        try:
            loaded = await run_in_threadpool(self._loaded, folder, self.run_id(request))
        except BarepropError as exc:
            return error(409, str(exc))
        return JSONResponse(loaded.description)

    async def predict(self, request: Request):
        folder = self.folder(request)
        if folder is None:
            return error(404, NO_RUN)
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
            loaded = self._loaded(folder, self.run_id(request))
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
        if self.folder(request) is None:
            return error(404, NO_RUN)
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
            return error(404, NO_RUN)
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
            return error(404, NO_RUN)
        run_id = self.run_id(request)
        stream = event_stream(request, folder, partial(self._state, run_id=run_id),
                              self.jobs.state, run_id=run_id)
        return StreamingResponse(stream, media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache",
                                          "X-Accel-Buffering": "no"})

    def _state(self, folder: Path, run_id: str | None = None) -> dict:
        view = self.view(folder, run_id)
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
        Route("/api/sweeps/{id}", api.sweep),
        Route("/api/sweeps/{id}/report", api.sweep_report),
        # a sweep's trial, as any run (read-only: its sweep starts and stops it)
        Route("/api/runs/{sweep}/trials/{trial}", api.run),
        Route("/api/runs/{sweep}/trials/{trial}/report", api.report),
        Route("/api/runs/{sweep}/trials/{trial}/model", api.model),
        Route("/api/runs/{sweep}/trials/{trial}/events", api.events),
        Route("/api/runs/{sweep}/trials/{trial}/predict", api.predict, methods=["POST"]),
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
