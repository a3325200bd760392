"""The Draw page of `bareprop serve` for sequence models, in Debian's Chromium through
Playwright: a recurrent model's hidden state over the 28 rows beside the drawn digit (row t
of the digit level with step t), a vision transformer's attention of each head over the
digit's patch grid, a token sequence drawn as a small heatmap, and the layer list naming
sequence outputs. Screenshots go to $BAREPROP_SCREENSHOTS, else the test's tmp folder."""
import re
from pathlib import Path

import pytest

from synthetic import write_dataset
from webpage import CHROMIUM, WAIT, Server, open_page, browser, shots  # noqa: F401 (fixtures)
from webruns import train

pytest.importorskip("playwright.sync_api")
pytestmark = pytest.mark.skipif(not CHROMIUM, reason="needs Debian's chromium (apt-get install chromium)")

RUNS = {"lstm": "rows lstm(32) linear(10)",
        "bilstm": "rows lstm(12,bidirectional=true,sequences=true) gru(16) linear(10)",
        "vit": "patches(7,16) clstoken posembed transformer(heads=4,ff=32) firsttoken linear(10)"}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("webseq")
    data = root / "data"
    write_dataset(data / "mnist", n_train=300, n_test=100)
    for name, arch in RUNS.items():
        train(root / "runs", name, data, "--arch", arch, "--batch-size", "100")
    srv = Server(root / "runs", data)
    yield srv
    srv.close()


@pytest.fixture
def page(browser, server):
    with open_page(browser, server) as pg:
        assert re.search(r"/s/[0-9a-f]+/$", pg.url)
        pg.goto(pg.url + "#draw")
        pg.wait_for_selector("#tab-draw.active")
        yield pg


def choose(page, run: str):
    page.select_option("#model-select", run)
    page.wait_for_selector("#model-meta .layer-list li", timeout=WAIT)


def draw_two(page):
    """A '2' in one stroke on #draw-pad (280x280 CSS px): a hook, a diagonal, a base."""
    box = page.locator("#draw-pad").bounding_box()
    x, y = box["x"], box["y"]
    path = [(90, 90), (110, 65), (150, 58), (185, 75), (190, 110), (170, 145), (130, 180),
            (95, 215), (140, 215), (195, 215)]
    page.mouse.move(x + path[0][0], y + path[0][1])
    page.mouse.down()
    for (x0, y0), (x1, y1) in zip(path, path[1:]):
        for i in range(1, 5):
            page.mouse.move(x + x0 + (x1 - x0) * i / 4, y + y0 + (y1 - y0) * i / 4)
    page.mouse.up()


def settled(page, run: str):
    """Wait for the prediction of the last stroke, for ``run``'s model: the one its pen-up
    asked for, and the one a throttled move may still ask for after it (the pictures are
    measured after that, not while they are replaced)."""
    for _ in range(2):
        page.wait_for_selector('#prediction[data-busy="0"][data-label]', timeout=WAIT)
        page.wait_for_timeout(250)          # longer than draw.js's THROTTLE_MS
    assert page.locator("#model-select").input_value() == run


def boxes(page, selector: str) -> list[dict]:
    return page.eval_on_selector_all(selector, """els => els.map((e) => {
        const r = e.getBoundingClientRect();
        return {top: r.top, height: r.height, width: r.width, w: e.width, h: e.height}; })""")


def full_page(page, path: Path):
    """The whole page from its top (an element's screenshot scrolls: the sticky header
    would be drawn over the middle of the picture)."""
    page.evaluate("() => window.scrollTo(0, 0)")
    page.screenshot(path=str(path), full_page=True)


