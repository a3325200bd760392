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


# ``bareprop ... | head`` after head has gone: output to a pipe whose reader closed.
# "evaluate --help" exits through argparse (SystemExit); "--version" returns normally
# and its line only fails at the flush; the mock command prints until the pipe breaks.
PRINTS_UNTIL_THE_PIPE_BREAKS = """
import sys
from bareprop.cli import main as cli
def chatty(argv):
    for i in range(10 ** 6):
        print("line", i)
    return 0
cli._main = chatty
sys.exit(cli.main([]))
"""


def _into_a_closed_pipe(args):
    p = subprocess.Popen([sys.executable, *args], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    p.stdout.close()                                   # the reader is gone at once
    err = p.stderr.read().decode()
    return p.wait(timeout=60), err


def test_a_closed_pipe_on_stdout_ends_quietly():
    for args in (["-m", "bareprop", "--version"], ["-m", "bareprop", "evaluate", "--help"],
                 ["-c", PRINTS_UNTIL_THE_PIPE_BREAKS]):
        code, err = _into_a_closed_pipe(args)
        assert "Traceback" not in err and "BrokenPipe" not in err, (args, err)
        assert code in (0, 141), (args, code, err)
    assert _into_a_closed_pipe(["-c", PRINTS_UNTIL_THE_PIPE_BREAKS])[0] == 141
