"""Convolutional models from the command line: train --arch on a small synthetic set,
then evaluate, predict and report on it; --resume of a conv run is bit-identical; a bad
--arch is one line and exit 2 before any data loads."""
import json
import re

import numpy as np
import pytest

import bareprop as bp
from bareprop import io
from bareprop.cli.main import main
from bareprop.core.image import image_input_error
from bareprop.errors import ConfigError
from bareprop.experiment import arch
from bareprop.inference import Predictor
from bareprop.train.callbacks import Checkpointer

from oneline import train_here as train, refused_here as one_line
from synthetic import write_dataset

ARCH = "conv(4,3) relu maxpool(2) conv(8,3,padding=1) bn relu maxpool(2) flatten linear(10)"


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_dataset(tmp_path_factory.mktemp("d") / "mnist", n_train=400, n_test=100)


@pytest.fixture(scope="module")
def conv_run(data, tmp_path_factory):
    out = tmp_path_factory.mktemp("r") / "run"
    assert train(data, out, "--arch", ARCH, "--epochs", "1", "--batch-size", "32",
                 "--augment", "affine") == 0
    return out


def test_train_arch_writes_a_conv_model(conv_run, capsys):
    model, meta = io.load(conv_run, with_meta=True)
    assert model.input_shape == (1, 28, 28) and meta["input_shape"] == [1, 28, 28]
    assert arch.format_arch(model) == ARCH.replace(" bn ", " batchnorm ")
    metrics = json.loads((conv_run / "metrics.json").read_text())
    assert metrics["config"]["arch"] == ARCH and metrics["config"]["hidden"] == [128]
    assert set(json.loads((conv_run / "inspect.json").read_text())["1"]["gradients"]) == \
        {name for name, _ in model.named_parameters()}
    assert metrics["test_accuracy"] > 0.3          # 10 classes: it learned something


