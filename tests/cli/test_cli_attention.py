"""Vision transformers from the command line: the --arch of the issue builds; compare
says MATCH in float64; a run with dropout inside its encoder blocks trains, saves, loads,
evaluates and predicts, and its --resume is bit-identical (the inner Dropouts' masks are
reseeded per epoch like top-level ones); a bad --arch is one line before any data loads."""
import json

import numpy as np
import pytest

import bareprop as bp
from bareprop.cli.main import main
from bareprop.experiment import arch

from resumable import train_cut_after_first_epoch
from oneline import cli
from oneline import train_here as train
from synthetic import write_dataset

ISSUE_ARCH = ("patches(7,64) posembed transformer(heads=4,ff=128) transformer(heads=4,ff=128) "
              "meanpool layernorm linear(10)")
SMALL = "patches(7,16) posembed transformer(heads=2,ff=32,dropout=0) meanpool linear(10)"
DROPPING = ("patches(7,16) clstoken posembed transformer(heads=2,ff=32,dropout=0.2,"
            "activation=gelu,norm_first=true) firsttoken layernorm linear(10)")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_dataset(tmp_path_factory.mktemp("d") / "mnist", n_train=300, n_test=100)


def test_the_issues_arch_builds_and_writes_back():
    model = arch.build(ISSUE_ARCH, (1, 28, 28), n_classes=10)
    assert model.output_shape() == (10,)
    assert [type(m).__name__ for m in model.layers] == [
        "PatchEmbed", "PositionalEmbedding", "TransformerEncoderLayer",
        "TransformerEncoderLayer", "TokenMeanPool", "LayerNorm", "Linear"]
    assert model.shapes[:4] == [(16, 64)] * 4
    again = arch.build(arch.format_arch(model), (1, 28, 28))
    assert [m.spec() for m in again.layers] == [m.spec() for m in model.layers]


def test_compare_float64_is_a_match(data, tmp_path):
    r = cli("compare", "--data-dir", data, "--no-verify", "--dtype", "float64", "--epochs", "1",
            "--arch", SMALL, "--batch-size", "50", "--out", tmp_path)
    assert r.returncode == 0, r.stderr
    assert "MATCH" in r.stdout
    row = json.loads((tmp_path / "compare.json").read_text())["epochs"][0]
    assert row["max_abs_weight_diff"] < 1e-10
    assert row["bareprop"]["test_accuracy"] == row["torch"]["test_accuracy"]


def _weights(run):
    with np.load(run / "model.npz", allow_pickle=False) as z:
        return {k: z[k] for k in z.files if k != "__meta__"}


RESUME = ["--arch", DROPPING, "--epochs", "3", "--batch-size", "32", "--seed", "5",
          "--optimizer", "adamw", "--lr", "1e-3"]


def test_resume_with_dropout_inside_the_blocks_is_bit_identical(data, tmp_path, capsys):
    assert train(data, tmp_path / "full", *RESUME) == 0
    assert train_cut_after_first_epoch(train, data, tmp_path / "cut", *RESUME) == 130
    capsys.readouterr()
    assert main(["train", "--resume", str(tmp_path / "cut"), "--data-dir", str(data),
                 "--no-verify", "--quiet"]) == 0
    assert "after epoch 1 of 3" in capsys.readouterr().err
    a, b = _weights(tmp_path / "full"), _weights(tmp_path / "cut")
    assert a.keys() == b.keys() and "3.self_attn.in_proj_weight" in a
    for k in a:
        assert np.array_equal(a[k], b[k]), k               # bit-identical, not merely close


def test_masks_differ_between_epochs_and_inner_dropouts_are_reseeded():
    """fit's reseed reaches the Dropouts inside a block (model.modules()), each with its
    own generator per (seed, epoch, layer)."""
    from bareprop.train.loop import reseed

    model = arch.build(DROPPING, (1, 28, 28), dtype=np.float64)
    inner = [m for m in model.modules() if isinstance(m, bp.Dropout)]
    assert len(inner) == 4                         # dropout, dropout1, dropout2, attention's
    reseed(model, 5, 1)
    first = [m.rng.random() for m in inner]
    reseed(model, 5, 1)
    assert [m.rng.random() for m in inner] == first
    assert len(set(first)) == 4
    reseed(model, 5, 2)
    assert [m.rng.random() for m in inner] != first


def test_a_transformer_run_saves_loads_evaluates_and_predicts(data, tmp_path, capsys):
    out = tmp_path / "run"
    assert train(data, out, "--arch", DROPPING, "--epochs", "1", "--batch-size", "32") == 0
    model = bp.load(out / "model.npz")
    assert type(model.layers[3]) is bp.TransformerEncoderLayer
    assert model.layers[3].self_attn.dropout.p == 0.2
    x = np.random.default_rng(0).random((4, 1, 28, 28))
    again = bp.load(bp.save(model, tmp_path / "again.npz"))
    np.testing.assert_array_equal(again.eval()(x), model.eval()(x))
    capsys.readouterr()
    assert main(["evaluate", str(out), "--data-dir", str(data), "--no-verify"]) == 0
    assert "accuracy" in capsys.readouterr().out.lower()


@pytest.mark.parametrize("text, fragments", [
    ("patches(7,64) transformer(heads=5) meanpool linear(10)",
     ["transformer(heads=5) at character 14 (layer 2)",
      "embed_dim 64 is not divisible by num_heads 5"]),
    ("patches(5,64) meanpool linear(10)",
     ["28x28 images do not split into 5x5 patches", "1, 2, 4, 7, 14, 28"]),
    ("posembed flatten linear(10)",
     ["PositionalEmbedding takes a sequence of tokens (T, E), but its input has shape "
      "(1, 28, 28) (an image"]),
    ("patches(7,64) transformer(heads=4) meanpool transformer linear(10)",
     ["(layer 4)", "TransformerEncoderLayer takes a sequence of tokens (T, E), but its "
      "input has shape (64,)"]),
    ("patches(7,64) transformer(heads=4,activation=tanh) meanpool linear(10)",
     ["activation must be 'relu' or 'gelu', got 'tanh'"]),
])
def test_a_bad_arch_is_one_line_before_any_data_loads(text, fragments, tmp_path, capsys,
                                                      monkeypatch):
    from bareprop.experiment import build

    def no_loading(*a, **k):
        raise AssertionError("data loaded before the --arch was checked")

    monkeypatch.setattr(build, "load", no_loading)
    rc = main(["train", "--data-dir", str(tmp_path / "nothing"), "--quiet", "--epochs", "1",
               "--out", str(tmp_path / "run"), "--arch", text])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and "Traceback" not in err, err
    for f in fragments:
        assert f in err, err
