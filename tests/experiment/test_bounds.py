"""One bound on a model's size, shared by the CLI, the web form and model files
(core.catalog.MAX_PARAMETERS), checked from the shapes alone: a huge --arch is refused in
a second with almost no memory, and a model under the bound is checked without its
weights ever being drawn."""
import json
import subprocess
import sys

import numpy as np
import pytest

import bareprop as bp
from bareprop.core.catalog import MAX_PARAMETERS
from bareprop.errors import ConfigError
from bareprop.experiment import make_config

# a check in a fresh process: (seconds, MB of peak RSS it added, the refusal or "accepted")
PROBE = r"""
import json, resource, sys, time
resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))   # a bomb cannot take the machine
from bareprop.experiment import make_config
from bareprop.errors import BarepropError
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t = time.perf_counter()
try:
    make_config(json.loads(sys.argv[1]))
    result = "accepted"
except BarepropError as exc:
    result = str(exc)
print(json.dumps({"seconds": time.perf_counter() - t, "result": result,
                  "grew_mb": (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024}))
"""


def probe(settings: dict) -> dict:
    r = subprocess.run([sys.executable, "-c", PROBE, json.dumps(settings)], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_a_huge_arch_is_refused_from_its_shapes_fast_and_small():
    out = probe({"arch": "flatten linear(1000000) linear(10)"})
    assert out["result"].startswith("--arch: linear(1000000) at character 8 (layer 2): would "
                                     "bring the model to 785,000,000 parameters, more than "
                                     f"any model bareprop builds ({MAX_PARAMETERS:,})"), out
    assert out["seconds"] < 5 and out["grew_mb"] < 50, out


def test_a_large_model_under_the_bound_is_checked_without_drawing_its_weights():
    # 78.5 M weights: 314 MB of float32 to draw if the check built it for real
    out = probe({"arch": "flatten linear(100000) linear(10)"})
    assert out["result"] == "accepted" and out["grew_mb"] < 100, out


def test_the_mlp_flags_share_the_bound():
    # 20000 x 20000 fits in memory here (1.9 GB x 6 copies is refused only on small
    # machines) but is past the bound every model shares
    with pytest.raises(ConfigError, match=r"--hidden makes a model of 415,920,010 "
                                          r"parameters, more than any model bareprop builds"):
        make_config({"hidden": (20000, 20000), "batch_size": 1})


def test_the_web_form_refuses_it_before_building_anything():
    from bareprop.web.form import FormError, to_argv

    with pytest.raises(FormError) as exc:
        to_argv({"arch": "flatten linear(1000000) linear(10)"})
    assert exc.value.field == "arch" and "more than any model bareprop builds" in str(exc.value)


def test_a_model_file_declaring_more_is_refused_before_building(tmp_path):
    model = bp.Sequential(bp.Flatten(), bp.Linear(784, 10, rng=0), input_shape=(28, 28))
    path = bp.save(model, tmp_path / "m.npz")
    meta, arrays = bp.modelfile.read_archive(path, "model.npz", "bareprop-model", (1, 2),
                                             "model file")
    meta["architecture"]["layers"][1]["out_features"] = 200_000      # 157 M weights
    bp.modelfile.write_archive(path, meta, arrays)
    with pytest.raises(bp.ModelFileError, match=f"more than any model bareprop builds "
                                                f"\\({MAX_PARAMETERS}\\)"):
        bp.load(path)


def test_a_model_loaded_from_a_file_draws_no_weights_it_then_overwrites(tmp_path, monkeypatch):
    """Rebuilding a layer for its file's weights draws nothing (init=None), so loading
    costs the file's arrays and not a second, random set."""
    model = bp.Sequential(bp.Linear(6, 4, rng=0), bp.ReLU(), bp.Linear(4, 2, rng=1))
    path = bp.save(model, tmp_path / "m.npz")
    drawn = []
    real = bp.Linear.reset_parameters
    monkeypatch.setattr(bp.Linear, "reset_parameters",
                        lambda self, rng: drawn.append(self) or real(self, rng))
    bp.Linear(3, 2, rng=0)
    assert len(drawn) == 1                     # the spy sees a layer that draws
    back = bp.load(path)
    assert len(drawn) == 1
    x = np.ones((3, 6), np.float32)
    np.testing.assert_array_equal(back(x), model(x))
