"""Recurrent models from the command line, on a small synthetic set: train --arch "cols
lstm(16) linear(10)", evaluate and predict on it; compare against PyTorch in float64
says MATCH; --resume of a recurrent run is bit-identical; a bad recurrent --arch is one
line before any data loads; the divergence rule stops a relu RNN that blows up and not a
healthy LSTM."""
import json

import numpy as np
import pytest

import bareprop as bp
from bareprop import io
from bareprop.cli.main import main
from bareprop.experiment import arch

from resumable import train_cut_after_first_epoch
from oneline import train_here as train, refused_here as one_line
from synthetic import write_dataset

ARCH = "cols lstm(16) linear(10)"   # the bands are rows: each column sees them


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_dataset(tmp_path_factory.mktemp("d") / "mnist", n_train=300, n_test=100)


@pytest.fixture(scope="module")
def lstm_run(data, tmp_path_factory):
    out = tmp_path_factory.mktemp("r") / "run"
    assert train(data, out, "--arch", ARCH, "--epochs", "3", "--batch-size", "32",
                 "--lr", "0.01") == 0
    return out


def test_train_evaluate_and_predict_a_recurrent_model(lstm_run, data, tmp_path, capsys):
    model, meta = io.load(lstm_run, with_meta=True)
    assert meta["input_shape"] == [1, 28, 28]
    assert [type(m) for m in model.layers] == [bp.Cols, bp.LSTM, bp.Linear]
    assert arch.format_arch(model) == ARCH
    metrics = json.loads((lstm_run / "metrics.json").read_text())
    assert metrics["test_accuracy"] > 0.5               # 10 classes: it learned
    capsys.readouterr()
    assert main(["evaluate", str(lstm_run), "--data-dir", str(data), "--no-verify"]) == 0
    assert f"accuracy: {metrics['test_accuracy']:.4f}" in capsys.readouterr().out
    from PIL import Image

    img = np.full((28, 28), 255, np.uint8)
    img[8:10, 4:24] = 0
    Image.fromarray(img).save(tmp_path / "a.png")
    assert main(["predict", str(lstm_run), str(tmp_path / "a.png"), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result[0]["class"] in [str(i) for i in range(10)]


@pytest.mark.parametrize("net, extra", [
    ("rows lstm(8) linear(10)", ["--optimizer", "sgd", "--momentum", "0.9", "--lr", "0.05"]),
    ("cols gru(6,bidirectional=true) linear(10)", ["--optimizer", "adam", "--lr", "0.003"]),
    ("rows rnn(8,sequences=true) lstm(5,layers=2) linear(10)", []),
])
def test_compare_float64_says_match(net, extra, data, tmp_path, capsys):
    rc = main(["compare", "--data-dir", str(data), "--no-verify", "--dtype", "float64",
               "--epochs", "1", "--arch", net, "--out", str(tmp_path), *extra])
    out = capsys.readouterr().out
    assert rc == 0 and "MATCH" in out, out
    row = json.loads((tmp_path / "compare.json").read_text())["epochs"][0]
    assert row["max_abs_weight_diff"] < 1e-10
    assert row["bareprop"]["test_accuracy"] == row["torch"]["test_accuracy"]


@pytest.mark.parametrize("args, fragments", [
    (["--arch", "lstm(8) linear(10)"], ["lstm(8) at character 0 (layer 1)", "(1, 28, 28)",
                                        "put rows (or cols) before it"]),
    (["--arch", "rows lstm(8) lstm(8) linear(10)"], ["lstm(8) at character 13 (layer 3)",
                                                      "sequences=true"]),
    (["--arch", "rows gru(0) linear(10)"], ["gru(0)", "hidden_size must be a positive"]),
    (["--arch", "rows lstm(8,sequences=true) linear(10)"], ["(28, 8)", "flatten"]),
    (["--arch", "cols rnn(8,nonlinearity=gelu) linear(10)"], ["'tanh' or 'relu'"]),
])
def test_a_bad_recurrent_arch_is_one_line_before_any_data_loads(args, fragments, tmp_path,
                                                                capsys, monkeypatch):
    from bareprop.experiment import build

    def no_loading(*a, **k):
        raise AssertionError("data loaded before the --arch was checked")

    monkeypatch.setattr(build, "load", no_loading)
    rc = main(["train", "--data-dir", str(tmp_path / "nothing"), "--quiet", "--epochs", "1",
               "--out", str(tmp_path / "run"), *args])
    one_line(capsys, rc, *fragments)
    assert not (tmp_path / "run").exists()


RESUME = ["--arch", "rows gru(8,bidirectional=true,sequences=true) lstm(6) linear(10)",
          "--epochs", "3", "--batch-size", "32", "--optimizer", "adam", "--lr", "0.005",
          "--schedule", "onecycle", "--seed", "4"]


def weights(run):
    with np.load(run / "model.npz", allow_pickle=False) as z:
        return {k: z[k] for k in z.files if k != "__meta__"}


def test_resume_of_a_recurrent_run_is_bit_identical(data, tmp_path, capsys):
    assert train(data, tmp_path / "full", *RESUME) == 0
    full_out = capsys.readouterr().out
    assert train_cut_after_first_epoch(train, data, tmp_path / "cut", *RESUME) == 130
    capsys.readouterr()
    assert main(["train", "--resume", str(tmp_path / "cut"), "--data-dir", str(data),
                 "--no-verify", "--quiet"]) == 0
    captured = capsys.readouterr()
    assert "after epoch 1 of 3" in captured.err
    a, b = weights(tmp_path / "full"), weights(tmp_path / "cut")
    assert a.keys() == b.keys() and "1.weight_hh_l0_reverse" in a
    for k in a:
        assert np.array_equal(a[k], b[k]), k           # bit-identical, not merely close
    assert full_out.strip().splitlines()[-1] == captured.out.strip().splitlines()[-1]


def test_the_divergence_rule_stops_a_recurrent_run_that_blows_up(data, tmp_path, capsys):
    """A relu RNN's state grows through the 28 steps once its recurrent weights grow:
    with SGD at lr 100 on raw pixels the loss turns NaN in the first epoch. The run stops
    there with the advice (exit 1), and the same model at a sane rate trains on."""
    rc = train(data, tmp_path / "boom", "--arch", "rows rnn(32,nonlinearity=relu) linear(10)",
               "--optimizer", "sgd", "--lr", "100", "--scale", "raw", "--epochs", "2")
    err = capsys.readouterr().err
    assert rc == 1 and "diverged" in err and "--lr" in err and "Traceback" not in err
    assert not (tmp_path / "boom" / "model.npz").exists()
    assert train(data, tmp_path / "calm", "--arch", "rows rnn(32,nonlinearity=relu) linear(10)",
                 "--optimizer", "sgd", "--lr", "0.01", "--epochs", "2") == 0
    assert train(data, tmp_path / "lstm", "--arch", ARCH, "--epochs", "2") == 0
