"""The README's example runs as written, and its two set-up commands are what CI runs."""
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
    # every python block, in order, as one program (later blocks use earlier names)
    code = "\n".join(re.findall(r"```python\n(.*?)```", README, re.S))
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       timeout=120, cwd=tmp_path,
                       env={"BAREPROP_DATA_DIR": str(real_data_dir()), "PATH": "/usr/bin:/bin",
                            "HOME": str(tmp_path)})
    assert r.returncode == 0, r.stderr
    assert "loss after 20 steps" in r.stdout and "Total params: 101,770" in r.stdout
    assert "(None, 784)" in r.stdout                     # the summary's shape tuples
    assert "(None, 8, 28, 28)" in r.stdout               # ... of the convolutional example
    val, test = map(float, re.search(r"val accuracy ([\d.]+), test accuracy ([\d.]+)",
                                     r.stdout).groups())
    assert val > 0.85 and test > 0.85                    # the fit/predict_proba snippet learns
    loss = float(re.search(r"loss after 20 steps: ([\d.]+)", r.stdout).group(1))
    assert loss < 1.0
