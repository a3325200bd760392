"""The --space grammar: what it accepts, what each drawn value becomes, and that a space
train would refuse anywhere is refused before a trial starts (one line each)."""
import pytest

from bareprop.errors import ConfigError
from bareprop.sweep.space import check_space, corners, parse_param, parse_space


@pytest.mark.parametrize("text,kind,low,high,log", [
    ("lr=log(1e-4,1e-1)", "log", 1e-4, 1e-1, True),
    ("--weight-decay=log(1e-6, 1e-3)", "log", 1e-6, 1e-3, True),
    ("dropout=uniform(0,0.5)", "uniform", 0.0, 0.5, False),
    ("batch_size=int(32,256)", "int", 32, 256, False),
    ("hidden=int(64,1024,log)", "int", 64, 1024, True),
])
def test_ranges(text, kind, low, high, log):
    p = parse_param(text)
    assert (p.kind, p.low, p.high, p.log) == (kind, low, high, log)
    assert parse_param(p.spec()) == p                  # sweep.json keeps the spec


def test_values_become_what_train_takes():
    assert parse_param("hidden=int(64,1024)").value(100) == (100,)
    assert parse_param("hidden=choice(256 128,64)").value("256 128") == (256, 128)
    assert parse_param("optimizer=choice(sgd,adam)").value("adam") == "adam"
    assert parse_param("batchnorm=choice(true,false)").value("false") is False
    assert parse_param("lr=log(1e-4,1e-1)").value(0.003) == 0.003
    assert parse_param("epochs=choice(2,4)").value("4") == 4


def test_distributions_are_optunas():
    optuna = pytest.importorskip("optuna")
    D = optuna.distributions
    assert parse_param("lr=log(1e-4,1e-1)").distribution() == D.FloatDistribution(1e-4, 1e-1,
                                                                                   log=True)
    assert parse_param("hidden=int(8,64)").distribution() == D.IntDistribution(8, 64)
    assert parse_param("optimizer=choice(sgd,adam)").distribution() == \
        D.CategoricalDistribution(["sgd", "adam"])


@pytest.mark.parametrize("text,fragment", [
    ("lr", "NAME=SPEC"),
    ("weight_decy=log(1e-6,1)", "unknown --space flag 'weight_decy'. Did you mean 'weight_decay'"),
    ("lr=normal(0,1)", "expected log(LOW,HIGH)"),
    ("lr=log(-1,1)", "must be a positive number, got -1"),
    ("lr=log(0.1,0.01)", "low bound must be below the high one"),
    ("weight_decay=log(0,1)", "log range needs a low bound above 0"),
    ("dropout=uniform(0,1.5)", "must be between 0 and 1, got 1.5"),
    ("lr=int(1,3)", "takes a number, not an integer"),
    ("hidden=uniform(8,64)", "takes an integer; use int(LOW,HIGH)"),
    ("optimizer=uniform(0,1)", "search it with choice"),
    ("optimizer=choice()", "choice() needs one or more values"),
    ("optimizer=choice(sgd,,adam)", "choice() has an empty value"),
    ("optimizer=choice(sgd,sgd)", "lists a value twice"),
    ("batch_size=choice(32,0)", "must be at least 1, got 0"),
    ("seed=int(0,5)", "every trial trains with the sweep's --seed"),
    ("val_fraction=uniform(0.1,0.2)", "not searched"),
    ("lr=log(1e-4)", "takes two bounds"),
    ("batchnorm=choice(maybe)", "a switch takes choice(true,false)"),
])
def test_refused(text, fragment):
    with pytest.raises(ConfigError) as e:
        parse_param(text)
    assert fragment in str(e.value) and "\n" not in str(e.value)


def test_each_flag_once_and_at_least_one():
    with pytest.raises(ConfigError, match="given twice"):
        parse_space(["lr=log(1e-4,1e-1)", "lr=uniform(0.1,0.2)"])
    with pytest.raises(ConfigError, match="at least one --space"):
        parse_space([])


def test_corners_put_each_parameter_at_each_end():
    space = parse_space(["lr=log(1e-4,1e-1)", "optimizer=choice(sgd,adam,adamw)"])
    got = corners(space)
    assert {"lr": 1e-4, "optimizer": "sgd"} in got
    assert {"lr": 1e-1, "optimizer": "sgd"} in got
    assert {"lr": 1e-4, "optimizer": "adamw"} in got


@pytest.mark.parametrize("texts,explicit,fragment", [
    # a dropout of 1 passes the fraction converter; train's check refuses it
    (["dropout=uniform(0,1)"], {}, "--dropout must be in [0, 1)"),
    # momentum only for sgd/rmsprop: the default preset's adam reads none
    (["momentum=uniform(0,0.9)"], {}, "--momentum applies only to --optimizer sgd"),
    # an --arch model has no --hidden
    (["hidden=int(8,64)"], {"arch": "flatten linear(10)"}, "--hidden shapes the MLP"),
    (["lr=log(1e-4,1e-1)"], {"lr": 0.1}, "--lr is both given and searched"),
])
def test_train_refuses_a_corner(texts, explicit, fragment):
    with pytest.raises(ConfigError) as e:
        check_space(parse_space(texts), explicit)
    assert fragment in str(e.value), str(e.value)


def test_a_space_train_accepts_passes():
    check_space(parse_space(["lr=log(1e-4,1e-1)", "optimizer=choice(sgd,adam)",
                             "hidden=int(16,256,log)", "dropout=uniform(0,0.5)"]), {})


def test_a_choice_of_whole_archs():
    a, b = "flatten linear(64) relu linear(10)", "conv(4,3) relu flatten linear(10)"
    p = parse_param(f"arch=choice({a}|{b})")       # '|' when a value holds commas
    assert p.choices == (a, b) and p.value(b) == b
    assert parse_param(p.spec()) == p
    check_space(parse_space([p.spec()]), {})      # each arch built for its shapes


def test_a_switch_a_preset_turns_on_cannot_be_searched_off():
    with pytest.raises(ConfigError, match="train has no flag to turn it off"):
        check_space(parse_space(["nesterov=choice(true,false)"]), {"preset": "best-mlp"})
    check_space(parse_space(["batchnorm=choice(true,false)"]), {})   # off by default: fine


def test_a_drawn_value_that_is_no_number_is_one_line():
    with pytest.raises(ConfigError, match="is not a number"):
        parse_param("lr=log(1e-4,1e-1)").value("many")
