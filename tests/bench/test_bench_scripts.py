"""The scripts in benchmarks/ that the speed docs quote: they run, print the table the
docs copy, and leave nothing behind (compare_revisions' git worktrees)."""
import importlib
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NUM = r"(\d+\.\d+)"


def _script(name: str):
    """The module of benchmarks/<name>.py (imported from there, sys.path left as it was)."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.pop(0)


def _worktrees() -> list[str]:
    out = subprocess.run(["git", "-C", str(ROOT), "worktree", "list", "--porcelain"],
                         capture_output=True, text=True, check=True).stdout
    return [line for line in out.splitlines() if line.startswith("worktree ")]


def test_compare_revisions_times_both_sides_and_removes_its_worktrees():
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    before = _worktrees()
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "compare_revisions.py"),
                        "--base", "HEAD", "--head", "HEAD", "--pairs", "1", "--warmup", "2",
                        "--arch", "784-128-10", "cnn", "--examples", "512", "--dtype", "float64"],
                       capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-2000:]
    row = re.search(rf"\| 784-128-10 \| 128 \| sgd \| {NUM} \| {NUM} \| {NUM} \|", r.stdout)
    assert row, r.stdout
    base, head, ratio = map(float, row.groups())
    assert base > 0 and head > 0
    assert abs(ratio - head / base) <= 0.006 + (head / base) * (0.0005 / base + 0.0005 / head)
    assert re.search(rf"\| cnn \| 128 \| sgd \| {NUM} \| {NUM} \| {NUM} \|", r.stdout), r.stdout
    assert "dtype: float64; examples timed per epoch: 512" in r.stdout
    assert "command: python benchmarks/compare_revisions.py" in r.stdout
    assert "data: MNIST" in r.stdout or "data: random pixels" in r.stdout
    assert _worktrees() == before                      # its checkouts are gone


def test_after_gemm_prints_each_piece_of_work_alone_and_after(capsys):
    after_gemm = _script("after_gemm")
    assert after_gemm.main(["--calls", "3"]) == 0
    rows = re.findall(rf"\| (\w+) \| {NUM} \| {NUM} \| {NUM} \|", capsys.readouterr().out)
    assert [r[0] for r in rows] == ["mask", "bias", "small"]
    for _, alone, after, ratio in rows:
        assert float(alone) > 0 and float(after) > 0
        assert float(ratio) == pytest.approx(float(after) / float(alone), abs=0.06 + 0.1 * float(ratio))


def test_gemm_layouts_times_every_gemm_both_ways(capsys):
    gemm_layouts = _script("gemm_layouts")
    assert gemm_layouts.main(["--arch", "784-16-16-10", "--batch", "8", "--calls", "3"]) == 0
    out = capsys.readouterr().out
    rows = re.findall(rf"\| 784-16-16-10 \| 8 \| ([^|]+) \| {NUM} \| {NUM} \| {NUM} \|", out)
    # 3 layers: forward and dW each, dx for all but the first, then the total
    assert [r[0].split(" (")[0] for r in rows] == [
        "layer 1 forward", "layer 1 dW", "layer 2 forward", "layer 2 dW", "layer 2 dx",
        "layer 3 forward", "layer 3 dW", "layer 3 dx", "**all GEMMs of a step**"]
    for _, row, feat, ratio in rows:
        assert float(row) > 0 and float(feat) > 0
        r, f = float(row), float(feat)                # printed to 0.1 us
        assert abs(float(ratio) - f / r) <= 0.006 + (f / r) * (0.05 / r + 0.05 / f)
    total = rows[-1]
    assert float(total[1]) == pytest.approx(sum(float(r[1]) for r in rows[:-1]), abs=0.5)
    assert "machine:" in out and "command: python benchmarks/gemm_layouts.py" in out


def test_gemm_layouts_forms_compute_the_same_products():
    gemm_layouts = _script("gemm_layouts")
    import numpy as np

    gemms = gemm_layouts.step_gemms((6,), 4, np.random.default_rng(0))
    for label, row_fn, feat_fn in gemms:
        a, b = row_fn(), feat_fn()
        assert not np.shares_memory(a, b)            # each form writes its own output
        # dW either way; y and dx come out as transposes of each other
        np.testing.assert_allclose(a, b if "dW" in label else b.T, rtol=1e-5)


def _numpy_floor():
    return _script("numpy_floor")


def test_numpy_floor_prints_every_contender_against_the_bound(capsys, monkeypatch):
    from bareprop.fast import kernels

    compiled = kernels.available()
    monkeypatch.setattr(kernels, "_choice", None)          # the script sets modes: restored
    argv = ["--arch", "784-16-10", "--batch", "32", "--repeats", "1", "--examples", "1024"]
    assert _numpy_floor().main(argv + (["--compiled"] if compiled else [])) == 0
    out = capsys.readouterr().out
    rows = re.findall(rf"\| 784-16-10 \| 32 \| ([^|]+) \| {NUM} \| {NUM}-{NUM} \| (\d+) \|", out)
    names = [r[0] for r in rows]
    want = ["bound", "bound + element-wise", "NumPy floor"] + (["compiled floor"] if compiled
                                                              else []) + ["bareprop"]
    assert names == want + (["bareprop, compiled"] if compiled else [])
    assert rows[0][1:4] == ("1.00", "1.00", "1.00")
    for _, ratio, q1, q3, us in rows:
        assert float(q1) <= float(ratio) <= float(q3) and float(ratio) > 0 and int(us) > 0
    assert "machine:" in out and "command: python benchmarks/numpy_floor.py" in out


@pytest.mark.parametrize("kernels_", ["numpy", "numba"])
def test_the_floor_computes_bareprops_sgd_step(monkeypatch, kernels_):
    """The floor is a floor for the same work: its weights after a few steps equal
    bareprop's fused SGD step's within float32 rounding."""
    import numpy as np

    from bareprop.bench import bareprop_step
    from bareprop.fast import kernels

    if kernels_ == "numba" and not kernels.available():
        pytest.skip("numba is not installed")
    monkeypatch.setattr(kernels, "_choice", None)          # restored after the test
    kernels.use("numpy")                                    # bareprop on the NumPy path
    nf = _numpy_floor()
    step = bareprop_step((24, 16), np.float32)
    floor = nf.floor_from(step, 32, kernels_)
    start = [w.copy() for w in floor.ws]
    rng = np.random.default_rng(0)
    for _ in range(5):
        x = rng.random((32, 784), dtype=np.float32)
        y = rng.integers(0, 10, 32)
        want, _ = step(x, y)
        assert floor(x, y) == pytest.approx(want, rel=1e-5)
    lins = [m for m in step.model.layers if hasattr(m, "weight")]
    assert len(lins) == len(floor.ws) == 3
    for m, w, b, w0 in zip(lins, floor.ws, floor.bs, start):
        np.testing.assert_allclose(w, m.weight.data, rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(b, m.bias.data, rtol=1e-5, atol=1e-7)
        assert abs(w - w0).max() > 1e-4                 # and the weights did move


def test_conv_blocks_times_both_paths_and_profiles_the_compiled_one(capsys):
    from bareprop.fast import kernels
    if kernels.compiled() is None:
        pytest.skip("numba is not installed")
    conv_blocks = _script("conv_blocks")
    assert conv_blocks.main(["--batch", "4", "--rounds", "2", "--steps", "1"]) == 0
    out = capsys.readouterr().out
    rows = re.findall(rf"\| ([\w-]+) \| {NUM} \| {NUM} \| {NUM} \|", out)
    assert [r[0] for r in rows] == ["bench-cnn", "cnn"]
    for _, ref, fast, ratio in rows:
        assert float(ref) > 0 and float(fast) > 0 and float(ratio) > 0
    assert "| 0 Conv2d+1 BatchNorm2d+2 ReLU+3 MaxPool2d | forward |" in out    # the cnn's
    assert "| 0 Conv2d+1 ReLU+2 MaxPool2d | grads |" in out                  # the bench CNN's
    assert "command: python benchmarks/conv_blocks.py --batch 4" in out
