"""Ctrl-C while the bareprop command is still importing NumPy and its commands: one line
and exit 130, never a traceback from an import."""
import subprocess
import sys

# What the installed ``bareprop`` script does, with Ctrl-C arriving while NumPy loads.
ENTRY_POINT_WITH_CTRL_C = """
import sys
class CtrlC:
    def find_spec(self, name, path=None, target=None):
        if name == "numpy":
            raise KeyboardInterrupt
sys.meta_path.insert(0, CtrlC())
from bareprop.cli.main import main
sys.exit(main(["train", "--help"]))
"""


def test_ctrl_c_during_startup_imports_is_one_line():
    r = subprocess.run([sys.executable, "-c", ENTRY_POINT_WITH_CTRL_C], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 130, r.stderr
    assert r.stderr == "bareprop: interrupted\n"


def test_the_entry_point_module_imports_no_numpy():
    r = subprocess.run([sys.executable, "-c", "import sys, bareprop.cli.main; "
                        "print(sorted(m for m in ('numpy', 'bareprop.core') if m in sys.modules))"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.strip() == "[]", r.stdout + r.stderr
