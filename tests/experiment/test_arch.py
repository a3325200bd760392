"""--arch strings: the tokenizer and parser (every layer name, keywords, pairs, strings),
one-line errors with their position and a suggestion, shapes refused at build time,
the presets lenet5 and cnn, and the config rules around --arch. No training here."""
import ast
from pathlib import Path

import numpy as np
import pytest

import bareprop as bp
from bareprop import io
from bareprop.errors import ConfigError
from bareprop.experiment import arch
from bareprop.experiment.checks import arch_model, check_config, check_flags, make_config
from bareprop.experiment.config import TrainConfig


def build(text, shape, **kw):
    return arch.build(text, shape, **kw)


# -- every layer name --------------------------------------------------------------------

# (arch, input shape, the class built, its output shape, attributes it must have)
LAYERS = [
    ("conv(4,3)", (2, 8, 8), bp.Conv2d, (4, 6, 6),
     dict(in_channels=2, kernel_size=(3, 3), stride=(1, 1), padding=(0, 0))),
    ("conv2d(4,(3,5),stride=(1,2),padding=(1,2),bias=False,init='xavier_uniform')", (2, 8, 8),
     bp.Conv2d, (4, 8, 4), dict(kernel_size=(3, 5), stride=(1, 2), padding=(1, 2), bias=None,
                                init="xavier_uniform")),
    ('conv(3, 3, padding="same")', (1, 7, 7), bp.Conv2d, (3, 7, 7), dict(padding="same")),
    ("conv(3,2,padding=valid,stride=2)", (1, 7, 7), bp.Conv2d, (3, 3, 3),
     dict(padding="valid", stride=(2, 2))),
    ("linear(5)", (7,), bp.Linear, (5,), dict(in_features=7, out_features=5)),
    ("dense(5, bias=False)", (7,), bp.Linear, (5,), dict(in_features=7, bias=None)),
    ("maxpool(2)", (3, 8, 8), bp.MaxPool2d, (3, 4, 4), dict(stride=(2, 2))),
    ("maxpool2d(3,stride=1)", (3, 8, 8), bp.MaxPool2d, (3, 6, 6), dict(stride=(1, 1))),
    ("avgpool(2)", (3, 8, 8), bp.AvgPool2d, (3, 4, 4), {}),
    ("avgpool2d((2,4))", (3, 8, 8), bp.AvgPool2d, (3, 4, 2), dict(kernel_size=(2, 4))),
    ("gap", (3, 8, 8), bp.GlobalAvgPool2d, (3,), {}),
    ("globalavgpool", (3, 8, 8), bp.GlobalAvgPool2d, (3,), {}),
    ("batchnorm", (3, 8, 8), bp.BatchNorm2d, (3, 8, 8), dict(num_features=3)),
    ("bn(eps=1e-3, momentum=0.2)", (7,), bp.BatchNorm1d, (7,),
     dict(num_features=7, eps=1e-3, momentum=0.2)),
    ("dropout(0.3)", (7,), bp.Dropout, (7,), dict(p=0.3)),
    ("dropout", (7,), bp.Dropout, (7,), dict(p=0.5)),
    ("dropout2d(p=0.1)", (3, 8, 8), bp.Dropout2d, (3, 8, 8), dict(p=0.1)),
    ("flatten", (3, 8, 8), bp.Flatten, (192,), {}),
    ("relu", (7,), bp.ReLU, (7,), {}),
    ("leakyrelu(0.2)", (7,), bp.LeakyReLU, (7,), dict(negative_slope=0.2)),
    ("leaky_relu(negative_slope=0.3)", (7,), bp.LeakyReLU, (7,), dict(negative_slope=0.3)),
    ("sigmoid", (7,), bp.Sigmoid, (7,), {}),
    ("tanh", (7,), bp.Tanh, (7,), {}),
    ("gelu", (7,), bp.GELU, (7,), {}),
    ("gelu(approximate='tanh')", (7,), bp.GELU, (7,), dict(approximate="tanh")),
    ("identity", (7,), bp.Identity, (7,), {}),
    ("silu", (7,), bp.SiLU, (7,), {}),
    ("softmax", (7,), bp.Softmax, (7,), {}),       # allowed, except as the last layer
    ("rnn(8,nonlinearity=relu)", (5, 3), bp.RNN, (8,), dict(input_size=3, nonlinearity="relu")),
    ("lstm(4,layers=2,bidirectional=true,sequences=true)", (5, 3), bp.LSTM, (5, 8),
     dict(num_layers=2, bidirectional=True, return_sequences=True)),
    ("gru(6,bias=False)", (5, 3), bp.GRU, (6,), dict(input_size=3, bias=False)),
    ("rows", (1, 6, 4), bp.Rows, (6, 4), {}),
    ("cols", (1, 6, 4), bp.Cols, (4, 6), {}),
    ("layernorm", (7,), bp.LayerNorm, (7,), dict(normalized_shape=(7,), eps=1e-5)),
    ("layernorm(1e-3, affine=False)", (4, 6), bp.LayerNorm, (4, 6), dict(eps=1e-3, weight=None)),
    ("patches(7,64)", (1, 28, 28), bp.PatchEmbed, (16, 64), dict(patch_size=7, embed_dim=64)),
    ("posembed", (16, 8), bp.PositionalEmbedding, (16, 8), dict(num_tokens=16, embed_dim=8)),
    ("clstoken", (16, 8), bp.ClassToken, (17, 8), dict(embed_dim=8)),
    ("mha(heads=2,causal=true)", (5, 8), bp.MultiheadAttention, (5, 8),
     dict(num_heads=2, causal=True, head_dim=4)),
    ("transformer(heads=4,ff=32,dropout=0,activation=gelu,norm_first=true)", (5, 8),
     bp.TransformerEncoderLayer, (5, 8), dict(d_model=8, norm_first=True)),
    ("meanpool", (5, 8), bp.TokenMeanPool, (8,), {}),
    ("firsttoken", (5, 8), bp.FirstToken, (8,), {}),
]