def test_the_hidden_state_over_the_rows_beside_the_digit(page, shots):
    choose(page, "lstm")
    assert page.locator("#inside").is_hidden()                  # nothing drawn yet
    # the layer list: Rows hands the LSTM a sequence of 28 rows of 28 pixels
    items = page.locator("#model-meta .layer-list li").all_text_contents()
    assert items[0] == "Rows → 28×28 sequence" and items[1] == "LSTM(28, 32) → 32", items
    assert "RNN" in page.locator("#model-select option:checked").text_content()
    # its first kernel (the Linear after the LSTM) reads no image: none is drawn as one,
    # and the card says so across its width, whichever model was shown before
    assert page.locator("#weights canvas").count() == 0
    assert page.locator("#weights-title").text_content() == "First layer's weights"
    assert page.locator("#weights .empty").bounding_box()["width"] > 400
    draw_two(page)
    settled(page, "lstm")
    page.wait_for_selector("#inside:not([hidden]) .states canvas", timeout=WAIT)
    assert page.locator("#inside h3").all_text_contents() == ["Hidden state over the rows"]
    digit, state = boxes(page, "#inside .states canvas.pixelated")
    assert (digit["w"], digit["h"]) == (28, 28) and (state["w"], state["h"]) == (32, 28)
    # row t of the digit is level with step t: the same top and the same height
    assert abs(digit["top"] - state["top"]) < 1.5 and abs(digit["height"] - state["height"]) < 1.5
    assert state["width"] >= 120
    caption = page.locator("#inside .states figcaption").nth(1).text_content()
    assert caption.startswith("2. LSTM(28, 32) → 28×32")
    page.locator("#inside").screenshot(path=str(shots / "draw-lstm-inside.png"))
    full_page(page, shots / "draw-lstm.png")
    page.click("#clear")
    assert page.locator("#inside").is_hidden()


def test_a_bidirectional_layer_shows_its_two_directions(page, shots):
    choose(page, "bilstm")
    draw_two(page)
    settled(page, "bilstm")
    page.wait_for_selector("#inside:not([hidden]) .states canvas", timeout=WAIT)
    # the digit, the LSTM's 24 units (forward | backward) and the GRU's 16
    sizes = [(b["w"], b["h"]) for b in boxes(page, "#inside .states canvas.pixelated")]
    assert sizes == [(28, 28), (24, 28), (16, 28)]
    assert page.locator("#inside .divider").count() == 1
    [divider] = boxes(page, "#inside .divider")
    lstm = boxes(page, "#inside .states canvas.pixelated")[1]
    assert abs(divider["top"] - lstm["top"]) < 1.5
    # the LSTM's whole sequence is an activation too: a heatmap, a row per step
    [seq] = boxes(page, "#activations canvas.seq")
    assert (seq["w"], seq["h"]) == (24, 28)
    page.locator("#inside").screenshot(path=str(shots / "draw-bilstm-inside.png"))


def test_each_heads_attention_over_the_patch_grid(page, shots):
    choose(page, "vit")
    items = page.locator("#model-meta .layer-list li").all_text_contents()
    assert items[:2] == ["PatchEmbed(1, 16, patch=7) → 16×16 sequence",
                         "ClassToken(16) → 17×16 sequence"], items
    draw_two(page)
    settled(page, "vit")
    page.wait_for_selector("#inside:not([hidden]) .heads canvas", timeout=WAIT)
    assert page.locator("#inside h3").all_text_contents() == ["Attention of each head"]
    head = page.locator("#inside .attn-layer .layer-head").text_content()
    assert "4. TransformerEncoderLayer(16, 4)" in head and "attention from the class token" in head
    tiles = boxes(page, "#inside .heads canvas.pixelated")
    assert len(tiles) == 1 + 4                                  # the digit, then four heads
    assert all((t["w"], t["h"]) == (28, 28) and t["width"] >= 100 for t in tiles)
    assert page.locator("#inside .heads figcaption").all_text_contents() == [
        "your digit", "head 0", "head 1", "head 2", "head 3"]
    # each head's tile: the patch grid's 4x4 cells of colour, the drawn strokes over them
    cells = page.evaluate("""() => {
        const c = document.querySelectorAll('#inside .heads canvas')[1];
        const d = c.getContext('2d').getImageData(0, 0, 28, 28).data;
        const at = (x, y) => Array.from(d.slice(4 * (y * 28 + x), 4 * (y * 28 + x) + 3)).join();
        return [at(0, 0), at(6, 0), at(0, 6), at(6, 6), at(7, 0)]; }""")
    assert len(set(cells[:4])) == 1                             # one patch, one colour
    # four sequence outputs (the patches, the class token, the positions, the encoder)
    assert page.locator("#activations canvas.seq").count() == 4
    page.locator("#inside").screenshot(path=str(shots / "draw-vit-inside.png"))
    full_page(page, shots / "draw-vit.png")

    # another model: the attention goes, the recurrent state comes for the same drawing
    page.select_option("#model-select", "lstm")
    page.wait_for_selector("#inside:not([hidden]) .states canvas", timeout=WAIT)
    assert page.locator("#inside .heads").count() == 0
