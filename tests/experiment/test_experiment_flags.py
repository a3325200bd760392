"""The train flag schema (experiment/flags.py) and ConfigError's field: one table for the
CLI and the web form, and every config check saying which TrainConfig field it is about."""
import ast
import contextlib
import inspect
import io
import textwrap

import pytest

from bareprop.cli.main import build_parser
from bareprop.errors import ConfigError
from bareprop.experiment import TrainConfig, check_flags, checks, config, flags, make_config, memory


def test_every_trainconfig_field_is_a_flag_and_every_flag_a_field():
    assert set(flags.BY_FIELD) == set(TrainConfig.__dataclass_fields__)
    assert len(flags.BY_FIELD) == len(flags.FLAGS)


def test_train_help_lists_every_flag_with_its_help():
    parser = build_parser()
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit):
        parser.parse_args(["train", "--help"])
    text = " ".join(out.getvalue().split())        # argparse wraps lines anywhere
    for flag in flags.FLAGS:
        assert flag.name in text
        assert flag.help and " ".join(flag.help.split()) in text.replace("- ", "-"), flag.name
    for name in config.OPTIMIZERS + config.SCHEDULES:       # the valid names are listed
        assert name in text


@pytest.mark.parametrize("convert,text,message", [
    (flags.positive_int, "0", "must be at least 1, got 0"),
    (flags.positive_int, "x", "expected a positive integer, got 'x'"),
    (flags.nonneg_int, "-1", "must be >= 0, got -1"),
    (flags.positive_float, "inf", "must be a positive number, got inf"),
    (flags.positive_float, "nan", "must be a positive number, got nan"),
    (flags.nonneg_float, "-0.5", "must be a number >= 0, got -0.5"),
    (flags.fraction, "1.5", "must be between 0 and 1, got 1.5"),
    (flags.log_kinds, "csv,tb", "unknown log kind 'tb'"),
])
def test_converters_refuse_in_words_that_name_no_flag(convert, text, message):
    with pytest.raises(ConfigError) as exc:
        convert(text)
    assert str(exc.value).startswith(message)
    flag = next(f for f in flags.FLAGS if f.convert is convert)
    with pytest.raises(ConfigError) as exc:
        flag.parse(text)
    assert exc.value.field == flag.field and str(exc.value).startswith(message)


def test_the_cli_keeps_argparse_wording(capsys):
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(["train", "--epochs", "0"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "error: argument --epochs: must be at least 1, got 0" in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("explicit,field", [
    ({"preset": "nope"}, "preset"),
    ({"dataset": "cifar"}, "dataset"),
    ({"optimizer": "adm"}, "optimizer"),
    ({"lr": -1.0}, "lr"),
    ({"epochs": 0}, "epochs"),
    ({"seed": -1}, "seed"),
    ({"dropout": 1.0}, "dropout"),
    ({"input_dropout": 1.0}, "input_dropout"),
    ({"activation": ("relu", "tanh")}, "activation"),
    ({"init": "zeros"}, "init"),
    ({"log": ("tb",)}, "log"),
    ({"schedule": "multistep"}, "schedule"),
    ({"schedule": "plateau"}, "schedule"),
    ({"early_stop": 3}, "early_stop"),
    ({"batchnorm": True, "batch_size": 1}, "batch_size"),
    ({"hidden": (100000, 100000)}, "hidden"),                 # the memory bound
    ({"preset": "seed", "optimizer": "adam"}, "optimizer"),   # notebook order needs sgd
    ({"preset": "best-mlp", "optimizer": "adam"}, "optimizer"),   # nesterov needs sgd ...
    ({"preset": "best-mlp", "momentum": 0.0}, "momentum"),        # ... and momentum
    ({"arch": "linear(10)", "dropout": 0.5}, "dropout"),
    ({"arch": "linear("}, "arch"),                             # the grammar's refusal
    ({"arch": "flatten linear(7)"}, "arch"),                   # the class count
])
def test_make_config_refusals_name_their_field(explicit, field):
    with pytest.raises(ConfigError) as exc:
        make_config(explicit)
    assert exc.value.field == field, str(exc.value)


def test_check_flags_and_data_size_name_their_field():
    with pytest.raises(ConfigError) as exc:
        check_flags({"momentum": 0.9}, make_config({"optimizer": "adam"}))
    assert exc.value.field == "momentum"
    with pytest.raises(ConfigError) as exc:
        checks.check_data_size(make_config({"val_fraction": 0.5}), 0)
    assert exc.value.field == "val_fraction"
    with pytest.raises(ConfigError) as exc:
        checks.check_data_size(make_config({"batchnorm": True, "batch_size": 4}), 9)
    assert exc.value.field == "batch_size"


CHECKS = ["check_config", "check_flags", "make_config", "check_data_size",
          "mlp_flag_error", "check_memory"]


@pytest.mark.parametrize("name", CHECKS)
def test_every_refusal_of_a_config_check_passes_its_field(name):
    """Read from the source: each ConfigError(...) / unknown_name(...) in the checks has
    field=, so a new check cannot forget it."""
    check = getattr(checks, name, None) or getattr(memory, name)
    tree = ast.parse(textwrap.dedent(inspect.getsource(check)))
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call)
             and getattr(n.func, "id", None) in ("ConfigError", "unknown_name")]
    assert calls, name
    for call in calls:
        assert any(k.arg == "field" for k in call.keywords), \
            f"{name}, line {call.lineno}: {ast.unparse(call)[:80]}"


def test_config_error_keeps_its_field_through_pickle():
    """Refusals cross process boundaries (mpirun ranks agree on them)."""
    import pickle

    exc = pickle.loads(pickle.dumps(ConfigError("bad", field="lr")))
    assert str(exc) == "bad" and exc.field == "lr"
    assert ConfigError("no field").field is None