@pytest.mark.parametrize("text,shape,cls,out,attrs", LAYERS, ids=[t[0] for t in LAYERS])
def test_every_layer_name_builds_its_layer(text, shape, cls, out, attrs):
    model = build(f"{text} identity", shape)
    layer = model.layers[0]
    assert type(layer) is cls and model.shapes[0] == out and model.input_shape == shape
    for name, want in attrs.items():
        got = getattr(layer, name)
        assert (got is None) if want is None else got == want, (name, got)


def test_every_name_of_the_grammar_is_tested():
    typed = {t[0].split("(")[0].lower() for t in LAYERS}
    assert set(arch.NAMES) <= typed | {"conv2d", "dense", "maxpool2d", "avgpool2d", "bn",
                                        "globalavgpool2d", "leaky_relu"}
    assert set(arch.KINDS) <= {arch.ALIASES.get(n, n) for n in typed}


def test_sizes_are_inferred_from_the_running_shape():
    model = build("conv(8,3,padding=1) bn relu maxpool(2) conv(16,3) bn relu gap linear(12) "
                  "bn relu linear(10)", (1, 28, 28), n_classes=10)
    conv2, lin1, lin2 = model.layers[4], model.layers[8], model.layers[11]
    assert conv2.in_channels == 8 and lin1.in_features == 16 and lin2.in_features == 12
    assert [type(m).__name__ for m in (model.layers[1], model.layers[5], model.layers[9])] \
        == ["BatchNorm2d", "BatchNorm2d", "BatchNorm1d"]
    x = np.random.default_rng(0).normal(size=(3, 1, 28, 28)).astype(np.float32)
    assert model(x).shape == (3, 10)


def test_values_ints_floats_bools_words_and_strings():
    calls = arch.parse("a(1, -2, 2.5, 1e-3, .5, True, False, None, same, 'valid', \"x y\", (3,5))")
    values = [v for v, _ in calls[0].args]
    assert values == [1, -2, 2.5, 1e-3, 0.5, True, False, None, "same", "valid", "x y", (3, 5)]
    assert [type(v) for v in values[:5]] == [int, int, float, float, float]


