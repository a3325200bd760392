"""Hostile model files, checkpoints and run folders: size bombs are refused from their
headers, fast and with little memory; strings from files never become markup in the
report; damaged JSON files of a run folder are one line naming the file."""
import html
import io
import json
import shutil
import subprocess
import sys
import zipfile

import numpy as np
import pytest

from bareprop.cli.main import main

from synthetic import write_dataset

PAYLOAD = "<script>alert(1)</script>"


# -- size bombs -------------------------------------------------------------------------------
def _npy_header(shape, dtype="<f4") -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buf, {"descr": dtype, "fortran_order": False, "shape": tuple(shape)})
    return buf.getvalue()


def _meta(in_features=4, out_features=3, fmt="bareprop-model", layers=None) -> bytes:
    layers = layers or [{"type": "Linear", "in_features": in_features,
                         "out_features": out_features, "bias": True}]
    meta = {"format": fmt, "version": 1, "dtype": "float32", "extra": {},
            "architecture": {"type": "Sequential", "clip_delta": None, "layers": layers}}
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.frombuffer(json.dumps(meta).encode(), np.uint8))
    return buf.getvalue()


def deflate_bomb(path, megabytes=400):
    """A ~0.4 MB file whose one entry inflates to ``megabytes`` of float32 zeros (a
    well-formed .npy: the header states exactly that size)."""
    n = megabytes << 18                                     # float32 elements
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("__meta__.npy", _meta())
        info = zipfile.ZipInfo("0.weight.npy")
        info.compress_type = zipfile.ZIP_DEFLATED
        with zf.open(info, "w", force_zip64=True) as f:
            f.write(_npy_header((n,)))
            chunk = bytes(4 << 20)
            for _ in range(megabytes // 4):
                f.write(chunk)


def header_claims_8gb(path):
    """A tiny stored entry whose .npy header claims 2**31 float32 values (8 GiB)."""
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("__meta__.npy", _meta())
        zf.writestr("0.weight.npy", _npy_header((2 ** 31,)) + bytes(16))


def architecture_claims_4tb(path, meta=None):
    """Valid tiny arrays, but an architecture of Linear(10**6, 10**6): 4 TB to build."""
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("__meta__.npy", meta or _meta(10 ** 6, 10 ** 6))
        for name, shape in (("0.weight", (3, 4)), ("0.bias", (3,))):
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.zeros(shape, np.float32))
            zf.writestr(f"{name}.npy", buf.getvalue())


def conv_claims_36gb(path):
    """The same tiny arrays, and an architecture of Conv2d(1, 10**9, 3): 36 GB to build."""
    architecture_claims_4tb(path, _meta(layers=[
        {"type": "Conv2d", "in_channels": 1, "out_channels": 10 ** 9, "kernel_size": [3, 3],
         "stride": [1, 1], "padding": [0, 0], "bias": True}]))


PROBE = r"""
import json, resource, sys, time
resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))   # a bomb cannot take the machine
import bareprop as bp
from bareprop.train.checkpoint import load_checkpoint
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t = time.perf_counter()
try:
    (bp.load if sys.argv[2] == "model" else load_checkpoint)(sys.argv[1])
    result = "loaded"
except bp.ModelFileError as exc:
    result = "refused: " + str(exc)
except BaseException as exc:
    result = f"crashed: {type(exc).__name__}: {exc}"
grew = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024
print(json.dumps({"result": result, "seconds": time.perf_counter() - t, "grew_mb": grew}))
"""