def test_evaluate_and_predict_a_conv_model(conv_run, data, tmp_path, capsys):
    metrics = json.loads((conv_run / "metrics.json").read_text())
    capsys.readouterr()
    assert main(["evaluate", str(conv_run), "--data-dir", str(data), "--no-verify"]) == 0
    assert f"accuracy: {metrics['test_accuracy']:.4f}" in capsys.readouterr().out
    from PIL import Image

    img = np.full((40, 30), 255, np.uint8)
    img[8:12, 4:26] = 0                            # a dark band, as the synthetic digits
    Image.fromarray(img).save(tmp_path / "a.png")
    assert main(["predict", str(conv_run), str(tmp_path / "a.png"), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert len(result) == 1 and len(result[0]["top"]) == 3
    assert sum(t["probability"] for t in result[0]["top"]) <= 1 + 1e-6
    assert result[0]["class"] in [str(i) for i in range(10)]


def test_report_on_a_conv_run(conv_run, capsys):
    assert main(["report", str(conv_run)]) == 0
    assert (conv_run / "report.html").stat().st_size > 0


def test_a_conv_model_takes_flat_rows_and_names_the_shape_it_expects(conv_run):
    p = Predictor.from_file(conv_run)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (3, 28, 28), dtype=np.uint8)
    rows = images.reshape(3, 784)                  # the same pixels, flat: same answer
    np.testing.assert_array_equal(p.predict_proba(images), p.predict_proba(rows))
    with pytest.raises(ConfigError, match=r"expects 784 inputs \(1, 28, 28\) but the images "
                                          r"have 400 pixels \(20, 20\)"):
        p.predict_proba(rng.integers(0, 255, (2, 20, 20), dtype=np.uint8))
    with pytest.raises(ValueError, match=r"flat data; image layers need \(N, C, H, W\)"):
        p.model(np.zeros((2, 784), np.float32))   # the library call, unshaped


HINT = "channels last? use x.transpose(0, 3, 1, 2)"


def test_channels_last_images_get_the_transpose_hint():
    """(N, H, W, C) images, as Keras and PIL give them: the image layers and the Predictor
    say how to make them (N, C, H, W) instead of naming only the mismatch."""
    x = np.zeros((2, 8, 8, 3), np.float32)
    fresh = bp.Sequential(bp.Conv2d(3, 4, 3, rng=0), bp.ReLU(), bp.Flatten())
    with pytest.raises(ConfigError, match=re.escape(f"got (8, 8, 3) ({HINT})")):
        fresh(x)                                          # no shape yet: built from x
    built = bp.Sequential(bp.Conv2d(3, 4, 3, rng=0), bp.ReLU(), bp.Flatten(),
                          input_shape=(3, 8, 8))
    with pytest.raises(ValueError, match=re.escape(f"got (2, 8, 8, 3) ({HINT})")):
        built(x)
    with pytest.raises(ConfigError, match=re.escape(
            f"the model takes images (3, 8, 8) (channels first) but these are (8, 8, 3): {HINT}")):
        Predictor(built).predict_proba(x.astype(np.uint8))
    np.testing.assert_array_equal(                         # the hint's fix works
        Predictor(built).predict_proba(x.transpose(0, 3, 1, 2)), built_probs(built))
    grey = bp.Sequential(bp.Conv2d(1, 2, 3, rng=0), bp.Flatten())
    with pytest.raises(ConfigError, match=re.escape(HINT)):
        grey(np.zeros((2, 28, 28, 1), np.float32))
    assert HINT not in image_input_error("Conv2d", 3, (2, 5, 8, 8))     # a real mismatch


def built_probs(model):
    return bp.predict_proba(model, np.zeros((2, 3, 8, 8), np.float32))


def test_lenet5_preset_trains_a_step(data, tmp_path, capsys):
    assert main(["train", "--data-dir", str(data), "--no-verify", "--out", str(tmp_path / "run"),
                 "--preset", "lenet5", "--epochs", "1"]) == 0     # not --quiet: the summary
    out = capsys.readouterr().out
    assert "(None, 16, 5, 5)" in out and "Total params: 61,706" in out
    assert out.strip().splitlines()[-1].startswith("test accuracy: ")


@pytest.mark.parametrize("args,fragments", [
    (["--arch", "comv(8,3) flatten linear(10)"],
     ["--arch: unknown layer 'comv' at character 0 (layer 1); did you mean 'conv'?"]),
    (["--arch", "conv(8,3) flatten linear(12)"],
     ["--arch ends in 12 outputs but mnist has 10 classes: end with linear(10)"]),
    (["--arch", "conv(8,3) flatten linear(7)", "--dataset", "fashion-mnist"],
     ["fashion-mnist has 10 classes"]),
    (["--arch", "conv(6,5) maxpool(2) conv(16,5) maxpool(2) conv(8,5) flatten linear(10)"],
     ["conv(8,5) at character 43 (layer 5)", "Conv2d(16, 8, 5)", "larger than its padded "
                                                                 "input 4x4"]),
    (["--arch", "conv(__import__('os'))"], ["at character 15 (layer 1)"]),
    (["--arch", "flatten linear(10)", "--hidden", "64"],
     ["--hidden shapes the MLP, but --arch describes the whole model"]),
    (["--preset", "cnn", "--dropout", "0.2"], ["--dropout", "--arch (here from --preset cnn)"]),
    (["--preset", "cnn", "--batchnorm"], ["--batchnorm shapes the MLP"]),
])
def test_a_bad_arch_is_one_line_before_any_data_loads(args, fragments, tmp_path, capsys,
                                                      monkeypatch):
    from bareprop.experiment import build

    def no_loading(*a, **k):
        raise AssertionError("data loaded before the --arch was checked")

    monkeypatch.setattr(build, "load", no_loading)
    rc = main(["train", "--data-dir", str(tmp_path / "nothing"), "--quiet", "--epochs", "1",
               "--out", str(tmp_path / "run"), *args])
    one_line(capsys, rc, *fragments)
    assert not (tmp_path / "run").exists()              # refused before the folder too


def test_help_describes_arch(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    out = capsys.readouterr().out
    assert "--arch" in out and "conv(32,3,padding=1)" in out


# -- --resume: a conv run stopped after epoch 1 ends bit-identical ------------------------

RESUME = ["--arch", "conv(4,3) bn relu maxpool(2) dropout2d(0.1) flatten linear(16) bn relu "
          "dropout(0.3) linear(10)", "--epochs", "3", "--batch-size", "32", "--augment",
          "affine", "--val-fraction", "0.1", "--schedule", "onecycle", "--seed", "5"]


def weights(run):
    with np.load(run / "model.npz", allow_pickle=False) as z:
        return {k: z[k] for k in z.files if k != "__meta__"}


def stopped_after_epoch_1(data, out, monkeypatch, *args):
    """Train with ``args`` in ``out`` and interrupt it (Ctrl-C) right after epoch 1's
    checkpoint, as a run killed there."""
    original = Checkpointer.on_epoch_end

    def stop(self, state, logs):
        original(self, state, logs)
        if logs["epoch"] == 1:
            raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(Checkpointer, "on_epoch_end", stop)
        assert train(data, out, *args) == 130
    assert (out / "checkpoint.npz").exists() and not (out / "model.npz").exists()
    return out


def test_resume_of_a_conv_run_is_bit_identical(data, tmp_path, monkeypatch, capsys):
    assert train(data, tmp_path / "full", *RESUME) == 0
    full_out = capsys.readouterr().out
    stopped_after_epoch_1(data, tmp_path / "cut", monkeypatch, *RESUME)
    capsys.readouterr()

    assert main(["train", "--resume", str(tmp_path / "cut"), "--data-dir", str(data),
                 "--no-verify", "--quiet"]) == 0
    captured = capsys.readouterr()
    assert "after epoch 1 of 3" in captured.err
    a, b = weights(tmp_path / "full"), weights(tmp_path / "cut")
    assert a.keys() == b.keys() and any(k.endswith("running_var") for k in a)
    for k in a:
        assert np.array_equal(a[k], b[k]), k           # bit-identical, not merely close
    assert full_out.strip().splitlines()[-1] == captured.out.strip().splitlines()[-1]
    metrics = json.loads((tmp_path / "cut" / "metrics.json").read_text())
    assert metrics["config"]["arch"] == RESUME[1] and len(metrics["history"]) == 3


def test_resume_refuses_an_arch_bigger_than_the_checkpoint(data, tmp_path, capsys):
    from bareprop.train.checkpoint import load_checkpoint, save_checkpoint

    out = tmp_path / "run"
    assert train(data, out, "--arch", "flatten linear(10)", "--epochs", "2") == 0
    state = load_checkpoint(out / "checkpoint.npz")
    state["config"]["arch"] = "flatten linear(100000) linear(10)"
    state["epoch"] = 1
    save_checkpoint(out / "checkpoint.npz", state)
    (out / "model.npz").unlink()
    capsys.readouterr()
    rc = main(["train", "--resume", str(out), "--data-dir", str(data), "--no-verify"])
    one_line(capsys, rc, "its config is invalid", "linear(100000) at character 8 (layer 2)",
             "more than the checkpoint holds (7,850)")


def test_an_old_checkpoint_without_arch_still_resumes(data, tmp_path, monkeypatch):
    from bareprop.train.checkpoint import load_checkpoint, save_checkpoint

    out = stopped_after_epoch_1(data, tmp_path / "run", monkeypatch, "--hidden", "8",
                                "--epochs", "2")
    state = load_checkpoint(out / "checkpoint.npz")
    del state["config"]["arch"]                      # as written before --arch existed
    save_checkpoint(out / "checkpoint.npz", state)
    assert main(["train", "--resume", str(out), "--data-dir", str(data), "--no-verify",
                 "--quiet"]) == 0
    assert bp.load(out).layers[1].out_features == 8
