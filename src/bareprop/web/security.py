"""What keeps a local server that can start jobs from being used by other web pages,
and by other servers on this machine.

- the token: ``secrets.token_urlsafe``, required on every request (a header, or the
  cookie the printed URL sets), compared in constant time;
- the cookie is this server's own: named after its port and a random id, and sent by
  the browser only under this server's random page path ``/s/<id>/`` (cookies ignore
  ports: with ``Path=/`` every other service on 127.0.0.1 would receive the token, and
  a second ``bareprop serve`` would overwrite it);
- the Host header must name this server (a DNS-rebinding page's host does not);
- a request that is not GET/HEAD/OPTIONS must come from this server's own page: its
  Origin, when sent, is the request's own scheme and Host, whatever the bind address;
- a JSON body is ``application/json`` (an HTML form can only send text/plain,
  urlencoded or multipart), holds no duplicate keys and nests at most a few levels;
- run ids are one path component of a strict alphabet, and the folder they name must
  resolve inside RUNS_DIR without passing through a symlink; a sweep's trial is
  ``SWEEP/trials/TRIAL``, each of its components held to the same rules, one level at a
  time; files served from it are regular files with no other hard links.
"""
from __future__ import annotations

import hmac
import json
import os
import secrets
from pathlib import Path

from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from ..runs.layout import FOLDER_NAME, TRIALS
from ..runs.read import open_read

MAX_JSON_DEPTH = 4          # the Train form: an object holding lists of numbers
FORBIDDEN_PAGE = ("<!doctype html><meta charset=utf-8><title>bareprop serve</title>"
                  "<p>Open the address <code>bareprop serve</code> printed (it holds the "
                  "access token), e.g. <code>http://127.0.0.1:PORT/?token=...</code>.</p>")


def error(status: int, message: str, field: str | None = None) -> JSONResponse:
    body = {"error": message}
    if field is not None:
        body["field"] = field
    return JSONResponse(body, status_code=status)


def new_token() -> str:
    return secrets.token_urlsafe(24)


def token_ok(given: str | None, token: str) -> bool:
    """Constant-time comparison (no early exit that would time the common prefix)."""
    if not given:
        return False
    return hmac.compare_digest(given.encode("utf-8", "replace"), token.encode())


def request_token(headers, cookies, cookie: str) -> str | None:
    """The token a request carries: header first, then this server's cookie."""
    auth = headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    return headers.get("x-bareprop-token") or cookies.get(cookie)


def allowed_hosts(host: str, port: int) -> set[str]:
    """Host header values that name this server (``*:PORT``: any name, bound everywhere)."""
    names = {"127.0.0.1", "localhost", host}
    if host in ("0.0.0.0", "::"):     # bound everywhere: the user reaches it by some name
        names.add("*")
    hosts = set()
    for n in names:
        bracketed = f"[{n}]" if ":" in n and not n.startswith("[") else n
        hosts |= {f"{bracketed}:{port}".lower()}
    return hosts


def _port_of(host: str) -> str:
    """'8000' of 'name:8000' or '[::1]:8000'; '' without a port."""
    tail = host[host.rfind("]") + 1:] if host.startswith("[") else host
    return tail.rpartition(":")[2] if ":" in tail else ""


def host_ok(header: str | None, allowed: set[str]) -> bool:
    if not header:
        return False
    header = header.lower()
    return header in allowed or f"*:{_port_of(header)}" in allowed


def origin_ok(origin: str | None, host: str | None, fetch_site: str | None = None) -> bool:
    """Whether a state-changing request comes from this server's own page: its Origin is
    ``http(s)://`` + the request's own Host, whatever names the server accepts (a page on
    another port of the same machine is another origin). A request without Origin (curl,
    the tests) is allowed unless the browser says it is cross-site: browsers always send
    Origin on cross-origin POSTs, so a missing header is never another site's page."""
    if fetch_site is not None and fetch_site.lower() in ("cross-site", "same-site"):
        return False
    if origin is None:
        return True
    if not host:
        return False
    return origin.lower() in (f"http://{host.lower()}", f"https://{host.lower()}")


