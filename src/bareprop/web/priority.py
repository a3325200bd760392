"""The predict path's threads, which give way to the training jobs.

A job is a ``bareprop train`` subprocess whose two BLAS threads work in lock step on
both cores: a few milliseconds a predict takes from either core stall them both, so
the Draw page's predicts every 0.1 s slowed a job by far more than their share of the
machine (docs/web.md: +15 % and more, for the server's ~4 % of two cores). Predicts and
their explanations run here instead, on threads that lower their own priority once
(Linux: the thread's nice value, +10; the jobs and the server's other threads keep
theirs). The kernel's scheduler then lets a predict wait for a core the job is not using
rather than preempt the job (a nice-10 thread weighs about a tenth of a nice-0 one),
and a predict's few milliseconds still finish well within the page's 100 ms.

Only threads are lowered, never a process: on Linux ``setpriority`` with a thread's id
acts on that thread alone. Elsewhere (where a thread id is no process id) nothing is
changed.
"""
from __future__ import annotations

import asyncio
import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

#: the nice value the predict threads take (0 is the default, 19 the lowest priority)
NICE = 10


def lower_this_thread(nice: int = NICE) -> bool:
    """Give the calling thread the nice value ``nice`` (Linux only; never a raise, which
    an unprivileged thread may do, and only this thread): whether it now has it."""
    if not sys.platform.startswith("linux") or not hasattr(os, "setpriority"):
        return False
    tid = threading.get_native_id()
    try:
        if os.getpriority(os.PRIO_PROCESS, tid) < nice:
            os.setpriority(os.PRIO_PROCESS, tid, nice)
        return os.getpriority(os.PRIO_PROCESS, tid) == nice
    except OSError:
        return False


class GentlePool:
    """A small pool of low-priority threads for the server's inference work."""

    def __init__(self, workers: int = 2):
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="bareprop-predict",
                                        initializer=lower_this_thread)

    async def run(self, fn):
        """fn() on one of the pool's threads, awaited."""
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
