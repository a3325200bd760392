"""``bareprop serve``: a local web app to draw a digit, look inside a model and watch
training live (docs/web.md). Needs the ``web`` extra: ``pip install 'bareprop[web]'``.

Modules: security (token, Host/Origin checks, run ids), runs (run folders as JSON),
infer (predict and model views), jobs (training subprocesses), app (routes).
"""
from __future__ import annotations

from ..errors import ConfigError

INSTALL_HINT = "bareprop serve needs the web extra: pip install 'bareprop[web]'"


def require_web() -> None:
    """ConfigError naming the extra when Starlette or uvicorn is missing."""
    try:
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError:
        raise ConfigError(INSTALL_HINT) from None
