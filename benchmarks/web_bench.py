"""Measure ``bareprop serve`` against the targets of docs/web.md:

1. predict round trip (PNG upload -> JSON), p50/p95 over --requests requests, for a
   default-preset MLP and a cnn-preset model (target p95 <= 30 ms and <= 100 ms);
2. event latency: a batch event's time of writing (its "t") to its arrival at an SSE
   client (target <= 0.5 s);
3. training slowdown: the median epoch time of one training job alone, and with a
   client calling predict every --poll seconds meanwhile (target <= 5 %).

The server is a real ``bareprop serve`` subprocess; requests go over a keep-alive HTTP
connection, as a browser's do. Models: --mlp/--cnn run folders, or (default) trained
here for one epoch on --data-dir (latency depends on the architecture, not on how well
it was trained). Run on a quiet machine:

    python benchmarks/web_bench.py --data-dir /path/to/data --out web_bench.json

and ``--tiny`` for a smoke run (synthetic data, few requests; figures meaningless).
"""
from __future__ import annotations

import argparse
import http.client
import io
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
LINE = re.compile(r"^http://127\.0\.0\.1:(\d+)/\?token=(\S+)$")
#: the Draw page's explanations timed on the cnn model -> their p95 target in ms
EXPLAIN_TARGETS = {"saliency": 100, "gradcam": 100, "integrated-gradients": 500}


def env() -> dict:
    return dict(os.environ, PYTHONPATH=os.pathsep.join(
        p for p in (str(ROOT / "src"), os.environ.get("PYTHONPATH")) if p))


def bareprop(*args, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bareprop", *map(str, args)], env=env(),
                          check=True, capture_output=True, text=True, **kw)


def synthetic_data(folder: Path, n_train: int) -> Path:
    """A learnable IDX set (a bright band whose row is the label) in folder/mnist."""
    from bareprop.data import write_idx
    from bareprop.data.registry import STANDARD_FILES

    rng = np.random.default_rng(0)
    arrays = {}
    for part, n in (("train", n_train), ("test", 500)):
        y = rng.integers(0, 10, n).astype(np.uint8)
        x = rng.integers(0, 60, (n, 28, 28)).astype(np.uint8)
        for i, label in enumerate(y):
            x[i, 2 + 2 * label:4 + 2 * label, 4:24] = 220
        arrays[f"{part}_images"], arrays[f"{part}_labels"] = x, y
    (folder / "mnist").mkdir(parents=True, exist_ok=True)
    for role, name in STANDARD_FILES.items():
        write_idx(folder / "mnist" / name, arrays[role])
    return folder


def digit_png() -> bytes:
    """A 280x280 canvas-like PNG of a hand-drawn 7 (dark ink on white)."""
    from PIL import Image, ImageDraw

    im = Image.new("RGBA", (280, 280), (255, 255, 255, 255))
    d = ImageDraw.Draw(im)
    d.line([(70, 60), (210, 60), (120, 230)], fill=(0, 0, 0, 255), width=22, joint="curve")
    buf = io.BytesIO()
    im.save(buf, "PNG")
    return buf.getvalue()


