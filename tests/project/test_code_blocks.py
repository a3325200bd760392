"""Every ```python block of the docs runs on its own: each in a fresh interpreter, in an
empty folder, with nothing defined before it (README.md's blocks: test_readme.py, which
also checks what they print). A block that cannot run here starts with the line
`# not run: <why>` (e.g. `# not run: needs a GPU`); there are few, each says why.
"""
import re
import subprocess
import sys

import pytest

from conftest import ROOT, real_data_dir

FENCE = re.compile(r"^( *)```python[ \t]*\n(.*?)^\1```", re.S | re.M)
NOT_RUN = re.compile(r"# not run: (\S.*)")
MAX_NOT_RUN = 2
# a block may need an optional extra the suite's [dev] install brings; without it, skip
EXTRAS = ("torch", "onnx", "onnxruntime", "safetensors", "tensorboardX", "matplotlib", "mpi4py")


def python_blocks(path):
    """[(line number, code)] of every ```python block in ``path``, dedented."""
    text = path.read_text()
    out = []
    for m in FENCE.finditer(text):
        indent = len(m.group(1))
        code = "".join(line[indent:] for line in m.group(2).splitlines(keepends=True))
        out.append((text[:m.start()].count("\n") + 1, code))
    return out


def run_block(code: str, cwd, timeout: float = 180) -> subprocess.CompletedProcess:
    """``code`` alone, in a fresh interpreter of this environment, in ``cwd``; this
    checkout's bareprop, the real data when there is some, no display."""
    env = {"PATH": "/usr/bin:/bin", "HOME": str(cwd), "MPLBACKEND": "Agg",
           "PYTHONPATH": str(ROOT / "src")}
    if real_data_dir() is not None:
        env["BAREPROP_DATA_DIR"] = str(real_data_dir())
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=timeout, cwd=cwd, env=env)


def skip_for_missing_extra(result) -> None:
    missing = re.search(r"ModuleNotFoundError: No module named '([\w.]+)'", result.stderr)
    if missing and missing.group(1).split(".")[0] in EXTRAS:
        pytest.skip(f"needs {missing.group(1)} (pip install -e '.[dev]')")


DOC_PAGES = sorted((ROOT / "docs").glob("*.md"))
DOC_BLOCKS = [(page, line, code) for page in DOC_PAGES for line, code in python_blocks(page)]


def test_the_blocks_are_found_and_few_are_not_run():
    readme = python_blocks(ROOT / "README.md")
    assert len(readme) >= 3 and len(DOC_BLOCKS) >= 7
    # an indented block (inside a list item) is found too
    assert FENCE.search("- item\n\n  ```python\n  x = 1\n  ```\n")
    not_run = [(path.name, line, code.splitlines()[0])
               for path, blocks in [(ROOT / "README.md", readme)]
               + [(p, python_blocks(p)) for p in DOC_PAGES]
               for line, code in blocks if code.startswith("# not run")]
    assert len(not_run) <= MAX_NOT_RUN, not_run
    for name, line, first in not_run:
        assert NOT_RUN.fullmatch(first), f"{name}:{line}: say why after '# not run: '"


@pytest.mark.parametrize("page, line, code", DOC_BLOCKS,
                         ids=[f"{p.name}:{n}" for p, n, _ in DOC_BLOCKS])
def test_every_docs_block_runs_on_its_own(page, line, code, tmp_path):
    if NOT_RUN.match(code.splitlines()[0]):
        pytest.skip(code.splitlines()[0])
    r = run_block(code, tmp_path)
    skip_for_missing_extra(r)
    assert r.returncode == 0, f"{page.name}:{line}\n{r.stderr[-3000:]}"
