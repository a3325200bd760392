"""The speed benchmark: its hand-fused NumPy baseline computes the same SGD as
bareprop (else the comparison means nothing), and the report prints a full table."""
import numpy as np
import pytest

import bareprop as bp
from bareprop import bench, optim
from bareprop.data import Batches, Scaler
from bareprop.fast import kernels
from synthetic import digits_like


def test_lean_numpy_loop_equals_bareprop_sgd_over_an_epoch():
    x, y = digits_like(300, 0)
    # flat rows, as the benchmark feeds every contender
    batches = Batches(x.reshape(len(x), -1), y, 32, Scaler("unit"), np.float64, shuffle=True, seed=3)
    model = bp.Sequential(bp.Linear(784, 20, rng=0, dtype=np.float64), bp.ReLU(inplace=True),
                          bp.Linear(20, 16, rng=1, dtype=np.float64), bp.ReLU(inplace=True),
                          bp.Linear(16, 10, rng=2, dtype=np.float64))
    linears = [m for m in model.layers if isinstance(m, bp.Linear)]
    ws = [lin.weight.data.T.copy() for lin in linears]          # (in, out)
    bs_ = [lin.bias.data.copy() for lin in linears]
    start = [w.copy() for w in ws]

    opt, loss_fn = optim.SGD(model.parameters(), lr=0.05), bp.CrossEntropyLoss()
    for xb, yb in batches.epoch(0):
        loss_fn(model(xb), yb)
        opt.zero_grad()
        model.backward(loss_fn.backward())
        opt.step()
    bench.lean_numpy_epoch(ws, bs_, 0.05, batches)(0)

    for lin, w, b, w0 in zip(linears, ws, bs_, start):
        assert np.abs(w - w0).max() > 1e-4                       # it did train
        np.testing.assert_allclose(w, lin.weight.data.T, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(b, lin.bias.data, rtol=1e-10, atol=1e-12)


def test_bench_report_prints_every_row(tmp_path, monkeypatch):
    pytest.importorskip("threadpoolctl")
    out = tmp_path / "bench.md"
    # one named net: the rows' code is the same for each (bench.nets.net_row and
    # paired_nets take any model); the other nets' rows are checked with stand-in
    # workers in test_no_rss_removes_the_rss_columns_and_the_memory_run. Both nets ran
    # here until the sweep tests came, 65 s of the suite's 15 minutes; one is 16 s less
    rc = bench.main(["--arch", "784-128-10", "--batch", "64", "--repeats", "1",
                     "--examples", "640", "--no-float64", "--no-sklearn", "--no-rss",
                     "--nets", "lstm", "--markdown", str(out)])
    assert rc == 0
    text = out.read_text()
    assert "RSS" not in text                           # --no-rss: no memory column or run
    assert "sgemm peak (2048^3):" in text and "BLAS:" in text
    rows = [line for line in text.splitlines() if line.startswith("| 784-128-10 | 64 |")]
    names = [r.split("|")[3].strip() for r in rows]
    assert names[:2] == ["bareprop", "lean NumPy loop"]
    for r in rows:
        assert "error" not in r
        assert float(r.split("|")[5]) > 0              # seconds, or ms in the GEMM table
    # the paired table: bareprop, lean loop and bound timed in turn; three ratios of them
    paired = [r.split("|") for r in rows if r.split("|")[3].strip()[:1].isdigit()]
    assert len(paired) == 1
    secs, ratios = [float(c) for c in paired[0][3:6]], [float(c) for c in paired[0][6:9]]
    assert all(v > 0 for v in secs + ratios)
    q1, q3 = map(float, paired[0][9].split("-"))        # the middle half of the segments
    assert q1 <= float(paired[0][6].split("(")[0]) <= q3
    # one repeat: each ratio is the ratio of the printed medians (to their rounding)
    for got, (a, b) in zip(ratios, [(0, 2), (1, 2), (0, 1)]):
        want = secs[a] / secs[b]
        assert abs(got - want) <= 0.006 + want * (0.0005 / secs[a] + 0.0005 / secs[b])
    # the per-GEMM table: every GEMM of the step, the update rows, and the verdict row
    gemm = [r for r in rows if r.split("|")[3].strip().startswith(("layer", "SGD", "**all"))]
    ops = [r.split("|")[3].strip() for r in gemm]
    assert ops[:5] == ["layer 1 forward y^T = W x^T", "layer 1 dW = dout^T x",
                       "layer 2 forward y^T = W x^T", "layer 2 dW = dout^T x",
                       "layer 2 dx^T = W^T dout^T"]
    assert any(o.startswith("SGD update of W1") for o in ops)
    assert any(o.startswith("SGD step of W1 fused") for o in ops)       # NumPy's BLAS found
    for r in gemm[:5]:
        assert float(r.split("|")[5]) > 0 and float(r.split("|")[6]) > 0
    assert "**all GEMMs of a step**" in ops
    # each optimizer fused and unfused
    opt_rows = [line.split("|") for line in text.splitlines()
                if line.startswith("| 784-128-10 | ") and line.split("|")[2].split()[0] in
                ("sgd", "momentum", "nesterov", "adam")]
    assert [r[2].split()[0] for r in opt_rows] == ["sgd", "momentum", "nesterov", "adam"]
    for r in opt_rows:
        assert float(r[3]) > 0 and float(r[4]) > 0
    # the convolutional rows and their profile (bench.cnn), on the same 640 examples
    cnn = text[text.index("CNN `conv(32,3)"):]
    assert "error" not in cnn
    for row in ("| bareprop |", "| PyTorch eager |", "| GEMMs alone (exact im2col shapes) |",
                "| optimizer | step |"):
        assert row in cnn, row
    # each conv's row, or its fused block's (named by the layers it stands for)
    fused = "+4 ReLU+5 MaxPool2d" if kernels.get(np.float32) is not None else ""
    assert f"| 3 Conv2d{fused} | forward |" in cnn and "| 0 Conv2d" in cnn
    # the named nets against their PyTorch twins (bench.nets), each with its profile
    nets = text[text.index("Named nets, batch"):]
    assert "error" not in nets
    for name in ["lstm"]:
        row = next(r for r in nets.splitlines()
                   if r.startswith(f"| `{bench.nets.arch_of(name)}` | bareprop |"))
        seconds, ratio = (float(c) for c in row.split("|")[3:5])
        assert seconds > 0 and ratio > 0
    assert "| 1 LSTM | forward |" in nets
    # and paired in one process: both frameworks' seconds, the ratio and its spread
    paired = nets[nets.index("paired in one process"):]
    for name in ["lstm"]:
        row = next(r for r in paired.splitlines()
                   if r.startswith(f"| `{bench.nets.arch_of(name)}` |"))
        bp_s, torch_s, ratio = (float(c) for c in row.split("|")[2:5])
        lo, hi = (float(v) for v in row.split("|")[5].split(".."))
        assert bp_s > 0 and torch_s > 0 and lo <= ratio <= hi


def test_every_bench_flag_works_through_the_bareprop_command(monkeypatch, capsys):
    from bareprop.bench import command
    from bareprop.cli.main import main

    with pytest.raises(SystemExit) as exc:
        main(["bench", "--help"])
    assert exc.value.code == 0 and "--repeats" in capsys.readouterr().out
    seen = []
    monkeypatch.setattr(command, "report", lambda args: seen.append(args) or 0)
    assert main(["bench", "--arch", "784-128-10", "--batch", "64", "--repeats", "1",
                 "--examples", "640", "--no-float64", "--no-sklearn", "--no-rss",
                 "--markdown", "x.md"]) == 0
    a = seen[0]
    assert (a.arch, a.batch, a.repeats, a.examples, a.markdown) == (
        ["784-128-10"], [64], 1, 640, "x.md")
    assert a.no_float64 and a.no_sklearn and a.no_rss


def test_paired_reports_the_quartiles_of_each_ratio():
    assert bench.quartiles([3.0]) == (3.0, 3.0)
    assert bench.quartiles([1.0, 2.0, 3.0, 4.0, 5.0]) == (2.0, 4.0)
    x = np.zeros((64, 784), np.uint8)
    y = np.arange(64) % 10
    got = bench.paired({"a": lambda xb, yb: None, "b": lambda xb, yb: sum(range(2000))},
                       lambda: Batches(x, y, 4, Scaler("unit")), repeats=2, segment=2)
    for pair in (("a", "b"), ("b", "a")):
        q1, q3 = got["spread"][pair]
        assert q1 <= got["ratio"][pair] <= q3
    assert got["ratio"]["a", "b"] < 1 < got["ratio"]["b", "a"]


def _fake_row(task):
    """A row's answer without running it: every number 1, memory 123 MB."""
    kind = task["kind"]
    if kind == "peak":
        return {"float32": 100.0, "float64": 50.0, "blas": "fake", "threads": 2,
                "kernels": "numpy"}
    if kind == "net-paired":
        return {"seconds": {"bareprop": 1.0, "PyTorch eager": 1.0}, "ratio": 1.0,
                "spread": [1.0, 1.0]}
    if kind == "paired":
        return {"seconds": {"bareprop": 1.0, "lean": 1.0, "bound": 1.0}, "bareprop/bound": 1.0,
                "lean/bound": 1.0, "bareprop/lean": 1.0, "bareprop/bound spread": [1.0, 1.0]}
    if kind == "train-rss":
        return {"load_seconds": 0.1, "rss_per_epoch_mb": [100.0] * 3, "peak_rss_mb": 123.0,
                "dataset_float32_mb": 209.0}
    return {"seconds": 1.0, "all": [1.0], "rss_mb": 123.0}


@pytest.mark.parametrize("no_rss", [False, True])
def test_no_rss_removes_the_rss_columns_and_the_memory_run(monkeypatch, capsys, no_rss):
    import argparse

    from bareprop.bench import cnn, kit, nets, tables

    # the report's layout alone: no row is run, whichever module asks for one
    for mod in (kit, tables, cnn, nets):
        monkeypatch.setattr(mod, "run_task", _fake_row)
        monkeypatch.setattr(mod, "available", lambda name: name == "torch")
    p = argparse.ArgumentParser()
    bench.add_arguments(p)
    args = p.parse_args(["--arch", "784-128-10", "--batch", "64", "--repeats", "1",
                         "--no-gemms", "--no-optimizers", "--no-profile"]
                        + (["--no-rss"] if no_rss else []))
    assert bench.report(args) == 0
    text = capsys.readouterr().out
    headers = [line for line in text.splitlines() if line.startswith(("| net | batch | framework",
                                                                      "| framework |"))]
    assert len(headers) == 2                                   # the MLP and the CNN table
    for header in headers:
        assert header.endswith("| peak RSS MB |") != no_rss, header
    # every row has as many cells as its header
    for line in text.splitlines():
        if line.startswith(("| 784-128-10 | 64 | bareprop", "| bareprop |", "| GEMMs alone")):
            want = headers[0] if line.startswith("| 784") else headers[1]
            assert line.count("|") == want.count("|"), line
    assert ("RSS" in text) != no_rss
    assert ("peak RSS 123 MB" in text) != no_rss               # the 3-epoch memory run
    # the named nets: a row each in their table and in the paired one
    for name in nets.NETS:          # the default ones (the convnets: when named)
        assert text.count(f"| `{nets.arch_of(name)}` |") == 2 * (name in nets.DEFAULT_NETS), name


def _bench_help_actions():
    import argparse

    p = argparse.ArgumentParser()
    bench.add_arguments(p)
    return p, [a for a in p._actions if a.help != argparse.SUPPRESS and a.dest != "help"]


def test_every_bench_flag_says_what_it_does_and_its_default():
    p, actions = _bench_help_actions()
    assert len(actions) == 17
    for a in actions:
        assert a.help and "default" in a.help, a.option_strings
        if a.default not in (None, False):                     # the default's value, as typed
            shown = " ".join(map(str, a.default)) if isinstance(a.default, list) else str(a.default)
            assert shown in a.help, (a.option_strings, a.help)
    text = p.format_help()
    assert "minutes" in text and "approximate" in text         # how long a default run takes


def test_bench_help_is_the_same_from_both_entry_points(capsys):
    import subprocess
    import sys

    from bareprop.cli.main import main

    r = subprocess.run([sys.executable, "-m", "bareprop.bench", "--help"], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    with pytest.raises(SystemExit) as exc:
        main(["bench", "--help"])
    assert exc.value.code == 0
    via_cli = capsys.readouterr().out
    _, actions = _bench_help_actions()
    for a in actions:
        for text in (r.stdout, via_cli):
            assert a.option_strings[0] in text
    assert " ".join(r.stdout.split()[r.stdout.split().index("options:"):]) == \
        " ".join(via_cli.split()[via_cli.split().index("options:"):])
    assert bench.__doc__.splitlines()[0] == bench.DESCRIPTION


def test_the_bench_package_is_small_modules_without_diaries():
    """No module over 400 lines; dated timings and issue numbers live in docs/benchmarks.md."""
    import re
    from pathlib import Path

    for path in Path(bench.__file__).parent.glob("*.py"):
        text = path.read_text()
        assert len(text.splitlines()) <= 400, path.name
        assert not re.search(r"issue #?\d|20\d\d-\d\d-\d\d|\d\d:\d\d UTC", text), path.name


def test_benchmark_scripts_import_only_public_bareprop_names():
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "benchmarks"
    for path in root.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("bareprop"):
                assert not any(part.startswith("_") for part in node.module.split(".")), path
                for alias in node.names:
                    assert not alias.name.startswith("_"), (path.name, alias.name)
