"""The Train form (web/form.py) in-process: it accepts and refuses exactly what
``bareprop train`` does, names the field from the error itself, and words a refused
value for the page."""
import pytest

from bareprop.cli.args import explicit_settings
from bareprop.cli.main import build_parser
from bareprop.errors import ConfigError
from bareprop.experiment import check_flags, make_config
from bareprop.experiment.flags import BY_FIELD
from bareprop.web import form
from bareprop.web.form import FormError, to_argv


def cli_accepts(argv: list[str]) -> bool:
    """Whether ``bareprop train ARGV`` gets past its parser and config checks."""
    try:
        args = build_parser().parse_args(["train", *argv])
    except SystemExit:                  # the one-line argparse error
        return False
    explicit = explicit_settings(args)
    try:
        check_flags(explicit, make_config(explicit))
    except ConfigError:
        return False
    return True


def cli_argv(body: dict) -> list[str]:
    """The flags the command line would be given for ``body``, one value per argument
    as the form passes them."""
    argv = []
    for key, value in body.items():
        if key == "hidden":
            argv += ["--hidden", *map(str, value)]
        else:
            argv.append(f"{BY_FIELD[key].name}={value}")
    return argv


CASES = [
    {"epochs": 1}, {"epochs": 0}, {"epochs": -1}, {"epochs": "3"}, {"epochs": "x"},
    {"epochs": 2.5}, {"epochs": "1e3"},
    {"lr": 0.1}, {"lr": 0}, {"lr": -1}, {"lr": "inf"}, {"lr": "nan"}, {"lr": "1e-3"},
    {"lr": "abc"}, {"lr": "--lr=1"},
    {"dropout": 0.5}, {"dropout": 1}, {"dropout": 1.5}, {"dropout": -0.1},
    {"val_fraction": 0.2}, {"val_fraction": 1}, {"label_smoothing": 1.5},
    {"seed": 0}, {"seed": -1}, {"seed": "7"}, {"seed": 1.5},
    {"batch_size": 1}, {"batch_size": 0}, {"weight_decay": 1e-4}, {"weight_decay": -1},
    {"optimizer": "sgd", "momentum": 0.9}, {"optimizer": "adam", "momentum": 0.9},
    {"optimizer": "adm"}, {"preset": "cnn"}, {"preset": "nope"},
    {"preset": "cnn", "hidden": [8]}, {"preset": "best-mlp", "optimizer": "adam"},
    {"preset": "seed", "optimizer": "adam"}, {"schedule": "plateau"},
    {"schedule": "plateau", "val_fraction": 0.1}, {"schedule": "cosine"},
    {"hidden": [8]}, {"hidden": [0]}, {"hidden": [8, 16]},
    {"arch": "linear(10)"}, {"arch": "linear("}, {"arch": "conv(4,3) flatten linear(10)"},
    {"arch": "flatten linear(7)"}, {"dataset": "fashion-mnist"}, {"dataset": "--overwrite"},
    {"augment": "auto"}, {"augment": "x"},
]


@pytest.mark.parametrize("body", CASES, ids=repr)
def test_the_form_accepts_and_refuses_what_the_cli_does(body, capsys):
    try:
        argv = to_argv(body)
        page = True
    except FormError as exc:
        page = False
        assert exc.field in body, (body, exc.field, str(exc))   # pointed at a field sent
    assert page == cli_accepts(cli_argv(body)), body
    if page:
        assert cli_accepts(argv) and sorted(argv) == sorted(cli_argv(body))


def test_a_refused_value_is_worded_for_the_page():
    with pytest.raises(FormError) as exc:
        to_argv({"epochs": 0})
    assert str(exc.value) == "epochs: must be at least 1, got 0"
    assert exc.value.field == "epochs"
    with pytest.raises(FormError, match=r"^lr: expected a number, got 'fast'$"):
        to_argv({"lr": "fast"})


def test_the_field_comes_from_the_error_not_its_words(monkeypatch):
    """The message names flags the form also sent; the field is the one the error
    carries."""
    def refuse(explicit):
        raise ConfigError("--lr and --epochs are named here", field="seed")

    monkeypatch.setattr(form, "make_config", refuse)
    with pytest.raises(FormError) as exc:
        to_argv({"lr": 0.1, "epochs": 2, "seed": 1})
    assert exc.value.field == "seed" and str(exc.value) == "--lr and --epochs are named here"


def test_the_argv_never_holds_a_flag_the_form_does_not_offer():
    argv = to_argv({"dataset": "mnist", "hidden": "8 16", "lr": 0.01, "limit": None})
    assert argv == ["--dataset=mnist", "--lr=0.01", "--hidden", "8", "16"]
    for body in ({"hidden": [8, "--resume", "/etc"]}, {"hidden": "8 --overwrite"},
                 {"out": "/tmp/x"}, {"data_dir": "/"}, {"epochs": True}, {"lr": [1]}):
        with pytest.raises(FormError):
            to_argv(body)
