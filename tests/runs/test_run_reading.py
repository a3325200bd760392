"""The run-folder readers hold bounded memory whatever a file holds, and never read
through a link: Tail cuts a line that never ends, scan_events keeps the latest attempt
(as latest_attempt says) with its batches thinned evenly, open_read refuses links, FIFOs
and folders."""
import json
import os
import random

import pytest

from bareprop.runs.read import (MAX_BATCHES, MAX_LINE, Tail, latest_attempt, open_read,
                                scan_events)


def write_lines(path, lines, end=b"\n"):
    with open(path, "ab") as f:
        for line in lines:
            f.write((line if isinstance(line, bytes) else json.dumps(line).encode()) + end)


def test_tail_cuts_a_line_that_never_ends(tmp_path):
    tail = Tail(tmp_path, "job.log")
    assert tail.lines() == []                           # missing: nothing, no error
    with open(tmp_path / "job.log", "wb") as f:
        f.write(b"first\n" + b"z" * (5 << 20))          # 5 MiB and no end
    seen = []
    for _ in range(8):
        seen += tail.lines()
        assert len(tail.rest) <= MAX_LINE
    assert seen == [b"first", b"z" * MAX_LINE]         # given once, cut
    with open(tmp_path / "job.log", "ab") as f:
        f.write(b"zzz\nnext\nhalf")
    assert tail.lines() == [b"next"]                    # the rest of the long one skipped
    with open(tmp_path / "job.log", "ab") as f:
        f.write(b" done\n")
    assert tail.lines() == [b"half done"]


def test_tail_and_open_read_never_follow_a_link(tmp_path):
    outside = tmp_path / "outside.txt"
    outside.write_text("secret\n")
    run = tmp_path / "run"
    run.mkdir()
    (run / "events.jsonl").symlink_to(outside)
    os.mkfifo(run / "job.log")                          # no writer: a plain open would block
    (run / "tensorboard").mkdir()
    for name in ("events.jsonl", "job.log", "tensorboard", "missing"):
        assert open_read(run, name) is None
        assert Tail(run, name).lines() == []
    assert scan_events(run).tail is None
    with pytest.raises(ValueError):
        open_read(run, "../outside.txt")


def random_run(seed):
    """Events of a run stopped and resumed a few times, as train --events writes them."""
    rng = random.Random(seed)
    events, step, epoch = [], 0, 0
    for _ in range(rng.randint(1, 4)):
        events.append({"event": "state", "state": "running", "t": 1.0})
        for _ in range(rng.randint(0, 5)):
            for _ in range(rng.randint(1, 30)):
                step += 1
                events.append({"event": "batch", "step": step, "loss": rng.random()})
            epoch += 1
            events.append({"event": "epoch", "epoch": epoch, "train_loss": rng.random()})
        events.append({"event": "state", "state": "stopped"})
        back = rng.randint(0, epoch)                   # resumed from this epoch's start
        epoch, step = back, max(0, step - rng.randint(0, step))
    return events


@pytest.mark.parametrize("seed", range(20))
def test_scan_events_keeps_the_latest_attempt(tmp_path, seed):
    events = random_run(seed)
    write_lines(tmp_path / "events.jsonl", events)
    got = scan_events(tmp_path)
    want = latest_attempt(events)
    assert got.epoch_events() == [e for e in want if e["event"] == "epoch"]
    assert got.batch_events() == [e for e in want if e["event"] == "batch"]
    assert got.replay() == [e for e in want if e["event"] in ("batch", "epoch")]
    states = [e for e in events if e["event"] == "state"]
    assert (got.first_state, got.last_state) == (states[0], states[-1])


def test_scan_events_thins_batches_evenly_and_skips_what_is_no_event(tmp_path):
    n = 5 * MAX_BATCHES + 3
    lines = [{"event": "batch", "step": s, "loss": 1.0, "note": "x" * 50} for s in range(1, n + 1)]
    lines[10] = b"{not json"
    lines[11] = b'{"event": "batch", "step": NaN}'
    lines[12] = b'{"event": "batch", "step": 1e999}'
    lines[13] = b"[" * 100_000 + b"]" * 100_000        # deeper than json can parse, and long
    write_lines(tmp_path / "events.jsonl", lines)
    got = scan_events(tmp_path)
    steps = [e["step"] for e in got.batch_events()]
    assert MAX_BATCHES // 2 <= len(steps) <= MAX_BATCHES + 1
    assert steps[-1] == n                               # the newest always
    gaps = {b - a for a, b in zip(steps, steps[1:-1])}
    assert len(gaps) == 1                               # evenly spaced
    assert all("note" not in e for e in got.batch_events())   # numbers only
    assert got.tail.offset == os.path.getsize(tmp_path / "events.jsonl")
    write_lines(tmp_path / "events.jsonl", [{"event": "epoch", "epoch": 1}])
    assert [json.loads(x) for x in got.tail.lines()] == [{"event": "epoch", "epoch": 1}]
