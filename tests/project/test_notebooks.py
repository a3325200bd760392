"""The notebooks in examples/ run top to bottom in a fresh kernel against the real data,
and the asserts inside them (twin gap < 1e-10, gradient checks, accuracies) hold; their
outputs are not committed."""
import json
import os
import sys
import time
from pathlib import Path

import pytest

from conftest import ROOT, real_data_dir

NOTEBOOKS = sorted((ROOT / "examples").glob("*.ipynb"))


def test_the_five_notebooks_are_there_without_outputs():
    assert [p.name for p in NOTEBOOKS] == ["01-backprop-by-hand.ipynb", "02-inside-a-cnn.ipynb",
                                           "03-optimizers-and-schedules.ipynb",
                                           "04-attention-by-hand.ipynb",
                                           "05-why-did-it-say-7.ipynb"]
    for path in NOTEBOOKS:
        cells = json.loads(path.read_text())["cells"]
        code = [c for c in cells if c["cell_type"] == "code"]
        assert code and all(not c["outputs"] and c["execution_count"] is None for c in code), \
            f"{path.name} has committed outputs: strip them"
        assert sum(c["cell_type"] == "markdown" for c in cells) >= 4, path.name


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_top_to_bottom(path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    pytest.importorskip("torch")
    data = real_data_dir()
    if data is None:
        pytest.skip("no real MNIST data (set BAREPROP_DATA_DIR)")
    # the kernel is this interpreter (ipykernel's own python3 spec runs sys.executable),
    # sees this checkout's bareprop and the real data, and draws figures off screen
    monkeypatch.setenv("BAREPROP_DATA_DIR", str(data))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        [str(ROOT / "src"), *filter(None, [os.environ.get("PYTHONPATH")])]))
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                                     resources={"metadata": {"path": str(path.parent)}})
    t0 = time.perf_counter()
    client.execute()            # raises CellExecutionError, with the cell, on any failure
    seconds = time.perf_counter() - t0
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs
              if o.output_type == "error"]
    assert not errors
    if os.environ.get("BAREPROP_NOTEBOOK_OUT"):          # keep the executed copy to look at
        nbformat.write(nb, Path(os.environ["BAREPROP_NOTEBOOK_OUT"]) / path.name)
    figures = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs
               if "image/png" in o.get("data", {})]
    assert figures, f"{path.name} drew no figure"
    print(f"{path.name}: {seconds:.0f} s on {sys.platform}")


def test_the_docs_say_how_to_open_run_and_keep_them_and_how_long():
    """JupyterLab comes with an extra; every command that runs a notebook keeps its
    outputs (jupyter-execute alone throws them away); the times are measured, dated."""
    import re

    tomllib = pytest.importorskip("tomllib")
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert any(req.startswith("jupyterlab") for req in extras["docs"])
    readme = (ROOT / "README.md").read_text()
    page = (ROOT / "docs" / "notebooks.md").read_text()
    for text in (readme, page):
        runs = [line for line in text.splitlines() if "jupyter-execute examples/" in line]
        assert runs and all("--output=" in r or "--inplace" in r for r in runs), runs
        assert "jupyter lab " in text
    assert re.search(r"Measured on 20\d\d-\d\d-\d\d", page)
    assert re.search(r"notebook 01 \d+ s, 02 \d+ s, 03 \d+ s", page)
    for path in [*NOTEBOOKS, ROOT / "README.md", ROOT / "docs" / "notebooks.md"]:
        assert "about a minute on two" not in path.read_text(), path.name