def test_calls_record_positions_and_text():
    calls = arch.parse("  conv(32, 3,padding=1)   relu linear(10,)")
    assert [(c.name, c.index, c.start, c.text) for c in calls] == [
        ("conv", 1, 2, "conv(32, 3,padding=1)"), ("relu", 2, 26, "relu"),
        ("linear", 3, 31, "linear(10,)")]
    assert calls[0].kwargs == {"padding": (1, 13)} and calls[2].args == ((10, 38),)


def test_names_are_case_insensitive_like_the_class_names():
    model = build("Conv2d(2,3) ReLU Flatten Linear(10)", (1, 5, 5))
    assert [type(m).__name__ for m in model.layers] == ["Conv2d", "ReLU", "Flatten", "Linear"]


# -- errors: one line, where, and what to do ---------------------------------------------

ERRORS = [
    ("comv(32,3) relu flatten linear(10)",
     ["unknown layer 'comv' at character 0 (layer 1); did you mean 'conv'?"]),
    ("flatten lienar(10)", ["unknown layer 'lienar' at character 8 (layer 2)", "'linear'"]),
    ("conv(4,3) maxpol(2) flatten linear(10)", ["character 10 (layer 2)", "'maxpool'"]),
    ("zzzz", ["unknown layer 'zzzz'", "valid: avgpool"]),
    ("conv(32,3,pading=1) flatten linear(10)",
     ["conv has no argument 'pading' at character 10 (layer 1); did you mean 'padding'?"]),
    ("conv(32) flatten linear(10)", ["conv needs kernel_size at character 0 (layer 1)"]),
    ("flatten linear(10, True, 'torch', 4)",
     ["linear takes at most 3 positional arguments, got 4", "character 34 (layer 2)"]),
    ("relu(1) flatten linear(10)", ["relu takes no arguments at character 0 (layer 1)"]),
    ("flatten(start=1) linear(10)", ["flatten takes no arguments", "write flatten alone"]),
    ("conv (4, 3) flatten linear(12)", ["--arch ends in 12 outputs"]),   # a space is allowed
    ("flatten linear(out_features=10, out_features=3)",
     ["linear got out_features= twice at character 32 (layer 2)"]),
    ("flatten linear(10, out_features=3)", ["both by position and as out_features="]),
    ("flatten linear(bias=False, 10)", ["positional argument after keyword", "character 27"]),
    ("conv(32,3,bias=yes) flatten linear(10)",
     ["conv's bias must be True or False, got 'yes' at character 10 (layer 1)"]),
    ("conv(32.5,3) flatten linear(10)", ["out_channels must be an integer, got 32.5"]),
    ("conv(4,(3,)) flatten linear(10)", ["a pair is two numbers", "character 7 (layer 1)"]),
    ("conv(4,(3", ["a pair is two numbers", "character 7 (layer 1)"]),
    ("conv(4,", ["expected a value", "got the end of the string at character 7"]),
    ("flatten linear(1e1)", ["linear's out_features must be an integer, got 10.0"]),
    ("flatten linear(10", ["expected ',' or ')', got the end of the string at character 17"]),
    ("flatten linear(10,,)", ["expected a value", "got ',' at character 18 (layer 2)"]),
    ("flatten linear(10) @", ["unexpected character '@' at character 19"]),
    ("flatten linear('10)", ["unterminated string at character 15"]),
    ("flatten linear(10) (10)", ["expected a layer name", "got '(' at character 19 (layer 3)"]),
    ("", ["--arch is empty"]),
    ("   ", ["--arch is empty"]),
    # never evaluated: code is a word followed by a stray parenthesis
    ("conv(__import__('os'))", ["expected ',' or ')', got '(' at character 15 (layer 1)"]),
    ("flatten linear(10) __import__('os').system('true')", ["unexpected character '.'"]),
    ("flatten linear(10) softmax",
     ["ends in softmax at character 19 (layer 3)", "the loss takes logits", "drop it"]),
]


