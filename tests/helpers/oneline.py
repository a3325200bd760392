"""What every refusal through the CLI must look like: one line, ``bareprop: error: ...``,
exit code 2, no traceback; and the bareprop command run as a user runs it."""
import subprocess
import sys


def one_line(capsys, *fragments) -> str:
    """The error the command printed, after checking it is one line naming ``fragments``."""
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("bareprop: error: "), err
    for f in fragments:
        assert f in err, err
    return err


def cli(*args) -> subprocess.CompletedProcess:
    """``bareprop ARGS`` in a fresh interpreter, its output captured."""
    return subprocess.run([sys.executable, "-m", "bareprop", *map(str, args)],
                          capture_output=True, text=True, timeout=120)


def refused(r: subprocess.CompletedProcess, *fragments) -> None:
    """``r`` (from ``cli``) exited 2 with one line naming ``fragments``, no traceback."""
    assert r.returncode == 2, (r.returncode, r.stderr, r.stdout)
    err = r.stderr.strip()
    assert "Traceback" not in r.stderr and len(err.splitlines()) == 1, err
    for f in fragments:
        assert f in err, err


def train_here(data, out, *args) -> int:
    """``bareprop train`` in this process on the dataset folder ``data`` (no checksum
    check, quiet), into ``out``; its exit code."""
    from bareprop.cli.main import main

    return main(["train", "--data-dir", str(data), "--no-verify", "--quiet", "--out", str(out),
                 *map(str, args)])


def refused_here(capsys, rc, *fragments) -> str:
    """An in-process command exited ``rc`` == 2 with one ``bareprop: error:`` line naming
    ``fragments`` and no traceback; the line."""
    err = capsys.readouterr().err.strip()
    assert rc == 2, err
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    assert err.startswith("bareprop: error: ")
    for f in fragments:
        assert f in err, err
    return err
