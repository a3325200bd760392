"""The HTML reports the web app serves: only pages this server built itself, served
sandboxed (app.py's report routes). Kept by run id, so a sweep's trial
(``SWEEP/trials/NNNN``) and a run of the same folder name are two pages; a sweep
folder's page (``bareprop report`` of a sweep) is kept by its name.
"""
from __future__ import annotations

import hashlib
import threading
from pathlib import Path

from ..errors import OutputError
from ..runs.layout import COMPARE, INSPECT, METRICS, MODEL, REPORT, SWEEP
from . import security
from .runs import stamp

# A report is the server's own page, but it holds strings from a run folder: sandboxed (an
# opaque origin, no script, no form), it reaches nothing of this server's API.
REPORT_HEADERS = {
    "Content-Security-Policy": "sandbox; default-src 'none'; img-src data:; "
                               "style-src 'unsafe-inline'; form-action 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
MAX_REPORT = 256 << 20              # bytes of a report read back (its figures are inline)


class Reports:
    """The run reports this server built itself, served only as built.

    A report.html found in a run folder is never served as it is: the server builds the
    report (the code of ``bareprop report``), notes the SHA-256 of the page and the state
    of the files it was built from, and serves the page again only while both still
    match. A page planted in the folder, edited, linked (a symlink or a hard link to a
    file elsewhere), or older than the run's files is rebuilt first. Builds take turns
    (one lock): matplotlib's text rendering is not thread-safe, and a page must be read
    back before another build of it replaces it."""

    SOURCES = (METRICS, MODEL, COMPARE, INSPECT, SWEEP)

    def __init__(self, data_dir: str | None):
        self.data_dir = data_dir
        self.built: dict[str, tuple] = {}
        self.lock = threading.Lock()

    def page(self, folder: Path, run_id: str | None = None) -> bytes:
        from ..report import build_report

        run_id = run_id or folder.name
        with self.lock:
            sources = stamp(folder, self.SOURCES)
            known = self.built.get(run_id)
            if known is not None and known[0] == sources:
                body = security.read_own_file(folder, REPORT, MAX_REPORT)
                if body is not None and hashlib.sha256(body).digest() == known[1]:
                    return body
            self.built.pop(run_id, None)
            build_report(folder, data_dir=self.data_dir)       # replaces report.html by rename
            body = security.read_own_file(folder, REPORT, MAX_REPORT)
            if body is None:
                raise OutputError(f"the report of {run_id} could not be read back "
                                  "as the regular file just written; build it again")
            self.built[run_id] = (sources, hashlib.sha256(body).digest())
            return body
