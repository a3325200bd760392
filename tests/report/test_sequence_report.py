"""The report's look inside sequence models: a recurrent model's hidden state over the rows
of one test image, an attention model's maps of each head over its patch grid (saying how
each map was read), both beside the feature maps' place and escaped as every other
string; and the two figures themselves (plots.save_sequence_states, save_attention_maps)."""
import re
from types import SimpleNamespace

import numpy as np
import pytest

from bareprop import plots
from bareprop.cli.main import main
from bareprop.data import Scaler
from bareprop.experiment.arch import build
from bareprop.inference import Predictor
from bareprop.report import inside

from browser import CHROMIUM, images_loaded
from synthetic import digits_like, write_dataset

pytest.importorskip("matplotlib")

LSTM = "rows lstm(16) linear(10)"
VIT = "patches(7,16) clstoken posembed transformer(heads=2,ff=32) firsttoken linear(10)"


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    """{name: (report page, {figure file: the arguments plots was given})} of the CLI's
    report of a tiny LSTM run and a tiny vision transformer run."""
    tmp = tmp_path_factory.mktemp("seqreport")
    data = write_dataset(tmp / "mnist", n_train=300, n_test=100)
    out = {}
    for name, arch in (("lstm", LSTM), ("vit", VIT)):
        run = tmp / name
        assert main(["train", "--data-dir", str(data), "--no-verify", "--quiet", "--arch", arch,
                     "--epochs", "1", "--batch-size", "100", "--out", str(run)]) == 0
        (run / "inspect.json").unlink()         # its histograms take seconds, and are not new
        given = {}
        with pytest.MonkeyPatch.context() as mp:
            for fn in ("save_sequence_states", "save_attention_maps"):
                def spy(*args, _fn=getattr(plots, fn), _name=fn, **kw):
                    given[_name] = (args, kw)
                    return _fn(*args, **kw)
                mp.setattr(plots, fn, spy)
            assert main(["report", str(run), "--data-dir", str(data)]) == 0
        out[name] = (run / "report.html", given)
    return out


def titles(page) -> list[str]:
    return re.findall(r"<h2>([^<]*)</h2>", page.read_text())


def test_a_recurrent_model_shows_its_hidden_state_over_the_rows(reports):
    page, given = reports["lstm"]
    names = titles(page)
    assert "Hidden state over the rows of one test image" in names
    assert "Attention maps of one test image" not in names
    assert "Feature maps of one test image" not in names
    # among the look inside: after the model, before the histograms would come
    assert names.index("Model") < names.index("Hidden state over the rows of one test image")
    (image, states, _, title), kw = given["save_sequence_states"]
    assert kw["input_label"] == "input" and title.startswith("test image 0: label ")
    [(name, h, directions)] = states
    assert (name, h.shape, directions) == ("1 LSTM(28, 16)", (28, 16), 1)
    # the state of each step is the model's on that image: its last is the LSTM's output
    pred = Predictor.from_file(page.parent)
    x, _ = digits_like(100, 2)                                  # write_dataset's test split
    assert np.array_equal(image, x[0])
    lstm_out = pred.activations(x[:1])[1][1][0]                 # (16,)
    np.testing.assert_allclose(h[-1], lstm_out, rtol=1e-5, atol=1e-6)
    assert np.abs(h).max() <= 1                                 # h = o * tanh(c)


def test_an_attention_model_shows_each_heads_map(reports):
    page, given = reports["vit"]
    names = titles(page)
    assert "Attention maps of one test image" in names
    assert "Hidden state over the rows of one test image" not in names
    assert "First-layer filters" in names                       # the patch embedding's kernels
    text = page.read_text()
    assert "4&times;4 patch grid (the class token&#x27;s attention to each patch)" in text
    (image, maps, _, _), _ = given["save_attention_maps"]
    [(name, m, how)] = maps
    assert (name, m.shape, how) == ("3 TransformerEncoderLayer(16, 2)", (2, 4, 4),
                                   "from the class token")
    # the class token's weights over the 16 patches, what it keeps for itself aside
    assert np.all(m >= 0) and np.all(m.sum(axis=(1, 2)) < 1)
    assert text.count("<img ") == len(re.findall(r'src="data:image/png;base64,', text))
    if CHROMIUM is None:
        pytest.skip("chromium not installed (apt-get install chromium)")
    ok, loaded = images_loaded(page, page.parent / "chr")
    assert ok == "true", loaded


def one_image(arch: str, tmp_path, monkeypatch=None) -> tuple[list[str], dict]:
    """(cards, {figure: arguments}) of inside._one_image_sections for an untrained model."""
    model = build(arch, (1, 28, 28), seed=3)
    x, y = digits_like(2, 5)
    ds = SimpleNamespace(x_test=x, y_test=y, classes=[str(i) for i in range(10)])
    given = {}
    with pytest.MonkeyPatch.context() as mp:
        for fn in ("save_sequence_states", "save_attention_maps"):
            def spy(*args, _fn=getattr(plots, fn), _name=fn, **kw):
                given[_name] = (args, kw)
                return _fn(*args, **kw)
            mp.setattr(plots, fn, spy)
        if monkeypatch:
            monkeypatch(mp)
        cards = inside._one_image_sections(Predictor(model, Scaler("unit")), ds, tmp_path)
    return cards, given