@pytest.mark.parametrize("text,fragments", ERRORS, ids=[e[0] or "empty" for e in ERRORS])
def test_malformed_arch_is_one_line_with_its_position(text, fragments):
    with pytest.raises(ConfigError) as e:
        build(text, (1, 28, 28), n_classes=10)
    msg = str(e.value)
    assert msg.startswith("--arch") and "\n" not in msg
    for f in fragments:
        assert f in msg, msg


def test_the_parser_never_evaluates_the_string():
    tree = ast.parse(Path(arch.__file__).read_text())
    called = {getattr(n.func, "id", getattr(n.func, "attr", None))
              for n in ast.walk(tree) if isinstance(n, ast.Call)}
    assert not called & {"eval", "exec", "literal_eval", "__import__"}


SHAPES = [
    # a kernel larger than what is left after pooling: the layer, where, and the sizes
    ("conv(6,5) maxpool(2) conv(16,5) maxpool(2) conv(32,5) flatten linear(10)",
     ["conv(32,5) at character 43 (layer 5)", "Conv2d(16, 32, 5)", "5x5 kernel",
      "padded input 4x4"]),
    ("conv(4,3) maxpool(32) flatten linear(10)",
     ["maxpool(32) at character 10 (layer 2)", "32x32 window", "input 26x26"]),
    ("linear(10)", ["linear(10) at character 0 (layer 1)", "shape (1, 28, 28)",
                    "put flatten (or gap) before it"]),
    ("flatten conv(3,3) flatten linear(10)",
     ["conv(3,3) at character 8 (layer 2)", "got (784,)", "before Flatten"]),
    ("flatten maxpool(2) linear(10)", ["maxpool(2) at character 8", "got (784,)"]),
    ("flatten dropout2d linear(10)", ["dropout2d drops whole channels", "use dropout here"]),
    ("flatten dropout(p=1.5) linear(10)", ["dropout(p=1.5) at character 8 (layer 2)",
                                           "must be in [0, 1)"]),
    ("conv(32,3,padding=sme) flatten linear(10)", ["padding must be", "got 'sme'"]),
    ("conv(32,3,stride=2,padding=same) flatten linear(10)", ["'same' needs stride 1"]),
    ("conv(0,3) flatten linear(10)", ["out_channels must be a positive integer, got 0"]),
    ("flatten linear(10, init=bogus)", ["unknown init 'bogus'"]),
    ("flatten gelu(approximate=fast) linear(10)", ["GELU approximate"]),
    # the class count: the arch must end in the dataset's classes
    ("conv(32,3) flatten linear(12)",
     ["--arch ends in 12 outputs but mnist has 10 classes: end with linear(10)"]),
    ("conv(32,3)", ["ends in outputs of shape (32, 26, 26)", "end with flatten linear(10)"]),
]


@pytest.mark.parametrize("text,fragments", SHAPES, ids=[s[0] for s in SHAPES])
def test_impossible_shapes_are_refused_when_built(text, fragments):
    with pytest.raises(ConfigError) as e:
        build(text, (1, 28, 28), n_classes=10, dataset="mnist")
    msg = str(e.value)
    assert "\n" not in msg
    for f in fragments:
        assert f in msg, msg


def test_a_flat_model_on_images_builds():
    model = build("flatten linear(32) relu linear(10)", (1, 28, 28), n_classes=10)
    assert model.shapes[0] == (784,) and model.layers[1].in_features == 784


def test_a_layer_past_the_parameter_limit_is_refused_before_allocating():
    # 784 x 10^10 float32 weights would be 31 TB: refused from the count alone
    with pytest.raises(ConfigError, match=r"linear\(10000000000\) at character 8 \(layer 2\): "
                                          r"would bring the model to 7,850,000,000,000 "
                                          r"parameters, more than the budget \(1,000\)"):
        build("flatten linear(10000000000) linear(10)", (1, 28, 28),
              max_params=(1000, "the budget"))
    assert build("flatten linear(1)", (1, 28, 28), max_params=(785, "x")).num_parameters() == 785


