"""The README's examples run as written, each block on its own, and its two set-up
commands are what CI runs."""
import re
import subprocess
import sys

import pytest

from conftest import ROOT, real_data_dir

README = (ROOT / "README.md").read_text()


def test_readme_starts_with_the_two_commands():
    block = re.search(r"```bash\n(.*?)```", README, re.S).group(1).strip().splitlines()
    assert len(block) == 2
    assert block[0].endswith("bareprop train") and "pytest" in block[1]
    assert block[1] in (ROOT / ".ci" / "run").read_text()  # CI runs the README's test command


@pytest.mark.skipif(real_data_dir() is None, reason="real MNIST not found")
def test_readme_example_runs(tmp_path):
    # every python block on its own, in a fresh interpreter and an empty folder: none
    # may lean on a name an earlier block defined
    out = []
    for i, code in enumerate(re.findall(r"```python\n(.*?)```", README, re.S)):
        cwd = tmp_path / str(i)
        cwd.mkdir()
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           timeout=120, cwd=cwd,
                           env={"BAREPROP_DATA_DIR": str(real_data_dir()), "PATH": "/usr/bin:/bin",
                                "HOME": str(cwd), "MPLBACKEND": "Agg",
                                "PYTHONPATH": str(ROOT / "src")})
        assert r.returncode == 0, f"block {i + 1}:\n{r.stderr}"
        out.append(r.stdout)
    stdout = "".join(out)
    assert "loss after 20 steps" in stdout and "Total params: 101,770" in stdout
    assert "(None, 784)" in stdout                       # the summary's shape tuples
    assert "(None, 8, 28, 28)" in stdout                 # ... of the convolutional example
    val, test = map(float, re.search(r"val accuracy ([\d.]+), test accuracy ([\d.]+)",
                                     stdout).groups())
    assert val > 0.85 and test > 0.85                    # the fit/predict_proba snippet learns
    loss = float(re.search(r"loss after 20 steps: ([\d.]+)", stdout).group(1))
    assert loss < 1.0


def test_readme_says_what_the_dev_install_brings_and_costs():
    tomllib = pytest.importorskip("tomllib")
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    names = [re.match(r"[A-Za-z0-9_.-]+", req).group(0) for req in extras["dev"]]
    intro = README.split("\n## ", 1)[0]          # beside the two commands
    assert not [n for n in names if f"`{n}`" not in intro], "name every package of [dev]"
    # how big, how long, and how to see pip's progress
    assert re.search(r"\d(\.\d+)? GB", intro) and re.search(r"\d+ min", intro)
    assert "leave out `-q`" in intro


def test_mpirun_is_the_venvs_and_finds_bareprop():
    for text in (README, (ROOT / "docs" / "distributed.md").read_text()):
        assert ".venv/bin/mpirun" in text and ". .venv/bin/activate" in text
        assert ".venv/bin/mpirun -n" in text and ".venv/bin/bareprop train" in text