class Server:
    def __init__(self, runs: Path, data: Path | None, verify: bool):
        cmd = [sys.executable, "-m", "bareprop", "serve", str(runs)]
        if data:
            cmd += ["--data-dir", str(data)]
        if not verify:
            cmd += ["--no-verify"]
        self.proc = subprocess.Popen(cmd, env=env(), stdout=subprocess.PIPE, text=True)
        m = LINE.match(self.proc.stdout.readline().strip())
        if not m:
            raise SystemExit("bareprop serve did not print its address line")
        self.port, self.token = int(m.group(1)), m.group(2)
        for _ in range(200):
            try:
                self.request("GET", "/api/jobs")
                return
            except OSError:
                time.sleep(0.05)

    def connect(self) -> http.client.HTTPConnection:
        """A keep-alive connection with Nagle's algorithm off, as browsers open them (with
        it on, a body sent after its headers waits ~40 ms for a delayed ACK)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        conn.connect()
        conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return conn

    def request(self, method, path, body=None, ctype=None, conn=None):
        own = conn is None
        conn = conn or self.connect()
        headers = {"Authorization": f"Bearer {self.token}"}
        if ctype:
            headers["Content-Type"] = ctype
        conn.request(method, path, body=body, headers=headers)
        r = conn.getresponse()
        data = r.read()
        if own:
            conn.close()
        if r.status >= 400:
            raise RuntimeError(f"{method} {path}: {r.status} {data[:200]!r}")
        return json.loads(data) if data[:1] in (b"{", b"[") else data

    def train(self, form: dict) -> str:
        return self.request("POST", "/api/train", json.dumps(form).encode(),
                            "application/json")["id"]

    def wait(self, run_id: str, timeout: float = 3600) -> dict:
        deadline = time.time() + timeout
        while time.time() < deadline:
            d = self.request("GET", f"/api/runs/{run_id}")
            if d["state"] not in ("queued", "running", "stopping"):
                return d
            time.sleep(0.2)
        raise RuntimeError(f"{run_id} did not finish in {timeout} s")

    def close(self):
        self.proc.send_signal(signal.SIGINT)
        self.proc.wait(60)


def percentiles(seconds: list[float]) -> dict:
    ms = np.asarray(seconds) * 1e3
    return {"n": len(ms), "p50_ms": float(np.percentile(ms, 50)),
            "p95_ms": float(np.percentile(ms, 95)), "max_ms": float(ms.max())}


def predict_latency(server: Server, run_id: str, png: bytes, n: int, query: str) -> dict:
    conn = server.connect()
    path = f"/api/runs/{run_id}/predict{query}"
    for _ in range(5):                                       # load the model, warm up
        server.request("POST", path, png, "image/png", conn)
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        server.request("POST", path, png, "image/png", conn)
        times.append(time.perf_counter() - t0)
    conn.close()
    return percentiles(times)


def event_latency(server: Server, form: dict) -> dict:
    """Delay from a batch event's writing to its arrival over SSE, for one job."""
    run_id = server.train(form)
    conn = server.connect()
    conn.request("GET", f"/api/runs/{run_id}/events",
                 headers={"Authorization": f"Bearer {server.token}"})
    r = conn.getresponse()
    delays, kind, live = [], None, False
    for raw in r:
        line = raw.decode().rstrip("\n")
        if line.startswith("event: "):
            kind = line[7:]
        elif line.startswith("data: "):
            data, now = json.loads(line[6:]), time.time()
            if kind == "state":
                live = data["state"] == "running" or live
                if data["state"] not in ("queued", "running"):
                    break
            elif kind == "batch" and live:
                delays.append(now - data["t"])
    conn.close()
    server.wait(run_id)
    return percentiles(delays) if delays else {"n": 0}


def epoch_seconds(runs: Path, run_id: str) -> list[float]:
    m = json.loads((runs / run_id / "metrics.json").read_text())
    return [e["seconds"] for e in m["history"]]


def watch(server: Server, run_id: str) -> None:
    """Read a run's event stream to its end, as the Train page does."""
    conn = server.connect()
    conn.request("GET", f"/api/runs/{run_id}/events",
                 headers={"Authorization": f"Bearer {server.token}"})
    for _ in conn.getresponse():
        pass
    conn.close()