def test_weights_follow_the_seed_dtype_and_default_init():
    text = "conv(4,3) relu flatten linear(10)"
    a, b = build(text, (1, 8, 8), seed=3), build(text, (1, 8, 8), seed=3)
    c = build(text, (1, 8, 8), seed=4)
    for (k, p), q, r in zip(a.named_parameters(), b.parameters(), c.parameters()):
        assert np.array_equal(p.data, q.data) and not np.array_equal(p.data, r.data), k
    d = build(text, (1, 8, 8), dtype="float64", init="kaiming_normal")
    assert d.dtype == np.float64 and d.layers[0].init == "kaiming_normal"
    assert build("conv(4,3,init=torch) flatten linear(10)", (1, 8, 8),
                 init="xavier_uniform").layers[0].init == "torch"


def test_relu_is_in_place_only_over_a_fresh_output():
    model = build("conv(4,3) relu tanh relu bn relu flatten relu linear(6) relu linear(10)",
                  (1, 8, 8))
    relus = [m.inplace for m in model.layers if isinstance(m, bp.ReLU)]
    assert relus == [True, False, True, False, True]     # not after tanh or flatten
    # the in-place ReLU after tanh would corrupt tanh's saved output: the gradient
    # still matches a float64 central difference
    m64 = build("flatten linear(6) tanh relu linear(3)", (1, 3, 3), dtype="float64")
    x = np.random.default_rng(0).normal(size=(4, 1, 3, 3))
    errors = bp.gradcheck(m64, bp.CrossEntropyLoss(), x, np.array([0, 1, 2, 0]))
    assert max(errors.values()) < 1e-6, errors


FORMATS = ["conv(6,5,padding=2) tanh avgpool(2) conv(16,5) tanh avgpool(2) flatten "
           "linear(120) tanh linear(84) tanh linear(10)",
           "conv(8,(3,5),padding='same',bias=False) bn(eps=0.001) leakyrelu(0.2) "
           "maxpool(3,stride=1) dropout2d(0.1) gap dropout linear(10,bias=False) gelu "
           "sigmoid identity softmax linear(10)"]


@pytest.mark.parametrize("text", FORMATS)
def test_format_arch_round_trips(text):
    model = build(text, (1, 12, 12))
    again = build(arch.format_arch(model), (1, 12, 12))
    assert io.architecture(again) == io.architecture(model)
    assert arch.format_arch(again) == arch.format_arch(model)


def test_format_arch_names_a_layer_it_cannot_write():
    class Odd(bp.Module):
        def forward(self, x):
            return x

    with pytest.raises(ConfigError, match="layer 1 .Odd. has no --arch name"):
        arch.format_arch(bp.Sequential(bp.Flatten(), Odd()))


# -- presets -----------------------------------------------------------------------------

def test_lenet5_preset_is_lecuns_network():
    cfg = make_config({}, preset="lenet5")
    model = arch_model(cfg)
    text = model.summary(print_fn=None)
    for shape in ("(None, 6, 28, 28)", "(None, 6, 14, 14)", "(None, 16, 10, 10)",
                  "(None, 16, 5, 5)", "(None, 400)", "(None, 120)", "(None, 84)", "(None, 10)"):
        assert shape in text
    # C1 156 + C3 2,416 + C5 48,120 + F6 10,164 + output 850: LeNet-5's 61,706 weights
    # with C3 fully connected
    assert model.num_parameters() == 61_706
    assert {type(m).__name__ for m in model.layers} >= {"Tanh", "AvgPool2d"}
    assert cfg.epochs <= 15 and cfg.scale == "standard"


def test_cnn_preset_builds_with_batch_norm_dropout_and_augmentation():
    cfg = make_config({}, preset="cnn")
    model = arch_model(cfg)
    kinds = [type(m).__name__ for m in model.layers]
    assert kinds.count("Conv2d") == 2 and kinds.count("BatchNorm2d") == 2
    assert "BatchNorm1d" in kinds and "Dropout" in kinds and model.shapes[-1] == (10,)
    assert (64, 7, 7) in model.shapes and cfg.augment == "auto"
    fashion = make_config({"dataset": "fashion-mnist"}, preset="cnn")
    assert arch_model(fashion).output_shape() == (10,)