# a checkpoint's widths are checked by --resume (test_resume_checks: config.hidden)
@pytest.mark.parametrize("loader,craft,fragment", [
    ("model", deflate_bomb, "would inflate"),
    ("checkpoint", deflate_bomb, "would inflate"),
    ("model", header_claims_8gb, "declares shape (2147483648,)"),
    ("checkpoint", header_claims_8gb, "declares shape (2147483648,)"),
    ("model", architecture_claims_4tb, "declares 1000001000000 weights"),   # W and b
    ("model", conv_claims_36gb, "layer 0 out_channels = 1000000000"),
])
def test_size_bombs_are_refused_fast_with_little_memory(tmp_path, loader, craft, fragment):
    path = tmp_path / "bomb.npz"
    craft(path)
    assert path.stat().st_size < 1 << 20
    r = subprocess.run([sys.executable, "-c", PROBE, str(path), loader], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["result"].startswith("refused") and fragment in out["result"], out
    assert out["seconds"] < 1.0, out
    assert out["grew_mb"] < 50, out


def test_a_bomb_through_the_cli_is_one_line(tmp_path):
    header_claims_8gb(tmp_path / "m.npz")
    r = subprocess.run([sys.executable, "-m", "bareprop", "evaluate", str(tmp_path / "m.npz")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "refused as a model file" in r.stderr and "Traceback" not in r.stderr


def test_special_files_are_refused_not_waited_on(tmp_path):
    """A FIFO under a model file's or a run file's name would block a plain reader."""
    import os

    os.mkfifo(tmp_path / "m.npz")
    r = subprocess.run([sys.executable, "-m", "bareprop", "evaluate", str(tmp_path / "m.npz")],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "not a regular file" in r.stderr
    os.mkfifo(tmp_path / "compare.json")
    r = subprocess.run([sys.executable, "-m", "bareprop", "report", str(tmp_path)],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and "compare.json is not a regular file" in r.stderr, r.stderr


# -- the report -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_dataset(tmp_path_factory.mktemp("d") / "mnist")


@pytest.fixture(scope="module")
def run(tmp_path_factory, data):
    """A train run with a compare result beside it."""
    pytest.importorskip("torch")
    out = tmp_path_factory.mktemp("r") / "run"
    args = ["--data-dir", str(data), "--no-verify", "--quiet", "--hidden", "8", "--epochs", "1",
            "--out", str(out)]
    assert main(["train", *args]) == 0
    assert main(["compare", *args]) == 0
    return out


def copy(run, tmp_path):
    dst = tmp_path / "run"
    shutil.copytree(run, dst)
    return dst


def edit(path, change):
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def rename_framework(comp):
    fw = comp["framework"]
    comp["framework"] = PAYLOAD
    for row in comp["epochs"]:
        row[PAYLOAD] = row.pop(fw)
    comp["batch_loss"][PAYLOAD] = comp["batch_loss"].pop(fw)
    comp["verdict"] = PAYLOAD


def test_untrusted_strings_are_escaped_in_the_report(tmp_path, run, data):
    run = copy(run, tmp_path)
    edit(run / "compare.json", rename_framework)
    edit(run / "metrics.json", lambda m: m["config"].update(preset=PAYLOAD, dataset=PAYLOAD,
                                                            note=PAYLOAD))
    edit(run / "inspect.json", lambda r: [rec["activations"].update(
        {PAYLOAD + "$": rec["activations"].popitem()[1]}) for rec in r.values()])
    assert main(["report", str(run), "--data-dir", str(data)]) == 0
    page = (run / "report.html").read_text()
    assert PAYLOAD not in page and "<script>alert" not in page
    assert html.escape(PAYLOAD) in page
    assert f"bareprop vs {html.escape(PAYLOAD)}" in page


@pytest.mark.parametrize("name,damage,fragment", [
    ("compare.json", lambda p: p.write_text("{"), "is not valid JSON"),
    ("compare.json", lambda p: edit(p, lambda c: c.pop("epochs")), "epochs is missing"),
    ("compare.json", lambda p: edit(p, lambda c: c.update(framework=5)), "framework"),
    ("compare.json", lambda p: edit(p, lambda c: c["epochs"][0]["bareprop"].update(
        train_loss="x")), "epochs[0].bareprop.train_loss is not a number"),
    ("compare.json", lambda p: p.write_text("[]"), "is not a JSON object"),
    ("metrics.json", lambda p: edit(p, lambda m: m.update(test_accuracy="high")),
     "test_accuracy is not a number"),
    ("metrics.json", lambda p: edit(p, lambda m: m["history"][0].update(train_loss="x")),
     "history[0].train_loss is not a number"),
    ("metrics.json", lambda p: edit(p, lambda m: m["history"].append({"epoch": 2})),
     "history[1].train_loss is missing"),
    ("metrics.json", lambda p: p.write_text("[1, 2]"), "is not a JSON object"),
    ("metrics.json", lambda p: edit(p, lambda m: m.update(batch_loss=["x"])), "batch_loss"),
    ("inspect.json", lambda p: p.write_text("nope"), "is not valid JSON"),
    ("inspect.json", lambda p: edit(p, lambda r: r.update({"1": {"activations": 3}})),
     "1.activations is not an object"),
    ("inspect.json", lambda p: p.write_bytes(b"\xff\xfe"), "is not valid JSON"),
    ("inspect.json", lambda p: edit(p, lambda r: r["1"]["activations"]["0 Flatten"].update(
        channels={"mean": [0.5], "std": [1.0, 2.0], "zeros": [0.0]})),
     "1.activations.0 Flatten.channels has lists of different lengths"),
    ("inspect.json", lambda p: edit(p, lambda r: r["1"]["activations"]["0 Flatten"].update(
        channels={"mean": ["x"], "std": [1.0], "zeros": [0.0]})),
     "1.activations.0 Flatten.channels.mean is not a list of numbers"),
])
def test_damaged_run_files_are_one_line(tmp_path, run, data, capsys, name, damage, fragment):
    run = copy(run, tmp_path)
    damage(run / name)
    capsys.readouterr()
    assert main(["report", str(run), "--data-dir", str(data)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("bareprop: error: "), err
    assert str(run / name) in err and fragment in err, err
    assert not (run / "report.html").exists()


def test_report_of_a_compare_folder(tmp_path, data):
    pytest.importorskip("torch")
    out = tmp_path / "cmp"
    assert main(["compare", "--data-dir", str(data), "--no-verify", "--hidden", "8",
                 "--epochs", "1", "--out", str(out)]) == 0
    assert not (out / "model.npz").exists() and not (out / "metrics.json").exists()
    assert main(["report", str(out)]) == 0
    page = (out / "report.html").read_text()
    assert "bareprop vs PyTorch" in page and page.count("<img ") == 1
