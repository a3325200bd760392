"""``bareprop serve [RUNS_DIR]``: the local web app (docs/web.md) on 127.0.0.1.

Prints one line, ``http://127.0.0.1:PORT/?token=TOKEN``, then serves until Ctrl-C.
Needs the web extra (``pip install 'bareprop[web]'``).
"""
from __future__ import annotations

import argparse
import socket
import sys
from pathlib import Path

from ..errors import ConfigError
from .args import positive_int


def add_parser(sub) -> None:
    p = sub.add_parser("serve", help="a local web app: draw digits, look inside models, "
                                     "train and watch runs live",
                       description="Serve the runs in RUNS_DIR to a browser on this machine. "
                                   "Open the printed address (it holds the access token).")
    p.add_argument("runs_dir", nargs="?", default="runs", metavar="RUNS_DIR",
                   help="the folder of run folders (default: runs)")
    p.add_argument("--port", type=int, default=0, help="port (default: a free one)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--max-jobs", dest="max_jobs", type=positive_int, default=1,
                   help="trainings run at once; the rest queue (default 1)")
    p.add_argument("--data-dir", dest="data_dir",
                   help="dataset folder the training jobs read (as train --data-dir)")
    p.add_argument("--no-verify", dest="verify", action="store_false",
                   help="training jobs skip the content checksum of local data files")
    p.add_argument("--no-browser", dest="browser", action="store_false",
                   help="do not open a browser (the default: print the address only)")
    p.add_argument("--open", dest="open_browser", action="store_true",
                   help="open the address in the default browser")
    p.set_defaults(run=run)


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on host:port (0: a free port), made here rather than by uvicorn
    so a port in use is one line, and the printed port is the one already listening."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # inherited by every accepted connection: without it a small response body,
        # written after its headers, waits for the client's delayed ACK (~40 ms a
        # predict, measured with Python's http.client; 0.3 ms with it)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind((host, port))
        sock.listen(128)
    except (socket.gaierror, UnicodeError) as exc:
        sock.close()
        raise ConfigError(f"--host {host!r} is not an address of this machine ({exc}); "
                          "use 127.0.0.1") from None
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror}; pick another "
                          "--port (or leave it out for a free one)") from None
    return sock


def one_blas_thread():
    """Limit the server's own BLAS to one thread (the jobs, other processes, keep theirs).

    A predict is a batch of one: one thread computes it as fast as two. But OpenBLAS's
    worker threads spin after every call (see core/threads.py), and a server answering
    a drawing user spins the core a concurrent training job needs. Needs threadpoolctl
    (in the web extra); without it the limit is skipped."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return None
    return threadpool_limits(limits=1, user_api="blas")


def run(args: argparse.Namespace) -> int:
    from ..web import require_web

    require_web()
    if not 0 <= args.port <= 65535:
        raise ConfigError(f"--port must be between 0 and 65535, got {args.port}")
    if not args.host.strip():       # '' would bind every interface
        raise ConfigError("--host is empty; give an address to listen on: 127.0.0.1 (this "
                          "machine only, the default) or 0.0.0.0 (every interface)")
    if args.data_dir is not None and not Path(args.data_dir).is_dir():
        raise ConfigError(f"--data-dir {args.data_dir}: no such folder; give the folder "
                          "that holds mnist/ (as for train --data-dir), or leave it out")
    import uvicorn

    from ..web.app import create_app
    from ..web.security import new_token

    root = Path(args.runs_dir)
    if root.exists() and not root.is_dir():
        raise ConfigError(f"{root} is a file, not a folder of runs; give RUNS_DIR a folder")
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create RUNS_DIR {root}: {exc.strerror}; give a folder "
                          "you can write to") from None
    data_dir = str(Path(args.data_dir).resolve()) if args.data_dir else None
    sock = bind(args.host, args.port)
    port = sock.getsockname()[1]
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"bareprop serve: warning: listening on {args.host}, reachable from other "
              "machines; anyone with the token can start jobs here", file=sys.stderr)
    token = new_token()
    app = create_app(root, token, host=args.host, port=port, max_jobs=args.max_jobs,
                     data_dir=data_dir, verify=args.verify)
    shown = args.host if args.host not in ("0.0.0.0", "::") else "127.0.0.1"
    shown = f"[{shown}]" if ":" in shown else shown
    url = f"http://{shown}:{port}/?token={token}"
    print(url, flush=True)
    if args.open_browser:
        import webbrowser

        webbrowser.open(url)
    one_blas_thread()
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on")
    uvicorn.Server(config).run(sockets=[sock])
    return 0