def test_columns_and_both_directions(tmp_path):
    cards, given = one_image("cols gru(6,bidirectional=true,sequences=true) lstm(5) linear(10)",
                             tmp_path)
    [card] = cards
    assert "<h2>Hidden state over the columns of one test image</h2>" in card
    assert "after it read image column t" in card
    (image, states, _, _), kw = given["save_sequence_states"]
    x, _ = digits_like(2, 5)
    assert np.array_equal(image, x[0].T)                      # step t is column t: row t
    assert kw["input_label"].startswith("input, transposed")
    assert [(n, h.shape, d) for n, h, d in states] == [
        ("1 GRU(28, 6)", (28, 12), 2), ("2 LSTM(12, 5)", (28, 5), 1)]


def test_attention_received_on_average_and_escaped(tmp_path):
    arch = "patches(7,16) posembed transformer(heads=2,ff=32) transformer(heads=4,ff=32) " \
           "meanpool layernorm linear(10)"
    cards, given = one_image(arch, tmp_path)
    [card] = cards
    assert "(the attention each patch receives, averaged over the tokens that give it)" in card
    (_, maps, _, _), _ = given["save_attention_maps"]
    assert [(n, m.shape) for n, m, _ in maps] == [
        ("2 TransformerEncoderLayer(16, 2)", (2, 4, 4)),
        ("3 TransformerEncoderLayer(16, 4)", (4, 4, 4))]
    for _, m, _ in maps:                      # every query's weights sum to 1: the mean too
        np.testing.assert_allclose(m.sum(axis=(1, 2)), 1, rtol=1e-5)

    def planted(mp):
        real = inside.attention_maps
        mp.setattr(inside, "attention_maps",
                   lambda model: [(n, m, "<b>bold</b> & co") for n, m, _ in real(model)])
    # a way of reading bareprop does not know is shown as it is, escaped
    [card] = one_image(arch, tmp_path, planted)[0]
    assert "<b>" not in card and "(attention &lt;b&gt;bold&lt;/b&gt; &amp; co)" in card


# -- the figures ----------------------------------------------------------------------------
@pytest.fixture
def figures(monkeypatch):
    """The figures plots saves, kept open: {file name: figure}."""
    kept = {}
    monkeypatch.setattr(plots, "_save", lambda fig, path, dpi: kept.__setitem__(path.name, fig))
    return kept


def test_sequence_states_figure(tmp_path, figures, rng):
    image = rng.integers(0, 255, (28, 28))
    states = [("1 LSTM(28, 8)", rng.uniform(-1, 1, (28, 16)), 2),
              ("2 GRU(16, $5)", rng.uniform(-0.5, 0.3, (28, 200)))]
    assert plots.save_sequence_states(image, states, tmp_path / "s.png", "a $title")
    fig = figures["s.png"]
    picture, first, second = [ax for ax in fig.axes if ax.images]
    # the picture's rows share the heatmaps' axis: row t level with step t
    assert picture.get_ylim() == first.get_ylim() == second.get_ylim()
    fig.canvas.draw()
    spans = {tuple(np.round(ax.get_position().bounds[1::2], 4)) for ax in (picture, first, second)}
    assert len(spans) == 1, spans                               # one bottom, one height
    assert picture.get_aspect() == "auto"                       # filled, not letterboxed
    assert first.images[0].get_array().shape == (28, 16)
    assert second.images[0].get_array().shape == (28, 128)       # the first k=128 units
    assert "first 128 of 200 units" in second.get_title() and "$5" in second.get_title()
    lo, hi = second.images[0].get_clim()
    assert lo == -hi == -np.abs(states[1][1][:, :128]).max()     # centred on 0
    assert [line.get_xdata()[0] for line in first.lines] == [7.5]   # forward | backward
    assert not second.lines
    assert fig._suptitle.get_text() == r"a \$title"              # shown literally
    # an image of another height is not stretched to the steps
    assert plots.save_sequence_states(image[:20], states[:1], tmp_path / "t.png")
    assert figures["t.png"].axes[0].get_aspect() == 1.0


def test_attention_maps_figure(tmp_path, figures, rng):
    image = rng.integers(0, 255, (28, 28))
    maps = [("2 MultiheadAttention(16, 2)", rng.uniform(0, 0.2, (2, 4, 4)), "from the class token"),
            ("3 TransformerEncoderLayer(16, 4)", rng.uniform(0, 0.1, (4, 7, 7)), "received")]
    assert plots.save_attention_maps(image, maps, tmp_path / "a.png", "one image")
    fig = figures["a.png"]
    rows = fig.subfigs
    assert [sub._suptitle.get_text().split(" (")[0] for sub in rows] == [
        "2 MultiheadAttention(16, 2): attention from the class token",
        "3 TransformerEncoderLayer(16, 4): attention received"]
    for sub, (_, m, _) in zip(rows, maps):
        shown = [ax for ax in sub.axes if ax.images]
        assert len(shown) == 1 + len(m)                          # the image, then each head
        assert [ax.get_title() for ax in shown] == ["input"] + [f"head {h}" for h in range(len(m))]
        # one colour scale a row, 0 to its largest weight: heads compare
        assert {ax.images[0].get_clim() for ax in shown[1:]} == {(0.0, m.max())}
        for ax, grid in zip(shown[1:], m):
            assert np.array_equal(ax.images[0].get_array(), grid)
            assert ax.images[0].get_extent() == [0, 28, 28, 0]  # the grid over the image


def test_the_figures_need_matplotlib(tmp_path, monkeypatch):
    monkeypatch.setattr(plots, "_pyplot", lambda: None)
    assert not plots.save_sequence_states(np.zeros((28, 28)), [("x", np.zeros((28, 4)))],
                                          tmp_path / "s.png")
    assert not plots.save_attention_maps(np.zeros((28, 28)), [("x", np.zeros((1, 2, 2)), "")],
                                         tmp_path / "a.png")
    assert not list(tmp_path.iterdir())
