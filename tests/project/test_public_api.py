"""The public facade: ``import bareprop as bp`` costs no NumPy import, every name it lists
resolves, and it lists nothing a user did not ask for (dir(bp) once showed the
``annotations`` and ``importlib`` its own module used)."""
import subprocess
import sys

import bareprop as bp


def test_dir_lists_only_public_names_and_each_resolves():
    names = dir(bp)
    assert "annotations" not in names and "importlib" not in names
    assert not [n for n in names if n.startswith("_") and n != "__version__"]
    for name in names:
        assert getattr(bp, name) is not None, name
    assert set(bp.__all__) <= set(names)


def test_import_bareprop_imports_no_numpy():
    code = "import sys, bareprop; print('numpy' in sys.modules)"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.stdout.strip() == "False", r.stderr


def test_star_import_gives_the_layers_of_the_catalog():
    scope = {}
    exec("from bareprop import *", scope)
    assert scope["Linear"] is bp.Linear and scope["SiLU"] is bp.SiLU and "fit" in scope
