"""The speed benchmark: its hand-fused NumPy baseline computes the same SGD as
bareprop (else the comparison means nothing), and the report prints a full table."""
import numpy as np
import pytest

import bareprop as bp
from bareprop import bench, optim
from bareprop.data import Batches, Scaler
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
    rc = bench.main(["--arch", "784-128-10", "--batch", "64", "--repeats", "1",
                     "--examples", "640", "--no-float64", "--no-sklearn", "--no-rss",
                     "--markdown", str(out)])
    assert rc == 0
    text = out.read_text()
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
    # the convolutional rows and their profile (bench_cnn), on the same 640 examples
    cnn = text[text.index("CNN `conv(32,3)"):]
    assert "error" not in cnn
    for row in ("| bareprop |", "| PyTorch eager |", "| GEMMs alone (exact im2col shapes) |",
                "| 3 Conv2d | forward |", "| 0 Conv2d | grads |", "| optimizer | step |"):
        assert row in cnn, row


def test_every_bench_flag_works_through_the_bareprop_command(monkeypatch, capsys):
    from bareprop.cli.main import main

    with pytest.raises(SystemExit) as exc:
        main(["bench", "--help"])
    assert exc.value.code == 0 and "--repeats" in capsys.readouterr().out
    seen = []
    monkeypatch.setattr(bench, "report", lambda args: seen.append(args) or 0)
    assert main(["bench", "--arch", "784-128-10", "--batch", "64", "--repeats", "1",
                 "--examples", "640", "--no-float64", "--no-sklearn", "--no-rss",
                 "--markdown", "x.md"]) == 0
    a = seen[0]
    assert (a.arch, a.batch, a.repeats, a.examples, a.markdown) == (
        ["784-128-10"], [64], 1, 640, "x.md")
    assert a.no_float64 and a.no_sklearn and a.no_rss


def test_paired_reports_the_quartiles_of_each_ratio():
    assert bench._quartiles([3.0]) == (3.0, 3.0)
    assert bench._quartiles([1.0, 2.0, 3.0, 4.0, 5.0]) == (2.0, 4.0)
    x = np.zeros((64, 784), np.uint8)
    y = np.arange(64) % 10
    got = bench.paired({"a": lambda xb, yb: None, "b": lambda xb, yb: sum(range(2000))},
                       lambda: Batches(x, y, 4, Scaler("unit")), repeats=2, segment=2)
    for pair in (("a", "b"), ("b", "a")):
        q1, q3 = got["spread"][pair]
        assert q1 <= got["ratio"][pair] <= q3
    assert got["ratio"]["a", "b"] < 1 < got["ratio"]["b", "a"]
