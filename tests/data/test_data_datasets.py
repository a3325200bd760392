"""Dataset look-up order, content checks, and verified downloads from a local server."""
from pathlib import Path

import numpy as np
import pytest

from bareprop.data import load, registry, write_idx
from bareprop.data.download import download
from bareprop.data.locate import locate, search_dirs
from bareprop.data.registry import MNIST, STANDARD_FILES
from bareprop.errors import DataError

from httpfake import serve
from synthetic import fake_spec, write_dataset, write_mutated_dataset


@pytest.fixture(autouse=True)
def isolated_env(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("BAREPROP_DATA_DIR", raising=False)


def test_search_order(tmp_path, monkeypatch):
    monkeypatch.setenv("BAREPROP_DATA_DIR", str(tmp_path / "env"))
    dirs = search_dirs("mnist", tmp_path / "cli")
    assert dirs == [tmp_path / "cli", tmp_path / "cli" / "mnist", tmp_path / "env" / "mnist",
                    tmp_path / "cache" / "bareprop" / "mnist", Path("/usr/share/datasets/mnist")]


def test_first_complete_folder_wins(tmp_path, monkeypatch):
    write_dataset(tmp_path / "env" / "mnist")
    write_dataset(tmp_path / "cache" / "bareprop" / "mnist")
    monkeypatch.setenv("BAREPROP_DATA_DIR", str(tmp_path / "env"))
    assert locate(MNIST)["train_images"].parent == tmp_path / "env" / "mnist"
    # an incomplete --data-dir folder is skipped
    (tmp_path / "cli").mkdir()
    write_idx(tmp_path / "cli" / STANDARD_FILES["train_images"], np.zeros((1, 2, 2), np.uint8))
    assert locate(MNIST, tmp_path / "cli")["train_images"].parent == tmp_path / "env" / "mnist"


def test_a_missing_or_file_data_dir_is_refused_not_passed_over(tmp_path, monkeypatch):
    """--data-dir names a folder that is not there (a typo): an error naming it, though
    BAREPROP_DATA_DIR holds the dataset - not a quiet run on other files."""
    write_dataset(tmp_path / "env" / "mnist")
    monkeypatch.setenv("BAREPROP_DATA_DIR", str(tmp_path / "env"))
    with pytest.raises(DataError, match=r"--data-dir .*typo is missing, not a folder"):
        load("mnist", data_dir=tmp_path / "typo", verify=False)
    (tmp_path / "afile").write_text("x")
    with pytest.raises(DataError, match=r"afile is a file, not a folder"):
        load("mnist", data_dir=tmp_path / "afile", verify=False)
    assert load("mnist", verify=False).x_train.shape == (600, 28, 28)    # no --data-dir


def test_uncompressed_files_are_found(tmp_path):
    write_dataset(tmp_path / "raw", gz=False)
    ds = load("mnist", data_dir=tmp_path / "raw", verify=False, download_missing=False)
    assert ds.x_train.shape == (600, 28, 28) and ds.y_test.shape == (200,)


def test_content_check_refuses_a_foreign_file(tmp_path):
    write_dataset(tmp_path / "d")
    with pytest.raises(DataError, match="content differs from the official mnist"):
        load("mnist", data_dir=tmp_path / "d", download_missing=False)


def test_offline_error_says_where_to_put_files(tmp_path):
    with pytest.raises(DataError, match="BAREPROP_DATA_DIR"):
        load("mnist", data_dir=tmp_path / "nothing", download_missing=False)


@pytest.mark.parametrize("mutate,match", [
    (lambda a: {**a, "train_labels": a["train_labels"][:-1]}, "600 images but 599 labels"),
    (lambda a: {**a, "test_labels": np.full(200, 10, np.uint8)}, "0..9"),
    (lambda a: {**a, "train_images": a["train_images"].reshape(600, -1)}, "3 dimensions"),
    (lambda a: {**a, "train_images": np.zeros((0, 28, 28), np.uint8),
                "train_labels": np.zeros(0, np.uint8)}, "empty"),
    (lambda a: {**a, "test_labels": np.full(200, -1, np.int8)}, "found -1"),
    (lambda a: {**a, "train_labels": a["train_labels"].astype(np.float32) + 0.5},
     "labels must be integers"),
    (lambda a: {**a, "test_images": np.zeros((200, 32, 32), np.uint8)},
     "32x32 pixels, expected 28x28"),
])
def test_label_and_shape_validation(tmp_path, mutate, match):
    folder = write_mutated_dataset(tmp_path / "d", mutate)
    with pytest.raises(DataError, match=match):
        load("mnist", data_dir=folder, verify=False, download_missing=False)


def test_download_verifies_and_falls_back_to_next_mirror(tmp_path):
    spec, blobs = fake_spec(tmp_path)
    routes = {}
    for name, blob in blobs.items():
        routes[f"/bad/{name}"] = ("corrupt", blob[:-1] + bytes([blob[-1] ^ 1]))
        routes[f"/cut/{name}"] = ("truncated", blob)
        routes[f"/good/{name}"] = ("good", blob)
    with serve(routes) as (url, hits):
        dest = tmp_path / "dl"
        download(spec, dest, mirrors=[f"{url}/missing/", f"{url}/bad/", f"{url}/cut/",
                                      f"{url}/good/"], progress=False)
    for name, blob in blobs.items():
        assert (dest / name).read_bytes() == blob
        assert f"/bad/{name}" in hits and f"/good/{name}" in hits
    assert sorted(p.name for p in dest.iterdir()) == sorted(blobs)  # no .part files left


def test_all_mirrors_failing_lists_what_was_tried(tmp_path):
    spec, blobs = fake_spec(tmp_path)
    routes = {f"/bad/{n}": ("corrupt", b"x" + b[1:]) for n, b in blobs.items()}
    with serve(routes) as (url, _):
        with pytest.raises(DataError) as info:
            download(spec, tmp_path / "dl", mirrors=[f"{url}/missing/", f"{url}/bad/"],
                     progress=False)
    msg = str(info.value)
    assert "/missing/" in msg and "/bad/" in msg and "SHA-256 mismatch" in msg
    assert "404" in msg or "Not Found" in msg
    assert list((tmp_path / "dl").iterdir()) == []  # nothing under a final name, no .part


def test_slow_mirror_times_out_and_next_is_used(tmp_path):
    spec, blobs = fake_spec(tmp_path)
    routes = {}
    for name, blob in blobs.items():
        routes[f"/slow/{name}"] = ("slow", blob)
        routes[f"/good/{name}"] = ("good", blob)
    with serve(routes) as (url, hits):
        download(spec, tmp_path / "dl", mirrors=[f"{url}/slow/", f"{url}/good/"],
                 progress=False, timeout=0.5)
    assert all((tmp_path / "dl" / n).read_bytes() == b for n, b in blobs.items())


def test_load_downloads_into_the_cache_when_missing(tmp_path, monkeypatch):
    spec, blobs = fake_spec(tmp_path)
    routes = {f"/m/{n}": ("good", b) for n, b in blobs.items()}
    monkeypatch.setitem(registry.DATASETS, "fake", spec)
    with serve(routes) as (url, _):
        ds = load("fake", mirrors=[f"{url}/m/"], verify=False, progress=False)
    assert ds.source == tmp_path / "cache" / "bareprop" / "fake"
    assert ds.x_train.shape == (600, 28, 28)
