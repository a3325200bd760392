"""The verified download of a dataset's files into the user cache.

Each file goes to a temporary name beside its destination, is SHA-256 checked against
the upstream file while it streams, and only then renamed: a file under its final
name is always complete. A mismatch, a short or oversized response, or a mirror too
slow for the time limit deletes the partial file and tries the next mirror.

Not here: which files and sums (registry.py), where files are looked for (locate.py).
"""
from __future__ import annotations

import hashlib
import os
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from ..errors import DataError
from .locate import cache_dir, env_dir_problem
from .registry import ROLES, DatasetSpec


def _progress(total: int | None, desc: str):
    """A tqdm bar when tqdm is installed and stderr is a terminal, else a few plain lines."""
    try:
        if not sys.stderr.isatty():
            raise ImportError  # no \r redraws into logs and files
        from tqdm import tqdm

        return tqdm(total=total, unit="B", unit_scale=True, desc=desc, leave=False)
    except ImportError:
        class Plain:
            def __init__(self):
                self.n, self.shown = 0, -1

            def update(self, k):
                self.n += k
                if total:
                    pct = 100 * self.n // total
                    if pct // 25 != self.shown // 25:
                        self.shown = pct
                        print(f"{desc}: {pct}%", file=sys.stderr)

            def close(self):
                pass

        return Plain()


# A mirror may send this much more than the file's known size (headers aside, nothing
# should differ; the margin only spares a recompressed copy a few bytes longer).
SIZE_MARGIN = 1.01
# The whole download of a dataset must finish within this many seconds: a per-read
# timeout alone lets a mirror that drips one byte at a time hold bareprop forever.
DOWNLOAD_TIME_LIMIT = 900.0


def download_file(url: str, dest: Path, sha256: str, timeout: float = 30.0,
                  progress: bool = True, max_bytes: int | None = None,
                  deadline: float | None = None) -> None:
    """Download ``url`` to a temporary beside ``dest``; verify SHA-256; then rename.

    ``max_bytes``: refuse a response that declares or sends more. ``deadline``: a
    ``time.monotonic()`` by which the file must be complete. On any failure the partial
    file is removed and DataError raised: a file under the final name is always
    complete and verified.
    """
    from ..archive import temp_beside   # an unplantable name, like every file bareprop writes

    part = None
    digest = hashlib.sha256()
    deadline = deadline if deadline is not None else time.monotonic() + DOWNLOAD_TIME_LIMIT
    try:
        fd, part = temp_beside(dest, ".part")
        part = Path(part)
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as resp:
            length = resp.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            if max_bytes is not None and total is not None and total > max_bytes:
                raise DataError(f"{url}: the server announces {total:,} bytes, more than the "
                                f"{max_bytes:,} this file has; refused")
            bar = _progress(total, dest.name) if progress else None
            received = 0
            while True:
                # read1: at most one socket read, so the deadline is checked between
                # reads even when a mirror sends a byte at a time
                chunk = resp.read1(1 << 16)
                if not chunk:
                    break
                out.write(chunk)
                digest.update(chunk)
                received += len(chunk)
                if bar:
                    bar.update(len(chunk))
                if max_bytes is not None and received > max_bytes:
                    raise DataError(f"{url}: sent more than the {max_bytes:,} bytes this file "
                                    "has; refused")
                if time.monotonic() > deadline:
                    raise DataError(f"{url}: too slow, the download did not finish within "
                                    f"its time limit ({received:,} bytes received)")
            if bar:
                bar.close()
            if total is not None and received != total:
                raise DataError(f"{url}: connection closed after {received} of {total} bytes")
        if digest.hexdigest() != sha256:
            raise DataError(f"{url}: SHA-256 mismatch (got {digest.hexdigest()[:16]}..., "
                            f"expected {sha256[:16]}...)")
        os.replace(part, dest)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise DataError(f"{url}: {reason}") from None
    finally:
        if part is not None and part.exists():
            part.unlink()


def download(spec: DatasetSpec, folder: Path | None = None, mirrors=None,
             progress: bool = True, timeout: float = 30.0, roles=ROLES,
             time_limit: float = DOWNLOAD_TIME_LIMIT) -> Path:
    """Fetch every missing file of ``roles`` (default all four) of ``spec`` into
    ``folder`` (default: the cache), all within ``time_limit`` seconds, each file no
    larger than its known size."""
    folder = folder or cache_dir() / spec.name
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"cannot create the data cache {folder}: {exc.strerror}; "
                        "set XDG_CACHE_HOME or pass --data-dir") from None
    mirrors = tuple(mirrors) if mirrors is not None else spec.mirrors
    deadline = time.monotonic() + time_limit
    for role in roles:
        filename = spec.files[role]
        if (folder / filename).is_file():
            continue
        known = spec.sizes.get(filename)
        cap = int(known * SIZE_MARGIN) + 1024 if known else None
        failures = []
        for mirror in mirrors:
            try:
                download_file(mirror + filename, folder / filename, spec.sha256[filename],
                              timeout=timeout, progress=progress, max_bytes=cap,
                              deadline=deadline)
                break
            except DataError as exc:
                failures.append(str(exc))
        else:
            env = env_dir_problem()
            raise DataError(
                f"could not download {spec.name} file {filename}; tried: "
                + "; ".join(failures)
                + f". Put the four files ({', '.join(spec.files.values())}) in {folder} "
                + "or point --data-dir / BAREPROP_DATA_DIR at a folder holding them"
                + (f" ({env})" if env else "")
            )
    return folder
