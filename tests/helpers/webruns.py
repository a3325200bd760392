"""Tiny run folders and a tiny dataset for the web app's tests (API and browser).

``make_runs(root)`` writes root/data/mnist (a synthetic learnable set, 600 examples)
and root/runs/{mlp,cnn}: a 784-16-10 MLP and a 4-channel CNN, one epoch each, trained
through the CLI in this process (about a second together). ``env`` and ``client`` are
the fixtures the in-process API tests share: a module's own runs, and a TestClient of
the app serving them with ``TOKEN`` at ``BASE``.
"""
from __future__ import annotations

import io
from pathlib import Path

import pytest

from synthetic import write_dataset

BASE = "http://127.0.0.1:8765"
TOKEN = "test-token-123"
AUTH = {"Authorization": f"Bearer {TOKEN}"}

CNN_ARCH = "conv(4,3,padding=1) relu maxpool(2) flatten linear(10)"


def train(runs: Path, name: str, data: Path, *flags: str) -> Path:
    from bareprop.cli.main import main

    out = runs / name
    code = main(["train", "--data-dir", str(data), "--no-verify", "--quiet", "--epochs", "1",
                 "--out", str(out), *flags])
    assert code == 0
    return out


def make_runs(root: Path, n_train: int = 600) -> tuple[Path, Path]:
    """(runs folder, data folder holding mnist/ with ``n_train`` training images)."""
    data = root / "data"
    write_dataset(data / "mnist", n_train=n_train, n_test=200)
    runs = root / "runs"
    train(runs, "mlp", data, "--hidden", "16")
    train(runs, "cnn", data, "--arch", CNN_ARCH)
    return runs, data


def digit_png(kind: str = "one", size: int = 120) -> bytes:
    """A PNG of a dark stroke on white paper, as a user draws it."""
    from PIL import Image, ImageDraw

    im = Image.new("L", (size, size), 255)
    d = ImageDraw.Draw(im)
    if kind == "one":
        d.line([(size // 2, size // 6), (size // 2, size * 5 // 6)], fill=0, width=size // 10)
    else:
        d.ellipse([size // 4, size // 6, size * 3 // 4, size * 5 // 6], outline=0,
                  width=size // 10)
    buf = io.BytesIO()
    im.save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """(root, runs folder, data folder) of this test module's own tiny runs."""
    root = tmp_path_factory.mktemp("web")
    runs, data = make_runs(root)
    return root, runs, data


@pytest.fixture(scope="module")
def client(env):
    """A TestClient of the app serving ``env``'s runs, its token ``TOKEN``."""
    from starlette.testclient import TestClient

    from bareprop.web.app import create_app

    _, runs, data = env
    app = create_app(runs, TOKEN, port=8765, data_dir=str(data), verify=False)
    with TestClient(app, base_url=BASE) as c:
        yield c
