"""What keeps a local server that can start jobs from being used by other web pages.

- the token: ``secrets.token_urlsafe``, required on every API call (cookie set by the
  printed URL, or ``Authorization: Bearer``/``X-Bareprop-Token``), compared in constant
  time;
- the Host header must name this server (a DNS-rebinding page's host does not);
- a POST whose Origin is not this server's own is refused (CSRF);
- run ids are one path component of a strict alphabet, and the folder they name must
  resolve inside RUNS_DIR without passing through a symlink.
"""
from __future__ import annotations

import hmac
import secrets
from pathlib import Path

from ..runs.layout import FOLDER_NAME

COOKIE = "bareprop_token"


def new_token() -> str:
    return secrets.token_urlsafe(24)


def token_ok(given: str | None, token: str) -> bool:
    """Constant-time comparison (no early exit that would time the common prefix)."""
    if not given:
        return False
    return hmac.compare_digest(given.encode("utf-8", "replace"), token.encode())


def request_token(headers, cookies) -> str | None:
    """The token a request carries: header first, then the cookie."""
    auth = headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    return headers.get("x-bareprop-token") or cookies.get(COOKIE)


def allowed_hosts(host: str, port: int) -> set[str]:
    """Host header values that name this server."""
    names = {"127.0.0.1", "localhost", host}
    if host in ("0.0.0.0", "::"):     # bound everywhere: the user reaches it by some name
        names.add("*")
    hosts = set()
    for n in names:
        bracketed = f"[{n}]" if ":" in n and not n.startswith("[") else n
        hosts |= {f"{bracketed}:{port}".lower()}
    return hosts


def host_ok(header: str | None, allowed: set[str]) -> bool:
    if not header:
        return False
    return "*" in {h.split(":")[0] for h in allowed} or header.lower() in allowed


def origin_ok(origin: str | None, allowed: set[str]) -> bool:
    """A POST without Origin (curl, the tests) is allowed: browsers always send one on
    cross-origin POSTs, so a missing header is never another site."""
    if origin is None:
        return True
    for scheme in ("http://", "https://"):
        if origin.lower().startswith(scheme):
            return host_ok(origin[len(scheme):].rstrip("/"), allowed)
    return False


def run_dir(runs_root: Path, run_id: str) -> Path | None:
    """The folder of ``run_id`` under ``runs_root``, or None when the id is not a single
    safe component, the folder is missing, is a symlink, or resolves outside the root."""
    if not isinstance(run_id, str) or not FOLDER_NAME.fullmatch(run_id) or ".." in run_id:
        return None
    root = runs_root.resolve()
    path = root / run_id
    if path.is_symlink() or not path.is_dir():
        return None
    resolved = path.resolve()
    if resolved.parent != root:
        return None
    return resolved


def safe_file(folder: Path, name: str) -> Path | None:
    """``folder/name`` when it is a regular file and not a symlink (a planted link to
    /etc/passwd must not be served)."""
    path = folder / name
    if path.is_symlink() or not path.is_file():
        return None
    return path