class BodyError(Exception):
    """A refused request body: its HTTP status and the one-line message."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def _unique_keys(pairs):
    out = {}
    for key, value in pairs:
        if key in out:          # json's default keeps the last one: a smuggled setting
            raise BodyError(400, f"the key {key[:40]!r} is given twice; send each setting "
                                 "once")
        out[key] = value
    return out


def json_body(content_type: str | None, body: bytes):
    """The JSON value of a request body, or BodyError: 415 unless the Content-Type is
    ``application/json`` (what no HTML form can send), 400 for bad JSON, a duplicate key
    (no "last one wins") or nesting deeper than MAX_JSON_DEPTH."""
    media = (content_type or "").split(";")[0].strip().lower()
    if media != "application/json":
        raise BodyError(415, f"send the body as Content-Type: application/json, not "
                             f"{media[:60] or 'none'!r}")
    try:
        value = json.loads(body, object_pairs_hook=_unique_keys)
    except RecursionError:
        raise BodyError(400, f"the JSON nests deeper than {MAX_JSON_DEPTH} levels") from None
    except ValueError:          # JSONDecodeError and UnicodeDecodeError
        raise BodyError(400, "the body is not valid JSON") from None
    stack = [(value, 1)]        # no recursion: the depth of what json accepted
    while stack:
        item, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            raise BodyError(400, f"the JSON nests deeper than {MAX_JSON_DEPTH} levels")
        children = item.values() if isinstance(item, dict) else \
            item if isinstance(item, list) else ()
        stack.extend((c, depth + 1) for c in children)
    return value


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


def trial_dir(runs_root: Path, sweep_id: str, trial: str) -> Path | None:
    """The folder of trial ``trial`` of sweep ``sweep_id`` (``SWEEP/trials/TRIAL``), or
    None: each component is held to run_dir's rules in turn (a strict name, no link, the
    resolved folder directly inside the one above), so neither the sweep, its trials/
    folder nor the trial can lead out of ``runs_root``."""
    folder = run_dir(runs_root, sweep_id)
    trials = run_dir(folder, TRIALS) if folder is not None else None
    return run_dir(trials, trial) if trials is not None else None


def safe_file(folder: Path, name: str) -> Path | None:
    """``folder/name`` when it is a regular file and not a symlink (a planted link to
    /etc/passwd must not be served)."""
    path = folder / name
    if path.is_symlink() or not path.is_file():
        return None
    return path


def read_own_file(folder: Path, name: str, cap: int) -> bytes | None:
    """The bytes of ``folder/name``, or None unless it is a regular file, not a link, with
    no other hard link (a hard link planted in a run folder may name a file outside it)
    and at most ``cap`` bytes. One descriptor for the checks and the read."""
    f = open_read(folder, name)                 # a regular file, not through a link
    if f is None:
        return None
    with f:
        st = os.fstat(f.fileno())
        if st.st_nlink != 1 or st.st_size > cap:
            return None
        data = f.read(cap + 1)
    return data if len(data) <= cap else None


class Guard:
    """ASGI middleware in front of the app: Host check (DNS rebinding), the token (a
    header, or this server's cookie under its page path), the Origin of state-changing
    requests (CSRF), and a client gone mid-request ends quietly (no traceback).

    The pages live under ``/s/<id>/`` (``self.prefix``, random per server), where the
    cookie is valid; the same routes without the prefix take the token as a header."""

    def __init__(self, app, token: str, allowed_hosts: set[str], port: int):
        self.app, self.token, self.allowed = app, token, allowed_hosts
        session = secrets.token_hex(8)
        self.prefix = f"/s/{session}"
        self.cookie = f"bareprop_{port}_{session}"

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope["path"]
        paged = path.startswith(self.prefix + "/")
        if paged:       # routed below the prefix (ASGI root_path), with the cookie
            scope = {**scope, "root_path": scope.get("root_path", "") + self.prefix}
        response = self.check(Request(scope), paged)
        try:
            if response is not None:
                return await response(scope, receive, send)
            return await self.app(scope, receive, send)
        except (ClientDisconnect, ConnectionError):
            return None         # the client went away: nothing to answer, nothing to log

    def check(self, request: Request, paged: bool) -> Response | None:
        path = request.url.path
        headers = request.headers
        if not host_ok(headers.get("host"), self.allowed):
            return error(403, "the Host header does not name this server; open the "
                              "address bareprop serve printed")
        if path == self.prefix:
            return RedirectResponse(self.prefix + "/", status_code=307)
        query_token = request.query_params.get("token")
        if path == "/" and query_token is not None:
            if not token_ok(query_token, self.token):
                return HTMLResponse(FORBIDDEN_PAGE, status_code=403)
            resp = RedirectResponse(self.prefix + "/", status_code=303)
            resp.set_cookie(self.cookie, self.token, httponly=True, samesite="strict",
                            path=self.prefix)
            return resp
        given = request_token(headers, request.cookies if paged else {}, self.cookie)
        if not token_ok(given, self.token):
            if "/api/" in path:
                return error(403, "missing or wrong access token; open the address "
                                  "bareprop serve printed (it sets the cookie) or send "
                                  "Authorization: Bearer TOKEN")
            return HTMLResponse(FORBIDDEN_PAGE, status_code=403)
        if request.method not in ("GET", "HEAD", "OPTIONS") and not origin_ok(
                headers.get("origin"), headers.get("host"), headers.get("sec-fetch-site")):
            return error(403, "cross-origin request refused; use the page bareprop "
                              "serve printed")
        return None
