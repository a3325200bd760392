"""``bareprop explain``: each method's map in --json equals bp.explain on the image as
``predict`` prepares it; the PNGs are written; --fgsm moves no pixel by more than EPS; bad
arguments are one line, exit 2, before any work (no PNG written)."""
import json

import numpy as np
import pytest
from PIL import Image

import bareprop as bp
from bareprop.cli.main import main
from bareprop.preprocess import load_grey, to_mnist

from convrun import write_conv_run
from oneline import refused_here
from synthetic import digits_like


@pytest.fixture(scope="module")
def conv_run(tmp_path_factory):
    return write_conv_run(tmp_path_factory.mktemp("explain") / "run", n_train=120, epochs=1)


@pytest.fixture
def digits(tmp_path):
    x, _ = digits_like(2, 5)
    paths = []
    for i, img in enumerate(x):
        p = tmp_path / f"digit{i}.png"
        Image.fromarray(255 - img).resize((84, 84)).save(p)     # dark ink on paper, bigger
        paths.append(p)
    return paths


def _prepared(run, paths):
    predictor = bp.Predictor.from_file(run / "model.npz")
    x = predictor.prepare(np.stack([to_mnist(load_grey(p)) for p in paths]))
    return predictor.model, x


@pytest.mark.parametrize("method,call", [
    ("saliency", lambda m, x, t: bp.explain.saliency(m, x, t)),
    ("input-x-gradient", lambda m, x, t: bp.explain.input_x_gradient(m, x, t)),
    ("integrated-gradients", lambda m, x, t: bp.explain.integrated_gradients(m, x, t, steps=8)),
    ("gradcam", lambda m, x, t: bp.explain.gradcam(m, x, t)),
    ("occlusion", lambda m, x, t: bp.explain.occlusion(m, x, t, (1, 4, 4), (1, 2, 2))),
])
def test_json_maps_equal_the_library_and_pngs_are_written(conv_run, digits, capsys, tmp_path,
                                                          method, call):
    rc = main(["explain", str(conv_run), *map(str, digits), "--method", method, "--steps", "8",
               "--target", "3", "--json"])
    assert rc == 0
    got = json.loads(capsys.readouterr().out)
    model, x = _prepared(conv_run, digits)
    want = call(model, x, 3)
    for r, w in zip(got, want):
        assert r["method"] == method and r["target"] == "3"
        np.testing.assert_allclose(np.array(r["attribution"]), w, rtol=1e-6, atol=1e-7)
    out = tmp_path / "maps"
    assert main(["explain", str(conv_run), *map(str, digits), "--method", method,
                 "--steps", "8", "--out", str(out)]) == 0
    for p in digits:
        png = out / f"{p.stem}.{method}.png"
        assert png.stat().st_size > 1000
        assert Image.open(png).size[0] > 400                  # three panels side by side


def test_fgsm_moves_no_pixel_by_more_than_eps(conv_run, digits, capsys, tmp_path):
    assert main(["explain", str(conv_run), *map(str, digits), "--fgsm", "0.2", "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    _, x = _prepared(conv_run, digits)
    for r, xi in zip(got, x):
        adv = np.array(r["adversarial"])
        assert np.max(np.abs(adv - xi)) <= 0.2 + 1e-6 and r["max_change"] <= 0.2 + 1e-6
        assert adv.min() >= 0 and adv.max() <= 1                # unit-scaled pixels
    assert main(["explain", str(conv_run), str(digits[0]), "--fgsm", "0.2", "--out",
                 str(tmp_path / "adv")]) == 0
    assert "->" in capsys.readouterr().out
    assert (tmp_path / "adv" / f"{digits[0].stem}.fgsm.png").exists()


@pytest.mark.parametrize("flags,fragment", [
    (["--target", "10"], "target class 10 is outside the model's 10 classes"),
    (["--method", "integrated-gradients", "--steps", "1"], "steps must be an integer of at least 2"),
    (["--method", "gradcam", "--layer", "5"], "not (C, h, w)"),
    (["--method", "occlusion", "--window", "29"], "larger than an example"),
    (["--fgsm", "-0.1"], "--fgsm must be a finite number >= 0"),
])
def test_bad_arguments_are_one_line_before_any_work(conv_run, digits, capsys, tmp_path,
                                                    flags, fragment):
    out = tmp_path / "none"
    rc = main(["explain", str(conv_run), *map(str, digits), "--out", str(out), *flags])
    refused_here(capsys, rc, fragment)
    assert not out.exists()


def test_an_mlp_has_no_gradcam_layer(tmp_path, digits, capsys):
    model = bp.Sequential(bp.Flatten(), bp.Linear(784, 10, rng=0), input_shape=(28, 28))
    bp.save(model, tmp_path / "mlp.npz")
    rc = main(["explain", str(tmp_path / "mlp.npz"), str(digits[0]), "--method", "gradcam"])
    refused_here(capsys, rc, "no layer with an (N, C, h, w) output")


def test_pngs_that_would_overwrite_each_other_or_an_unwritable_out_are_refused_first(
        conv_run, digits, capsys, tmp_path):
    twin = tmp_path / "other" / digits[0].name
    twin.parent.mkdir()
    twin.write_bytes(digits[0].read_bytes())
    rc = main(["explain", str(conv_run), str(digits[0]), str(twin), "--out", str(tmp_path / "o")])
    refused_here(capsys, rc, f"two images are named '{digits[0].stem}'")
    assert not (tmp_path / "o").exists()
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    rc = main(["explain", str(conv_run), str(digits[0]), "--out", str(blocker / "sub")])
    refused_here(capsys, rc, "cannot make that folder")
    assert blocker.read_text() == "x"
