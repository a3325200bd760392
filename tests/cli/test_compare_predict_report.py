"""compare (bareprop vs PyTorch), save/load, predict on drawn digits, the HTML report."""
import json
import re
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image, ImageDraw

import bareprop as bp
from bareprop.preprocess import to_mnist

from browser import CHROMIUM, images_loaded
from conftest import real_data_dir
from synthetic import write_dataset


def cli(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "bareprop", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_dataset(tmp_path_factory.mktemp("d") / "mnist")


@pytest.mark.parametrize("extra", [
    [],
    ["--dropout", "0.3", "--max-norm", "1.5", "--schedule", "onecycle", "--augment", "shift"],
    ["--preset", "seed", "--update-order", "standard", "--epochs", "2"],
    ["--batchnorm", "--optimizer", "sgd", "--momentum", "0.9", "--nesterov", "--lr", "0.01"],
    # a convolutional model from the command line, every image layer with parameters or
    # state, dropout masks replayed, augmentation on
    ["--arch", "conv(4,3,padding=1,bias=False) batchnorm relu maxpool(2) conv(6,(3,2),stride=2)"
     " dropout2d(0.2) relu avgpool(2) flatten linear(10)", "--augment", "shift",
     "--optimizer", "sgd", "--momentum", "0.9", "--lr", "0.05"],
])
def test_compare_float64_matches_torch(tmp_path, data, extra):
    size = [] if "--arch" in extra else ["--hidden", "32"]
    r = cli("compare", "--data-dir", data, "--no-verify", "--dtype", "float64", "--epochs", "2",
            *size, "--out", tmp_path, *extra)
    assert r.returncode == 0, r.stderr
    assert "MATCH" in r.stdout
    report = json.loads((tmp_path / "compare.json").read_text())
    assert len(report["epochs"]) == int(extra[extra.index("--epochs") + 1]) if "--epochs" in extra \
        else 2
    for row in report["epochs"]:
        assert row["max_abs_weight_diff"] < 1e-10
        assert abs(row["bareprop"]["train_loss"] - row["torch"]["train_loss"]) < 1e-10
        assert row["bareprop"]["test_accuracy"] == row["torch"]["test_accuracy"]
    assert (tmp_path / "compare.png").exists()


def test_compare_float32_reports_drift(tmp_path, data):
    r = cli("compare", "--data-dir", data, "--no-verify", "--epochs", "1", "--hidden", "16",
            "--out", tmp_path)
    assert r.returncode == 0, r.stderr
    assert "float32" in r.stdout and "drift" in r.stdout
    diff = json.loads((tmp_path / "compare.json").read_text())["epochs"][0]["max_abs_weight_diff"]
    assert 0 < diff < 1e-3


def test_compare_against_keras(tmp_path, data):
    import importlib.util

    if importlib.util.find_spec("keras") is None:
        pytest.skip("keras not installed")
    r = cli("compare", "--framework", "keras", "--preset", "keras-seed", "--scale", "unit",
            "--lr", "0.05", "--data-dir", data, "--no-verify", "--dtype", "float64",
            "--epochs", "2", "--out", tmp_path)
    assert r.returncode == 0, r.stderr
    report = json.loads((tmp_path / "compare.json").read_text())
    assert report["framework"] == "keras"
    for row in report["epochs"]:
        assert row["max_abs_weight_diff"] < 1e-8  # plain SGD: the same arithmetic
        # Keras reports the loss through a float32 metric: equal to float32 precision
        assert abs(row["bareprop"]["train_loss"] / row["keras"]["train_loss"] - 1) < 1e-6
    # dropout: the Keras twin replays bareprop's masks, so the runs still agree
    r = cli("compare", "--framework", "keras", "--preset", "keras-seed", "--scale", "unit",
            "--lr", "0.05", "--dropout", "0.2", "--data-dir", data, "--no-verify", "--dtype",
            "float64", "--epochs", "1", "--out", tmp_path / "x")
    assert r.returncode == 0, r.stderr
    row = json.loads((tmp_path / "x" / "compare.json").read_text())["epochs"][0]
    assert row["max_abs_weight_diff"] < 1e-8
    r = cli("compare", "--framework", "keras", "--max-norm", "2", "--data-dir", data,
            "--no-verify", "--out", tmp_path / "y")
    assert r.returncode == 2 and "neither --clip-delta nor --max-norm" in r.stderr


def test_compare_refuses_the_notebook_order(tmp_path, data):
    r = cli("compare", "--preset", "seed", "--data-dir", data, "--out", tmp_path)
    assert r.returncode == 2 and "--update-order standard" in r.stderr


def test_save_load_round_trip_every_layer(tmp_path, rng):
    model = bp.Sequential(bp.Dropout(0.1), bp.Linear(6, 5, rng=rng), bp.BatchNorm1d(5),
                          bp.LeakyReLU(0.2), bp.Linear(5, 4, rng=rng), bp.GELU("tanh"),
                          bp.Linear(4, 3, bias=False, rng=rng), bp.Softmax(), clip_delta=0.5)
    model[2].running_mean[:] = rng.normal(size=5)
    path = bp.save(model, tmp_path / "m.npz", extra={"note": "hi"})
    back, meta = bp.load(path, with_meta=True)
    assert meta["extra"] == {"note": "hi"} and meta["version"] == 2
    assert repr(back) == repr(model)
    x = rng.normal(size=(3, 6)).astype(np.float32)
    model.eval()
    back.eval()
    np.testing.assert_array_equal(model(x), back(x))
    with np.load(path, allow_pickle=False) as z:  # readable without pickle
        assert "__meta__" in z.files


def test_model_file_errors(tmp_path, rng):
    model = bp.Sequential(bp.Linear(4, 3, rng=rng))
    path = bp.save(model, tmp_path / "m.npz")
    raw = path.read_bytes()
    (tmp_path / "cut.npz").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(bp.ModelFileError, match="truncated or corrupted"):
        bp.load(tmp_path / "cut.npz")
    # a future format version
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    meta = json.loads(arrays["__meta__"].tobytes())
    meta["version"] = 99
    arrays["__meta__"] = np.frombuffer(json.dumps(meta).encode(), np.uint8)
    np.savez(tmp_path / "v99.npz", **arrays)
    with pytest.raises(bp.ModelFileError, match="version 99 is not supported"):
        bp.load(tmp_path / "v99.npz")
    # weights that do not fit the architecture
    meta["version"] = 1
    arrays["__meta__"] = np.frombuffer(json.dumps(meta).encode(), np.uint8)
    arrays["0.weight"] = np.zeros((3, 5), np.float32)
    np.savez(tmp_path / "shape.npz", **arrays)
    with pytest.raises(bp.ModelFileError, match="do not fit"):
        bp.load(tmp_path / "shape.npz")
    # an object array would need pickle: refused, not executed
    np.savez(tmp_path / "pickle.npz", __meta__=np.array([{"a": 1}], dtype=object))
    with pytest.raises(bp.ModelFileError):
        bp.load(tmp_path / "pickle.npz")


def test_save_is_atomic_when_the_write_fails(tmp_path, rng, monkeypatch):
    model = bp.Sequential(bp.Linear(4, 3, rng=rng))
    path = bp.save(model, tmp_path / "m.npz")
    before = path.read_bytes()

    def disk_full(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("bareprop.archive.os.fsync", disk_full)
    with pytest.raises(bp.ModelFileError, match="No space left"):
        bp.save(bp.Sequential(bp.Linear(4, 3, rng=1)), path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.npz"]  # no temp file left


# -- preprocessing and predict ----------------------------------------------------------
def draw(digit: str, size=(160, 220), ink=(30, 30, 120), paper=(245, 240, 225)):
    im = Image.new("RGB", size, paper)
    d = ImageDraw.Draw(im)
    w, h = size
    if digit == "1":
        d.line([(w * 0.5, h * 0.15), (w * 0.5, h * 0.85)], fill=ink, width=16)
    elif digit == "7":
        d.line([(w * 0.2, h * 0.2), (w * 0.8, h * 0.2), (w * 0.4, h * 0.85)], fill=ink, width=16)
    elif digit == "0":
        d.ellipse([w * 0.2, h * 0.15, w * 0.8, h * 0.85], outline=ink, width=16)
    return im


def test_to_mnist_inverts_crops_and_centres():
    g = np.asarray(draw("1", size=(300, 120)).convert("L"), np.float64)
    m = to_mnist(g)
    assert m.shape == (28, 28) and m.dtype == np.uint8
    assert m[0].max() == 0 and m[:, 0].max() == 0     # black border: inverted, white ink
    rows = np.flatnonzero(m.max(axis=1) > 50)
    assert rows[-1] - rows[0] + 1 <= 21               # fits the 20 px box
    r, c = np.indices(m.shape)
    cy, cx = (r * m).sum() / m.sum(), (c * m).sum() / m.sum()
    assert abs(cy - 13.5) <= 1 and abs(cx - 13.5) <= 1
    with pytest.raises(bp.DataError, match="blank"):
        to_mnist(np.full((30, 30), 255.0))


@pytest.mark.skipif(real_data_dir() is None, reason="real MNIST not found")
def test_predict_drawn_digits(tmp_path):
    run = tmp_path / "run"
    r = cli("train", "--data-dir", real_data_dir() / "mnist", "--epochs", "3", "--out", run,
            "--quiet")
    assert r.returncode == 0, r.stderr
    paths = []
    for digit, size in (("1", (90, 200)), ("7", (300, 300)), ("0", (140, 180))):
        p = tmp_path / f"d{digit}.{'jpg' if digit == '7' else 'png'}"
        draw(digit, size).save(p)
        paths.append(p)
    r = cli("predict", run / "model.npz", *paths, "--json")
    assert r.returncode == 0, r.stderr
    results = json.loads(r.stdout)
    assert [x["class"] for x in results] == ["1", "7", "0"]
    for x in results:
        probs = [t["probability"] for t in x["top"]]
        assert len(probs) == 3 and probs == sorted(probs, reverse=True) and probs[0] > 0.5
    text = cli("predict", run, paths[0])
    assert text.returncode == 0 and text.stdout.split(":")[1].split()[0] == "1"
    bad = tmp_path / "not.png"
    bad.write_bytes(b"not an image")
    r = cli("predict", run, bad)
    assert r.returncode == 2 and "not a PNG or JPEG image" in r.stderr and "Traceback" not in r.stderr


# -- the report, rendered in headless Chromium ----------------------------------------------

def test_report_renders_with_all_images(tmp_path, data):
    run = tmp_path / "run"
    assert cli("train", "--data-dir", data, "--no-verify", "--epochs", "2", "--hidden", "32",
               "--val-fraction", "0.2", "--out", run, "--quiet").returncode == 0
    assert cli("compare", "--data-dir", data, "--no-verify", "--epochs", "1", "--hidden", "32",
               "--out", run).returncode == 0
    r = cli("report", run, "--data-dir", data)
    assert r.returncode == 0, r.stderr
    page = (run / "report.html").read_text()
    assert page.count("<img ") == 8 and "bareprop vs PyTorch" in page
    # an MLP has no image-shaped layer: what it looked at is integrated gradients
    assert "What the network looked at" in page and "integrated gradients (32 steps" in page
    assert "confusion matrix" in page.lower() and "src=\"http" not in page  # self-contained
    assert re.search(r'<p class="big">test accuracy 0\.\d{4}</p>', page)  # said once
    # an MLP's first Linear is drawn as 28x28 weight images, and nothing convolutional
    assert "First-layer weights" in page and "filters" not in page and "Feature maps" not in page
    if CHROMIUM is None:
        pytest.skip("chromium not installed (apt-get install chromium)")
    assert images_loaded(run / "report.html", tmp_path / "chr") == ("true", "8/8")


def test_report_of_a_folder_that_is_not_a_run(tmp_path):
    r = cli("report", tmp_path)
    assert r.returncode == 2 and "no metrics.json" in r.stderr
