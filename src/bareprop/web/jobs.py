"""Training jobs: ``bareprop train`` subprocesses, at most ``max_jobs`` at a time, the
rest queued in order.

Each job is ``python -m bareprop train ... --out RUNS_DIR/<id> --events --quiet`` (or
``--resume RUNS_DIR/<id>``), so it runs the CLI's own code and writes an ordinary run
folder; its stdout and stderr are appended to ``job.log`` in that folder (through
runs.writer, never through a link planted there). It runs in its own
session and process group: a crash (or a kill -9) of the job cannot take the server
down, and a Ctrl-C typed at the server's terminal does not reach it.

- stop: SIGINT to the job's process group. ``bareprop train`` ends as on Ctrl-C; the
  checkpoint of its last finished epoch (or of its start) stays, so it is resumable.
  A run this server did not start (from a shell, or a job of a server that was killed)
  is stopped the same way when its lock names a live process whose command line is
  ``bareprop train`` (or ``compare``) of that very folder (runs.process.runs_in);
  anything else is refused with one line saying where the run is and how to stop it.
- server shutdown: every running job gets the same SIGINT and is waited for (a few
  seconds), queued jobs are dropped; every run folder is left resumable.
- a job that exits with anything but 0 (finished) or 130 (interrupted) is "failed",
  with the last ``bareprop: error:`` line (or the last line) of its log as the error.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import BarepropError, ConfigError
from ..runs.layout import CHECKPOINT, EVENTS, JOB_LOG, METRICS, MODEL
from ..runs.lock import Holder, live_holder, new_folder
from ..runs.process import runs_in
from ..runs.read import open_read
from ..runs.writer import check_links, open_append

INTERRUPTED = 130            # cli.main's exit status after KeyboardInterrupt
ACTIVE = ("queued", "running")


@dataclass
class Job:
    id: str
    folder: Path
    argv: list                       # the train flags of a fresh run (kept for a restart)
    resume: bool = False
    state: str = "queued"
    error: str | None = None
    proc: subprocess.Popen | None = None
    stop_requested: bool = False
    started: float | None = None
    ended: float | None = None
    returncode: int | None = None
    done: threading.Event = field(default_factory=threading.Event)


def failure(log: Path, code: int) -> str:
    """Why a job failed: its last ``bareprop: error:`` line; the signal that killed it;
    else the last line it wrote (a traceback's last line names the exception)."""
    line = last_error(log, errors_only=code < 0)
    if line:
        return line
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"the job was killed by {name} (exit {code}); resume it to continue"
    return f"the job exited with status {code}"


def last_error(log: Path, errors_only: bool = False) -> str | None:
    """The job's last ``bareprop: error:`` line, else (unless ``errors_only``) its last
    non-empty line (read from the log's last 64 KiB, never through a link)."""
    f = open_read(Path(log).parent, Path(log).name)
    if f is None:
        return None
    try:
        with f:
            f.seek(max(0, os.fstat(f.fileno()).st_size - 65536))
            lines = [ln.strip() for ln in f.read().decode("utf-8", "replace").splitlines()]
    except OSError:
        return None
    lines = [ln for ln in lines if ln]
    errors = [ln for ln in lines if ln.startswith("bareprop: error:")]
    line = errors[-1] if errors else (lines[-1] if lines and not errors_only else None)
    return line[:500] if line else None


class JobManager:
    def __init__(self, runs_root: Path, max_jobs: int = 1, data_dir: str | None = None,
                 verify: bool = True, python: str | None = None, poll: float = 0.1):
        # absolute: the jobs' --out must not depend on any process's working directory
        self.root, self.max_jobs, self.data_dir = Path(runs_root).resolve(), max_jobs, data_dir
        self.verify = verify
        self.python = python or sys.executable
        self.poll = poll
        self.jobs: dict[str, Job] = {}
        self.queue: list[str] = []
        self._lock = threading.RLock()
        self._wake = threading.Event()
        self._closing = False
        self._thread = threading.Thread(target=self._loop, name="bareprop-jobs", daemon=True)
        self._thread.start()

    # -- requests ---------------------------------------------------------------------
    def submit(self, argv: list[str]) -> Job:
        """Queue a fresh run with train flags ``argv`` (already validated) in a new folder."""
        with self._lock:
            folder = new_folder(self.root)
            job = Job(folder.name, folder, list(argv))
            self.jobs[job.id] = job
            self.queue.append(job.id)
        self._wake.set()
        return job

    def resume(self, run_id: str, folder: Path) -> Job:
        """Queue ``train --resume`` of the run in ``folder`` (a restart of a job stopped
        before it saved its first checkpoint)."""
        with self._lock:
            old = self.jobs.get(run_id)
            if old is not None and old.state in ACTIVE:
                raise ConfigError(f"run {run_id} is already {old.state}; stop it first")
            if live_holder(folder) is not None:
                raise ConfigError(f"run {run_id} is being trained by another process; "
                                  "wait for it to end")
            check_links(folder)      # the job would append to job.log and events.jsonl
            has_ckpt = (folder / CHECKPOINT).is_file()
            if not has_ckpt and (old is None or not old.argv):
                raise ConfigError(f"run {run_id} has no checkpoint.npz to resume from; "
                                  "start a new run instead")
            if (folder / MODEL).is_file() and (folder / METRICS).is_file():
                raise ConfigError(f"run {run_id} has finished; start a new run to train more")
            job = Job(run_id, folder, old.argv if old else [], resume=has_ckpt)
            self.jobs[run_id] = job
            self.queue.append(run_id)
        self._wake.set()
        return job

    def stop(self, run_id: str, wait: float = 10.0) -> Job | None:
        """Interrupt a running job (SIGINT to its group; waits up to ``wait`` s for it to
        save and exit) or drop a queued one; a run this server did not start, see
        ``_stop_elsewhere``. None when nothing trains there."""
        with self._lock:
            job = self.jobs.get(run_id)
            mine = job is not None and job.state in ACTIVE
            if mine:
                job.stop_requested = True
                if job.state == "queued":
                    self.queue.remove(run_id)
                    job.state, job.ended = "stopped", time.time()
                    job.done.set()
                    return job
                proc = job.proc
        if not mine:
            return self._stop_elsewhere(run_id, wait)
        _interrupt(proc)
        job.done.wait(wait)
        return job

    def _stop_elsewhere(self, run_id: str, wait: float) -> Job | None:
        """SIGINT to the live holder of the run's lock when it is ``bareprop train`` of
        this folder (a shell's run, or an orphan of a killed server); a Job record of the
        outcome (not kept), None when no process holds the folder, ConfigError (one line)
        when the holder is not one this server can tell is that run."""
        folder = self.root / run_id
        holder = live_holder(folder)
        if holder is None:
            return None
        if not runs_in(holder.pid, folder):
            raise ConfigError(f"run {run_id} is trained by process {holder.pid}, which this "
                              "server cannot stop; stop it where it runs (Ctrl-C there, or "
                              f"kill -INT {holder.pid})")
        _interrupt_holder(holder)
        deadline = time.time() + wait
        while time.time() < deadline and live_holder(folder) == holder:
            time.sleep(0.05)
        gone = live_holder(folder) != holder
        return Job(run_id, folder, [], state="stopped" if gone else "running",
                   stop_requested=True)

    def state(self, run_id: str) -> Job | None:
        with self._lock:
            return self.jobs.get(run_id)

    def summary(self) -> dict:
        with self._lock:
            return {"max_jobs": self.max_jobs,
                    "running": [j.id for j in self.jobs.values() if j.state == "running"],
                    "queued": list(self.queue)}

    def close(self, wait: float = 15.0) -> None:
        """Server shutdown: drop the queue, SIGINT every running job, wait for them."""
        with self._lock:
            self._closing = True
            for run_id in self.queue:
                job = self.jobs[run_id]
                job.state = "stopped"
                try:
                    job.folder.rmdir()            # a queued fresh run left nothing there
                except OSError:
                    pass
            self.queue.clear()
            running = [j for j in self.jobs.values() if j.state == "running"]
        for job in running:
            job.stop_requested = True
            _interrupt(job.proc)
        deadline = time.time() + wait
        for job in running:
            try:
                job.proc.wait(max(0.1, deadline - time.time()))
            except subprocess.TimeoutExpired:
                pass
        self._wake.set()

    # -- the scheduler thread ---------------------------------------------------------
    def _loop(self) -> None:
        while not self._closing:
            self._wake.wait(self.poll)
            self._wake.clear()
            try:
                self._reap()
                self._start_queued()
            except Exception as exc:          # never let the scheduler die silently
                print(f"bareprop serve: job scheduler: {exc}", file=sys.stderr, flush=True)

    def _reap(self) -> None:
        with self._lock:
            running = [j for j in self.jobs.values() if j.state == "running"]
        for job in running:
            code = job.proc.poll()
            if code is None:
                continue
            job.returncode, job.ended = code, time.time()
            if code == 0:
                job.state = "finished"
            elif code == INTERRUPTED or (job.stop_requested and code < 0):
                job.state = "stopped"
            else:
                job.state = "failed"
                job.error = failure(job.folder / JOB_LOG, code)
                _note_failure(job.folder, job.error)
            job.done.set()

    def _start_queued(self) -> None:
        with self._lock:
            while self.queue and sum(j.state == "running" for j in self.jobs.values()) \
                    < self.max_jobs and not self._closing:
                job = self.jobs[self.queue.pop(0)]
                try:
                    self._spawn(job)
                except (OSError, BarepropError) as exc:   # BarepropError: job.log refused
                    job.state, job.error = "failed", f"cannot start the job: {exc}"
                    job.done.set()

    def command(self, job: Job) -> list[str]:
        """The argv of the job's process (no shell: user values are single arguments)."""
        base = [self.python, "-m", "bareprop", "train"]
        extra = ["--events", "--quiet"]
        if self.data_dir:
            extra += ["--data-dir", self.data_dir]
        if not self.verify:
            extra += ["--no-verify"]
        if job.resume:
            return base + ["--resume", str(job.folder), *extra]
        # a restart of a job stopped before its first checkpoint replaces what it left
        overwrite = ["--overwrite"] if any(job.folder.iterdir()) else []
        return base + [*job.argv, "--out", str(job.folder), *overwrite, *extra]

    def _spawn(self, job: Job) -> None:
        log = open_append(job.folder, JOB_LOG)
        try:
            job.proc = subprocess.Popen(self.command(job), stdin=subprocess.DEVNULL,
                                        stdout=log, stderr=subprocess.STDOUT,
                                        start_new_session=True, env=_child_env())
        finally:
            log.close()
        job.state, job.started, job.error = "running", time.time(), None


def _interrupt(proc: subprocess.Popen | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGINT)     # its own group: start_new_session
    except (ProcessLookupError, PermissionError):
        pass


def _interrupt_holder(holder: Holder) -> None:
    """SIGINT to a lock's holder (its group when it leads one, as a job of a server
    does), after checking once more that the pid is still that process."""
    if not holder.holds():
        return
    try:
        if os.getpgid(holder.pid) == holder.pid:
            os.killpg(holder.pid, signal.SIGINT)
        else:
            os.kill(holder.pid, signal.SIGINT)
    except (ProcessLookupError, PermissionError):
        pass


def _child_env() -> dict:
    env = dict(os.environ)
    # the job imports the same bareprop as the server, installed or from a checkout
    src = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _note_failure(folder: Path, error: str) -> None:
    """Record a crash the job could not record itself (killed, segfault) in its events,
    so the failure survives a server restart (not through a link planted there)."""
    try:
        with open_append(folder, EVENTS, encoding="utf-8") as f:
            f.write(json.dumps({"event": "state", "state": "failed", "error": error,
                                "t": time.time()}) + "\n")
    except (OSError, BarepropError):
        pass
