"""What every refusal through the CLI must look like: one line, ``bareprop: error: ...``."""


def one_line(capsys, *fragments) -> str:
    """The error the command printed, after checking it is one line naming ``fragments``."""
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("bareprop: error: "), err
    for f in fragments:
        assert f in err, err
    return err