def cpu_seconds(pid: int) -> float | None:
    """CPU time (user + system, every thread) a process has used so far; None where
    /proc cannot say (not Linux)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def slowdown(server: Server, runs: Path, form: dict, mlp: str, png: bytes,
             poll: float, pairs: int) -> dict:
    """Median epoch time of ``pairs`` jobs alone and ``pairs`` jobs with a client
    predicting every ``poll`` s and another reading the job's event stream, alternated (alone, serving, alone, ...) so a drift of
    the machine's speed falls on both sides."""
    alone, serving, count = [], [], [0]
    cpu = {"alone": [0.0, 0.0], "serving": [0.0, 0.0]}     # server CPU s, wall s

    def timed(side: str, run_id: str) -> str:
        c, t = cpu_seconds(server.proc.pid), time.perf_counter()
        server.wait(run_id)
        if c is not None:
            cpu[side][0] += cpu_seconds(server.proc.pid) - c
        cpu[side][1] += time.perf_counter() - t
        return run_id
    for _ in range(pairs):
        alone += epoch_seconds(runs, timed("alone", server.train(form)))
        stop = threading.Event()

        def client():
            conn = server.connect()
            while not stop.is_set():
                server.request("POST", f"/api/runs/{mlp}/predict?maps=u8", png,
                               "image/png", conn)
                count[0] += 1
                time.sleep(poll)
            conn.close()

        run_id = server.train(form)
        threads = [threading.Thread(target=client),       # the Draw page, drawing
                   threading.Thread(target=watch, args=(server, run_id))]  # Train page
        for t in threads:
            t.start()
        try:
            timed("serving", run_id)
        finally:
            stop.set()
            for t in threads:
                t.join()
        serving += epoch_seconds(runs, run_id)
    a, s = float(np.median(alone)), float(np.median(serving))
    return {"epoch_s_alone": a, "epoch_s_serving": s, "epochs_each": len(alone),
            "epochs_alone": alone, "epochs_serving": serving,
            "predicts": count[0], "poll_s": poll, "slowdown_pct": 100.0 * (s / a - 1.0),
            # the server's own CPU use while a job ran, in % of one core
            "server_cpu_pct": {k: 100.0 * c / w for k, (c, w) in cpu.items() if w > 0}}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir", help="folder holding mnist/ (default: a synthetic set)")
    p.add_argument("--mlp", help="run folder of a default-preset model (default: train one)")
    p.add_argument("--cnn", help="run folder of a cnn-preset model (default: train one)")
    p.add_argument("--requests", type=int, default=200)
    p.add_argument("--train-epochs", type=int, default=3,
                   help="epochs of the job timed for event latency and slowdown")
    p.add_argument("--poll", type=float, default=0.1,
                   help="seconds between the concurrent client's predicts")
    p.add_argument("--pairs", type=int, default=2,
                   help="jobs timed alone and with the client, alternated (default 2 each)")
    p.add_argument("--tiny", action="store_true", help="smoke run: synthetic data, 20 requests")
    p.add_argument("--out", help="write the results as JSON here too")
    args = p.parse_args(argv)
    if args.tiny:
        args.requests, args.train_epochs, args.data_dir, args.pairs = 20, 1, None, 1
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data = Path(args.data_dir).resolve() if args.data_dir else \
            synthetic_data(tmp / "data", 2000 if args.tiny else 60000)
        verify = args.data_dir is not None
        runs = tmp / "runs"
        runs.mkdir()
        flags = ["--data-dir", data, "--quiet", "--epochs", "1"] + ([] if verify else
                                                                   ["--no-verify"])
        for name, given, preset in (("mlp", args.mlp, "default"), ("cnn", args.cnn, "cnn")):
            if given:                       # copied: the server refuses symlinked runs
                shutil.copytree(given, runs / name)
            else:
                bareprop("train", "--preset", preset, "--out", runs / name, *flags)
        server = Server(runs, data, verify)
        png = digit_png()
        try:
            results = {
                "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                            "python": platform.python_version()},
                "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
                "predict_mlp": predict_latency(server, "mlp", png, args.requests, "?maps=u8"),
                "predict_cnn": predict_latency(server, "cnn", png, args.requests, "?maps=u8"),
                "predict_cnn_float_maps": predict_latency(server, "cnn", png, args.requests, ""),
            }
            for method in EXPLAIN_TARGETS:                                    # the Why card
                results[f"explain_cnn_{method}"] = predict_latency(
                    server, "cnn", png, args.requests, f"?maps=u8&explain={method}")
            form = {"preset": "default", "epochs": args.train_epochs}
            results["event_latency"] = event_latency(server, form)
            results["training_slowdown"] = slowdown(server, runs, form, "mlp", png, args.poll,
                                                    args.pairs)
        finally:
            server.close()
    print(report(results))
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=1))
    return 0


def report(r: dict) -> str:
    rows = [("predict, default MLP (p95 <= 30 ms)", r["predict_mlp"]),
            ("predict, cnn preset (p95 <= 100 ms)", r["predict_cnn"]),
            ("predict, cnn preset, float maps", r["predict_cnn_float_maps"]),
            ("batch event -> SSE client (<= 500 ms)", r["event_latency"])] + [
            (f"predict + {m}, cnn preset (p95 <= {limit} ms)", r[f"explain_cnn_{m}"])
            for m, limit in EXPLAIN_TARGETS.items() if f"explain_cnn_{m}" in r]
    out = [f"{r['date']}, {r['machine']['platform']}, {r['machine']['cpus']} CPUs",
           f"command: {r['command']}", "",
           "| measurement | n | p50 ms | p95 ms | max ms |", "|---|---|---|---|---|"]
    for name, m in rows:
        if m.get("n"):
            out.append(f"| {name} | {m['n']} | {m['p50_ms']:.1f} | {m['p95_ms']:.1f} | "
                       f"{m['max_ms']:.1f} |")
    s = r["training_slowdown"]
    out += ["", f"training slowdown with a client predicting every {s['poll_s']} s "
                f"({s['predicts']} predicts; {s['epochs_each']} epochs each): median epoch {s['epoch_s_alone']:.3f} s alone, "
                f"{s['epoch_s_serving']:.3f} s serving: {s['slowdown_pct']:+.1f} % (<= 5 %)"]
    if s.get("server_cpu_pct"):
        out.append("the server's CPU use while the job ran: " + ", ".join(
            f"{v:.1f} % of a core {k}" for k, v in s["server_cpu_pct"].items()))
    return "\n".join(out)


if __name__ == "__main__":
    sys.exit(main())
