"""Data files and downloads that are too big, too slow or wrong inside: each refused in
one DataError, before memory or time is spent on it."""
import hashlib
import os
import subprocess
import sys
import time
import zlib
from dataclasses import replace

import numpy as np
import pytest

from bareprop.data import load, read_idx
from bareprop.data.download import download
from bareprop.data.registry import MNIST, STANDARD_FILES
from bareprop.data.idx import parse_idx
from bareprop.errors import DataError

from httpfake import serve
from synthetic import write_dataset


@pytest.fixture(autouse=True)
def isolated_env(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("BAREPROP_DATA_DIR", raising=False)


def gzip_bomb(n_images: int) -> bytes:
    """An IDX image file of n_images 28x28 zero images, gzipped: ~1000:1."""
    c = zlib.compressobj(1, wbits=31)
    parts = [c.compress(bytes([0, 0, 8, 3]) + np.array([n_images, 28, 28], ">u4").tobytes())]
    block = bytes(784 * 10_000)
    for start in range(0, n_images, 10_000):
        parts.append(c.compress(block[:784 * min(10_000, n_images - start)]))
    parts.append(c.flush())
    return b"".join(parts)


# -- size bombs ---------------------------------------------------------------------------
def test_gzip_bomb_is_refused_from_its_header():
    bomb = gzip_bomb(130_000)                       # 102 MB inside ~0.1 MB
    t0 = time.perf_counter()
    with pytest.raises(DataError, match="more than the 1,000,000 bytes allowed"):
        parse_idx(bomb, "bomb.gz", max_bytes=1_000_000)
    assert time.perf_counter() - t0 < 0.05          # nothing was decompressed


def test_gzip_bomb_in_a_dataset_folder_is_refused_fast(tmp_path):
    folder = write_dataset(tmp_path / "mnist")
    (folder / STANDARD_FILES["train_images"]).write_bytes(gzip_bomb(130_000))
    t0 = time.perf_counter()
    # verified: nothing larger than the official 47 MB file can match its checksum
    with pytest.raises(DataError, match="more than the 47,040,016 bytes allowed"):
        load("mnist", data_dir=folder, download_missing=False)
    assert time.perf_counter() - t0 < 1.0


def test_oversized_plain_file_is_refused_unread(tmp_path):
    p = tmp_path / "huge-idx"
    with open(p, "wb") as f:                        # sparse: costs no disk
        f.truncate(600 * 2**20)
    t0 = time.perf_counter()
    with pytest.raises(DataError, match="larger than an IDX file"):
        read_idx(p)
    assert time.perf_counter() - t0 < 0.05


# -- what is inside -----------------------------------------------------------------------
# -- only the splits asked for ------------------------------------------------------------
def test_test_split_alone_needs_no_training_files(tmp_path):
    folder = write_dataset(tmp_path / "d")
    for role in ("train_images", "train_labels"):
        (folder / STANDARD_FILES[role]).unlink()
    ds = load("mnist", data_dir=folder, verify=False, download_missing=False, splits=("test",))
    assert ds.x_train is None and ds.x_test.shape == (200, 28, 28)


def test_evaluate_reads_no_training_split(tmp_path):
    folder = write_dataset(tmp_path / "mnist")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    run = [sys.executable, "-m", "bareprop"]
    r = subprocess.run([*run, "train", "--data-dir", folder, "--no-verify", "--epochs", "1",
                        "--out", tmp_path / "run", "--quiet"], capture_output=True, text=True,
                       env=env)
    assert r.returncode == 0, r.stderr
    for role in ("train_images", "train_labels"):
        (folder / STANDARD_FILES[role]).unlink()
    env.update(XDG_CACHE_HOME=str(tmp_path / "c"), http_proxy="http://127.0.0.1:9",
               https_proxy="http://127.0.0.1:9")
    r = subprocess.run([*run, "evaluate", tmp_path / "run", "--data-dir", folder,
                        "--no-verify"], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "(test, 200 examples)" in r.stdout
    assert "loss: " in r.stdout and "(cross-entropy, no label smoothing)" in r.stdout
    assert "loss with label smoothing 0.1: " in r.stdout  # the default preset's, as train's


# -- downloads ----------------------------------------------------------------------------
def _fake_spec(tmp_path, **changes):
    src = write_dataset(tmp_path / "upstream")
    blobs = {name: (src / name).read_bytes() for name in STANDARD_FILES.values()}
    sha = {name: hashlib.sha256(b).hexdigest() for name, b in blobs.items()}
    sizes = {name: len(b) for name, b in blobs.items()}
    return replace(MNIST, name="fake", sha256=sha, sizes=sizes, **changes), blobs


@pytest.mark.parametrize("kind", ["good", "nolength"])
def test_a_download_larger_than_the_file_is_cut_off(tmp_path, kind):
    spec, blobs = _fake_spec(tmp_path)
    routes = {f"/big/{n}": (kind, b * 20) for n, b in blobs.items()}
    with serve(routes) as (url, _):
        with pytest.raises(DataError, match="more than the [0-9,]+ (bytes this file has|this)"):
            download(spec, tmp_path / "dl", mirrors=[f"{url}/big/"], progress=False)
    assert list((tmp_path / "dl").iterdir()) == []


def test_a_dripping_mirror_hits_the_total_time_limit(tmp_path):
    spec, blobs = _fake_spec(tmp_path)
    routes = {f"/drip/{n}": ("drip", b) for n, b in blobs.items()}
    t0 = time.perf_counter()
    with serve(routes) as (url, _):
        with pytest.raises(DataError, match="did not finish within its time limit"):
            download(spec, tmp_path / "dl", mirrors=[f"{url}/drip/"], progress=False,
                     timeout=5, time_limit=1.0)
    assert time.perf_counter() - t0 < 4


# -- BAREPROP_DATA_DIR --------------------------------------------------------------------
@pytest.mark.parametrize("make,state", [(lambda p: None, "missing"),
                                        (lambda p: p.write_text("x"), "a file")])
def test_a_bad_data_dir_variable_is_reported_then_lookup_goes_on(tmp_path, monkeypatch,
                                                                  capsys, make, state):
    bad = tmp_path / "typo"
    make(bad)
    monkeypatch.setenv("BAREPROP_DATA_DIR", str(bad))
    folder = write_dataset(tmp_path / "d")
    ds = load("mnist", data_dir=folder, verify=False, download_missing=False)
    assert ds.x_train.shape == (600, 28, 28)
    err = capsys.readouterr().err.strip()
    assert err == f"bareprop: warning: BAREPROP_DATA_DIR={bad} is {state}, not a folder " \
                  "holding <dataset>/ folders; looking in the other places"
    (tmp_path / "empty").mkdir()                     # a folder, but without the files
    with pytest.raises(DataError, match=f"BAREPROP_DATA_DIR={bad} is {state}"):
        load("mnist", data_dir=tmp_path / "empty", download_missing=False)
    spec, _ = _fake_spec(tmp_path)
    with serve({}) as (url, _):
        with pytest.raises(DataError, match=f"could not download.*BAREPROP_DATA_DIR={bad}"):
            download(spec, tmp_path / "dl", mirrors=[f"{url}/none/"], progress=False)
