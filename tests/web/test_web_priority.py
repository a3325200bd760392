"""The predict path gives way to the training jobs (web/priority.py): predicts run on
threads of lowered priority, and nothing else does - not the server's other threads, and
not a job started after them."""
from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("starlette")
pytest.importorskip("httpx")

from bareprop.web import infer, priority  # noqa: E402
from webruns import AUTH, client, digit_png, env, make_runs  # noqa: E402,F401

linux = pytest.mark.skipif(not sys.platform.startswith("linux"),
                           reason="thread priorities are lowered on Linux only")


def _nice(tid: int) -> int:
    return os.getpriority(os.PRIO_PROCESS, tid)


@linux
def test_lowering_touches_the_calling_thread_only():
    main = _nice(threading.get_native_id())
    seen = {}

    def lowered():
        seen["ok"] = priority.lower_this_thread()
        seen["nice"] = _nice(threading.get_native_id())
    t = threading.Thread(target=lowered)
    t.start()
    t.join()
    assert seen == {"ok": True, "nice": max(main, priority.NICE)}
    assert _nice(threading.get_native_id()) == main and _nice(0) == main


@linux
def test_predicts_run_gently_and_a_job_started_after_them_does_not(client, env,
                                                                   monkeypatch):
    where = []
    predict = infer.LoadedModel.predict

    def spy(self, *args, **kw):
        where.append((threading.current_thread().name, _nice(threading.get_native_id())))
        return predict(self, *args, **kw)
    monkeypatch.setattr(infer.LoadedModel, "predict", spy)
    for _ in range(3):
        r = client.post("/api/runs/cnn/predict?maps=u8", content=digit_png(),
                        headers={**AUTH, "Content-Type": "image/png"})
        assert r.status_code == 200 and "probabilities" in r.json()
    ours = _nice(0)
    assert where and all(name.startswith("bareprop-predict") and nice == max(ours, 10)
                         for name, nice in where)
    r = client.post("/api/train", json={"preset": "default", "epochs": 1, "hidden": [8]},
                    headers=AUTH)
    assert r.status_code == 202
    children = []
    for _ in range(100):                     # the job's process, a child of this one
        children = [p for p in Path("/proc").iterdir() if p.name.isdigit() and
                    _parent(p) == os.getpid() and b"train" in _cmdline(p)]
        if children:
            break
        time.sleep(0.05)
    assert children, "no training job process found"
    assert all(_nice(int(p.name)) == ours for p in children)
    assert _nice(threading.get_native_id()) == ours


def _parent(proc: Path) -> int | None:
    try:
        return int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def _cmdline(proc: Path) -> bytes:
    try:
        return (proc / "cmdline").read_bytes()
    except OSError:
        return b""