def test_best_cnn_is_the_cnn_preset_with_a_wider_head_and_less_dropout():
    cnn, best = make_config({}, preset="cnn"), make_config({}, preset="best-cnn")
    a, b = arch_model(cnn), arch_model(best)
    assert [type(m).__name__ for m in a.layers] == [type(m).__name__ for m in b.layers]
    assert b.shapes[:9] == a.shapes[:9]                       # the conv blocks as cnn's
    dropout = next(m for m in b.layers if type(m).__name__ == "Dropout")
    assert (256,) in b.shapes and (128,) not in b.shapes and dropout.p == 0.3
    assert best.epochs > cnn.epochs and best.optimizer == cnn.optimizer == "adam"


# -- the config around --arch ----------------------------------------------------------------

def test_arch_drops_a_presets_mlp_settings_but_keeps_the_rest():
    cfg = make_config({"arch": "flatten linear(10)"}, preset="best-mlp")
    assert cfg.hidden == (128,) and cfg.dropout == 0.0 and cfg.augment == "auto"
    assert cfg.optimizer == "sgd" and cfg.arch == "flatten linear(10)"


@pytest.mark.parametrize("explicit,flag", [({"hidden": (64,)}, "--hidden"),
                                           ({"dropout": 0.2}, "--dropout"),
                                           ({"batchnorm": True}, "--batchnorm")])
def test_typed_mlp_flags_with_an_arch_are_refused(explicit, flag):
    explicit = {"arch": "flatten linear(10)", **explicit}
    with pytest.raises(ConfigError, match=f"{flag} shapes the MLP, but --arch describes"):
        check_flags(explicit, make_config(explicit))


def test_an_mlp_flag_equal_to_its_default_is_refused_too():
    explicit = {"hidden": (128,), "activation": ("relu",)}
    cfg = make_config(explicit, preset="lenet5")
    with pytest.raises(ConfigError, match=r"--hidden .* --arch \(here from --preset lenet5\)"):
        check_flags(explicit, cfg)


def test_a_config_with_both_an_arch_and_an_mlp_is_refused():
    with pytest.raises(ConfigError, match="--input-dropout shapes the MLP"):
        check_config(TrainConfig(arch="flatten linear(10)", input_dropout=0.2))


def test_check_config_refuses_before_any_data_with_the_datasets_facts():
    with pytest.raises(ConfigError, match="fashion-mnist has 10 classes"):
        make_config({"arch": "flatten linear(7)", "dataset": "fashion-mnist"})
    with pytest.raises(ConfigError, match="5x5 kernel is larger than its padded input 3x3"):
        make_config({"arch": "conv(4,5) maxpool(8) conv(4,5) flatten linear(10)"})


def test_arch_memory_is_estimated_from_the_layer_shapes():
    with pytest.raises(ConfigError, match=r"--arch with --batch-size 128 needs about .* GiB "
                                          r".*fewer or narrower --arch layers"):
        # 180,000 weights, but 15.7 million activations per example
        make_config({"arch": "conv(20000,3,padding=1) gap linear(10)"})


def test_a_batchnorm_over_features_needs_batches_of_two():
    with pytest.raises(ConfigError, match="batchnorm after a flat layer in --arch needs "
                                          "--batch-size >= 2"):
        make_config({"arch": "flatten linear(8) bn linear(10)", "batch_size": 1})
    make_config({"arch": "conv(4,3) bn flatten linear(10)", "batch_size": 1})   # per channel


@pytest.mark.parametrize("text,want", [
    (None, "mlp"), ("flatten linear(10)", "mlp"), ("conv(4,3) relu flatten linear(10)", "cnn"),
    ("rows lstm(8) linear(10)", "rnn"), ("cols GRU(8) linear(10)", "rnn"),
    ("patches(7,16) posembed transformer meanpool linear(10)", "transformer"),
    ("conv(4,3) relu flatten linear(10) mha", "transformer"),     # most telling first
    ("conv(4,3", None), ("nosuchlayer", None), (42, None)])
def test_family_names_what_kind_of_network_a_string_builds(text, want):
    assert arch.family(text) == want
