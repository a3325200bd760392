"""The event stream of one run (server-sent events): what the page's live charts read.

On connect the run so far is replayed (its events.jsonl as runs.read.scan_events keeps
it: the latest attempt of an epoch a resume trained again, batches evenly thinned past a
few thousand; or a finished CLI run's epochs), then new lines of events.jsonl and of
job.log (from its last LOG_REPLAY_BYTES) are forwarded as they are written: the files
are polled every ``poll`` seconds, so an event reaches the page within about that of
being written. Both are read through runs.read.Tail: never through a link, and never
more than a line of runs.read.MAX_LINE held, whatever the files hold.
"""
from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

from starlette.concurrency import run_in_threadpool

from ..runs.layout import EVENTS, JOB_LOG
from ..runs.read import Tail, parse_event, scan_events
from .jobs import ACTIVE
from .runs import RunView

LOG_REPLAY_BYTES = 64 << 10     # of job.log sent on connect (the page shows 400 lines)


async def event_stream(request, folder: Path, state_of, job_of, poll: float = 0.05,
                       run_id: str | None = None):
    """Replay the run so far, then tail events.jsonl and job.log until the run is
    no longer running or queued (a final ``state`` event ends the stream).

    state_of(folder) -> {"state", "error", "test_accuracy"} (blocking: run in a thread);
    job_of(run_id) -> the server's Job or None; ``run_id``: the folder's name, or a
    sweep's trial's ``SWEEP/trials/NNNN`` (no job of this server)."""
    state = await run_in_threadpool(state_of, folder)
    so_far = await run_in_threadpool(scan_events, folder)
    if so_far.tail is None:                 # no events.jsonl: a CLI run's saved history
        view = await run_in_threadpool(RunView, folder)
        for e in view.epochs():
            yield sse("epoch", {**e, "epochs": view.cfg.get("epochs")})
    yield sse("state", state)
    for e in so_far.replay():
        e = dict(e)
        yield sse(e.pop("event"), e)
    tails = {"events": so_far.tail or Tail(folder, EVENTS),
             "log": await run_in_threadpool(Tail.last, folder, JOB_LOG, LOG_REPLAY_BYTES)}
    del so_far
    last_state = state["state"]
    checked = time.monotonic() if last_state in ACTIVE else 0.0   # ended: finish now
    while True:
        for line in tails["events"].lines():
            e = parse_event(line)
            if e is not None and e.get("event") in ("batch", "epoch"):
                yield sse(e.pop("event"), e)
        for line in tails["log"].lines():
            yield sse("log", {"line": line.decode("utf-8", "replace")[:2000]})
        job = job_of(run_id or folder.name)
        # the folder is read again when this server's job changes state, else twice
        # a second (a run from a shell, or a job that just ended); events are tailed
        # every poll whatever the state
        moved = job is not None and job.state in ACTIVE and job.state != last_state
        if moved or time.monotonic() - checked > 0.5:
            state = await run_in_threadpool(state_of, folder)
            checked = time.monotonic()
            if state["state"] != last_state:
                last_state = state["state"]
                if last_state in ACTIVE:
                    yield sse("state", state)
            if last_state not in ACTIVE:
                # what the job wrote as it ended, then the final state
                for line in tails["events"].lines():
                    e = parse_event(line)
                    if e is not None and e.get("event") in ("batch", "epoch"):
                        yield sse(e.pop("event"), e)
                yield sse("state", state)
                return
        if await request.is_disconnected():
            return
        await asyncio.sleep(poll)


def sse(event: str, data: dict) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n".encode()
