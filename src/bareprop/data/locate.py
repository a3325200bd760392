"""Where a dataset's files are looked for on this machine, in order:
  1. ``data_dir`` (``--data-dir``): the files themselves, or a ``<dataset>/`` folder in it
     (one that does not exist is refused by datasets.load, not passed over)
  2. ``$BAREPROP_DATA_DIR/<dataset>/``
  3. the user cache, ``$XDG_CACHE_HOME/bareprop/<dataset>/`` (default ``~/.cache/...``)
  4. Debian's ``/usr/share/datasets/<dataset>/``

Not here: fetching missing files into the cache (download.py), reading them (datasets.py).
"""
from __future__ import annotations

import os
from pathlib import Path

from ..errors import DataError
from .registry import ROLES, DatasetSpec


def cache_dir() -> Path:
    """``$XDG_CACHE_HOME/bareprop`` (default ``~/.cache/bareprop``)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "bareprop"


def not_a_folder(path) -> str | None:
    """Why ``path`` is no folder ("a file" or "missing"), or None when it is one."""
    if Path(path).is_dir():
        return None
    return "a file" if Path(path).exists() else "missing"


def env_dir_problem() -> str | None:
    """What is wrong with $BAREPROP_DATA_DIR (None if unset or a folder)."""
    env = os.environ.get("BAREPROP_DATA_DIR")
    state = not_a_folder(env) if env else None
    if state is None:
        return None
    return f"BAREPROP_DATA_DIR={env} is {state}, not a folder holding <dataset>/ folders"


def search_dirs(name: str, data_dir: str | os.PathLike | None = None) -> list[Path]:
    """Folders searched for a dataset's files, in order."""
    dirs: list[Path] = []
    if data_dir is not None:
        dirs += [Path(data_dir), Path(data_dir) / name]
    env = os.environ.get("BAREPROP_DATA_DIR")
    if env:
        dirs.append(Path(env) / name)
    dirs.append(cache_dir() / name)
    dirs.append(Path("/usr/share/datasets") / name)
    return dirs


def _find_in(folder: Path, filename: str) -> Path | None:
    """The file as named, or its uncompressed twin (name without .gz)."""
    for candidate in (folder / filename, folder / filename.removesuffix(".gz")):
        if candidate.is_file():
            return candidate
        if candidate.is_dir():
            raise DataError(f"{candidate} is a directory where the IDX file {filename} should "
                            "be; remove it or point --data-dir elsewhere")
    return None


def locate(spec: DatasetSpec, data_dir=None, roles=ROLES) -> dict[str, Path] | None:
    """Paths of the files of ``roles`` (default all four) from the first folder that
    holds all of them."""
    for folder in search_dirs(spec.name, data_dir):
        found = {role: _find_in(folder, spec.files[role]) for role in roles}
        if all(found.values()):
            return found  # type: ignore[return-value]
    return None
