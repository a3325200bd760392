"""`bareprop serve` driven in Debian's Chromium through Playwright: draw a digit and get what
`bareprop predict` says for the same PNG; start a run from the form and watch its chart grow;
stop and resume a run; a bad setting shown beside its field; runs overlaid on the Runs page.
Each page is saved as a screenshot ($BAREPROP_SCREENSHOTS, else the test's tmp folder)."""
import base64
import json
import re
import shutil

import pytest

from webpage import CHROMIUM, WAIT, Server, open_page, bareprop, browser, shots  # noqa: F401 (fixtures)
from webruns import make_runs

MODELS = ("mlp", "cnn")     # the runs make_runs trains, offered by the Draw page

pytest.importorskip("playwright.sync_api")
pytestmark = pytest.mark.skipif(not CHROMIUM, reason="needs Debian's chromium (apt-get install chromium)")



@pytest.fixture(scope="module")
def server(tmp_path_factory):
    # 2000 training images, not 600: a lenet5 epoch then takes ~0.5 s on a quiet 2-core machine
    # (seconds on a loaded one), so the page sees a one-epoch run's loss arrive in several
    # deliveries (the job writes an event every 0.1 s) and a stop after epoch 1 of 4 lands well
    # before the run ends
    runs, data = make_runs(tmp_path_factory.mktemp("web"), n_train=2000)
    # a run whose preset name is markup: the pages must show it as text
    shutil.copytree(runs / "mlp", runs / "markup")
    metrics = json.loads((runs / "markup" / "metrics.json").read_text())
    metrics["config"]["preset"] = "<b>bold</b>"
    (runs / "markup" / "metrics.json").write_text(json.dumps(metrics))
    srv = Server(runs, data)
    yield srv
    srv.close()


@pytest.fixture
def page(browser, server):
    with open_page(browser, server) as pg:
        assert "?token" not in pg.url and re.search(r"/s/[0-9a-f]+/$", pg.url)
        yield pg


def go(page, server, tab: str):
    page.goto(f"{server.app}#{tab}")
    page.wait_for_selector(f"#tab-{tab}.active")


def draw_seven(page):
    """A '7' in three mouse strokes-worth of moves on #draw-pad (280x280 CSS px)."""
    box = page.locator("#draw-pad").bounding_box()
    x, y = box["x"], box["y"]
    page.mouse.move(x + 80, y + 60)
    page.mouse.down()
    for i in range(1, 13):
        page.mouse.move(x + 80 + 10 * i, y + 60)
    for i in range(1, 19):
        page.mouse.move(x + 200 - 5 * i, y + 60 + 10 * i)
    page.mouse.up()
    # a second stroke: the crossbar, so undo has something to take back
    page.mouse.move(x + 130, y + 150)
    page.mouse.down()
    page.mouse.move(x + 190, y + 150, steps=8)
    page.mouse.up()


def settled_prediction(page) -> str:
    """#prediction's text once the last stroke's prediction came back."""
    page.wait_for_selector('#prediction[data-busy="0"][data-label]', timeout=WAIT)
    return page.locator("#prediction").text_content()


@pytest.mark.parametrize("model", MODELS)
def test_draw_predicts_as_the_cli(page, server, shots, tmp_path, model):
    go(page, server, "draw")
    page.select_option("#model-select", model)
    page.wait_for_selector("#weights canvas", timeout=WAIT)     # the model's first layer arrived
    draw_seven(page)
    shown = settled_prediction(page)

    png = tmp_path / "drawn.png"
    url = page.evaluate("() => document.getElementById('draw-pad').toDataURL('image/png')")
    png.write_bytes(base64.b64decode(url.split(",", 1)[1]))
    cli = json.loads(bareprop("predict", server.runs / model, png, "--json", "--top", "10").stdout)[0]
    assert shown.startswith(cli["class"] + " "), (shown, cli)
    # the same preparation of the same PNG: the same probability, to the 0.1% shown
    percent = float(re.search(r"([\d.]+)%", shown).group(1))
    assert abs(percent - 100 * cli["top"][0]["probability"]) <= 0.051, (shown, cli["top"][0])
    bars = page.locator("#probs .prob")
    assert bars.count() == 10
    # what the network saw, every layer's activations and the first layer's weights are drawn
    assert page.locator("#activations .layer").count() >= 2
    if model == "cnn":
        # conv(4, 3), relu, maxpool: three layers of 4 feature maps each
        assert page.locator("#activations .maps").count() == 3
        assert page.locator("#activations .maps canvas").count() == 12
        assert page.locator("#weights canvas").count() == 4                 # 4 filters
    else:
        assert page.locator("#weights canvas").count() == 16                # hidden 16: 16 unit tiles
    page.screenshot(path=str(shots / f"draw-{model}.png"), full_page=True)

    # undo takes the crossbar back, and the prediction is asked again; clear empties the pad
    page.click("#undo")
    settled_prediction(page)
    page.click("#clear")
    assert page.locator("#prediction").text_content() == "Draw a digit"
    blank = page.evaluate("""() => { const c = document.getElementById('draw-pad');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        return d.every((v) => v === 255); }""")
    assert blank


def test_pen_and_touch_draw_too(page, server):
    """Pointer events of a pen and of a finger ink the pad and ask for a prediction as the mouse does."""
    go(page, server, "draw")
    page.select_option("#model-select", "mlp")
    page.wait_for_selector("#weights canvas", timeout=WAIT)
    for kind, x0 in (("pen", 70), ("touch", 170)):
        page.evaluate("""([kind, x0]) => {
            const pad = document.getElementById('draw-pad'), r = pad.getBoundingClientRect();
            const at = (type, x, y) => pad.dispatchEvent(new PointerEvent(type, {pointerType: kind, pointerId: 7,
                isPrimary: true, bubbles: true, cancelable: true, clientX: r.left + x, clientY: r.top + y}));
            at('pointerdown', x0, 50);
            for (let y = 60; y <= 230; y += 10) at('pointermove', x0 + (y - 50) / 6, y);
            at('pointerup', x0 + 30, 230);
        }""", [kind, x0])
        inked = page.evaluate(f"""() => {{ const d = document.getElementById('draw-pad').getContext('2d')
            .getImageData({x0 + 10}, 100, 20, 60).data; return d.some((v, i) => i % 4 === 0 && v < 128); }}""")
        assert inked, f"the {kind} stroke left no ink"
        assert settled_prediction(page)[0].isdigit()


def pad_below_header(page) -> dict:
    """Where the pad is against the sticky header and the viewport, in CSS px."""
    return page.evaluate("""() => {
        const pad = document.getElementById('draw-pad').getBoundingClientRect();
        const bar = document.querySelector('.topbar').getBoundingClientRect();
        return {padTop: pad.top, padBottom: pad.bottom, barBottom: bar.bottom,
                viewport: window.innerHeight}; }""")


def test_the_draw_tab_shows_the_whole_pad_and_a_stroke_at_its_top_draws(page, server):
    """#draw names the tab only: opening /#draw, or clicking the tab after scrolling, puts
    no part of the pad under the sticky header, and a stroke along its top edge inks it."""
    page.set_viewport_size({"width": 1360, "height": 520})       # a short window: it can scroll
    go(page, server, "draw")
    page.select_option("#model-select", "mlp")
    at = pad_below_header(page)
    assert at["barBottom"] <= at["padTop"] and at["padBottom"] <= at["viewport"], at
    page.click("#tab-train")
    page.mouse.wheel(0, 400)
    page.click("#tab-draw")
    page.wait_for_selector("#tab-draw.active")
    at = pad_below_header(page)
    assert at["barBottom"] <= at["padTop"], at
    box = page.locator("#draw-pad").bounding_box()
    page.mouse.move(box["x"] + 40, box["y"] + 4)
    page.mouse.down()
    page.mouse.move(box["x"] + 240, box["y"] + 4, steps=12)
    page.mouse.up()
    inked = page.evaluate("""() => { const d = document.getElementById('draw-pad').getContext('2d')
        .getImageData(60, 0, 160, 12).data; return d.some((v, i) => i % 4 === 0 && v < 128); }""")
    assert inked, "the stroke along the pad's top left no ink"
    assert page.evaluate("() => String(window.getSelection())") == ""
    page.click("#clear")


def start_from_form(page, preset: str, epochs: int) -> str:
    page.select_option("#f-preset", preset)
    page.fill("#f-epochs", str(epochs))
    page.click("#start")
    page.wait_for_function("() => document.getElementById('live-id').textContent !== ''", timeout=WAIT)
    return page.locator("#live-id").text_content()


def points(page, chart: str) -> int:
    return int(page.get_attribute(f"#{chart}", "data-points"))


def test_train_from_the_form_streams_the_loss(page, server, shots):
    go(page, server, "train")
    run = start_from_form(page, "lenet5", 1)
    # the loss chart receives points while the run is still running, and keeps receiving them
    page.wait_for_function("""() => document.getElementById('live-state').textContent === 'running'
        && +document.getElementById('loss-chart').dataset.points > 0""", timeout=WAIT)
    first = points(page, "loss-chart")
    page.wait_for_function("n => +document.getElementById('loss-chart').dataset.points > n", arg=first,
                           timeout=WAIT)
    assert page.locator("#s-speed").text_content() != "—"
    # the picture: a curve with some length to it, taken while the run still trains if it can be
    page.wait_for_function("""() => +document.getElementById('loss-chart').dataset.points >= 10
        || document.getElementById('live-state').textContent !== 'running'""", timeout=WAIT)
    page.screenshot(path=str(shots / "train-live.png"), full_page=True)

    page.wait_for_selector(f'.runitem[data-id="{run}"][data-state="finished"]', timeout=WAIT)
    page.wait_for_selector('#live-state:text-is("finished")', timeout=WAIT)
    summary = server.api(f"/api/runs/{run}")
    assert summary["state"] == "finished" and summary["epochs_done"] == 1
    assert points(page, "acc-chart") == 1
    # the stream thins batches out (one per interval) but always sends an epoch's last one
    steps = summary["batches"]["step"]
    assert first < points(page, "loss-chart") <= len(steps)
    assert int(page.get_attribute("#loss-chart", "data-last-x")) == steps[-1]


def test_stop_and_resume_from_the_page(page, server):
    go(page, server, "train")
    run = start_from_form(page, "lenet5", 4)
    # stop once the first epoch is in (its checkpoint is what resume continues from)
    page.wait_for_function("""() => +document.getElementById('acc-chart').dataset.points >= 1
        && document.getElementById('live-state').textContent === 'running'""", timeout=WAIT)
    page.click("#stop")
    page.wait_for_selector('#live-state:text-is("stopped")', timeout=WAIT)
    page.wait_for_selector(f'.runitem[data-id="{run}"][data-state="stopped"]', timeout=WAIT)
    stopped = server.api(f"/api/runs/{run}")
    assert stopped["state"] == "stopped" and 1 <= stopped["epochs_done"] < 4
    assert page.locator("#resume").is_enabled() and page.locator("#stop").is_disabled()

    page.click("#resume")
    page.wait_for_selector('#live-state:text-is("finished")', timeout=WAIT)
    done = server.api(f"/api/runs/{run}")
    assert done["state"] == "finished" and done["epochs_done"] == 4
    # it went on from its checkpoint: the epochs before the stop are kept, none is trained twice
    assert done["history"]["epoch"] == [1, 2, 3, 4]
    assert points(page, "acc-chart") == 4           # the epochs before the stop replayed, the rest live


def test_bad_setting_is_shown_beside_its_field(page, server, shots):
    go(page, server, "train")
    before = len(server.api("/api/runs")["runs"])
    page.fill("#f-lr", "-1")
    page.click("#start")
    error = page.locator('.field-error[data-for="lr"]')
    error.wait_for(state="visible", timeout=WAIT)
    assert "lr" in error.text_content().lower()
    assert "invalid" in page.get_attribute("#f-lr", "class")
    assert len(server.api("/api/runs")["runs"]) == before           # nothing started
    page.screenshot(path=str(shots / "train-error.png"))
    page.fill("#f-lr", "0.001")                                     # editing the field clears it
    assert error.is_hidden()


def test_runs_table_overlays_and_links_reports(page, server, shots):
    go(page, server, "runs")
    runs = server.api("/api/runs")["runs"]
    page.wait_for_selector("#runs-body tr", timeout=WAIT)
    assert page.locator("#runs-body tr").count() == len(runs)
    # a preset name holding markup is shown as its text, not parsed
    assert page.locator("#runs-body b").count() == 0
    assert page.locator('#runs-body tr[data-id="markup"] td').nth(2).text_content() == "<b>bold</b>"

    # a column header sorts the table, a second click reverses it
    ids = [r["id"] for r in runs]
    page.click('#runs-table th[data-sort="id"]')
    assert page.eval_on_selector_all("#runs-body tr", "rows => rows.map(r => r.dataset.id)") == sorted(ids)
    page.click('#runs-table th[data-sort="id"]')
    assert page.eval_on_selector_all("#runs-body tr", "rows => rows.map(r => r.dataset.id)") == sorted(ids)[::-1]

    trained = [r["id"] for r in runs if r["epochs_done"] >= 1 and r["kind"] == "cnn"][:3]
    for run in trained:
        page.locator(f'#runs-body tr[data-id="{run}"] input.pick').check()
    # each tick redraws the overlay: wait for the one with every ticked run in its legend
    page.wait_for_function("""ids => { const l = document.querySelector('#cmp-acc .u-legend');
        return !!l && ids.every((id) => l.textContent.includes(id)); }""", arg=trained, timeout=WAIT)
    assert points(page, "cmp-acc") == max(r["epochs_done"] for r in runs if r["id"] in trained)
    page.screenshot(path=str(shots / "runs-overlay.png"), full_page=True)

    # the report opens in a new tab, which the session cookie lets in
    with page.expect_popup(timeout=WAIT) as opened:
        page.locator('#runs-body tr[data-id="mlp"] a.link').click()
    report = opened.value
    report.wait_for_load_state(timeout=WAIT)
    assert report.url == f"{server.app}api/runs/mlp/report"
    assert "bareprop report" in report.content()
    # sandboxed: its own opaque origin, no script ran, nothing of the app's is reachable
    assert report.evaluate("() => window.origin") == "null"


@pytest.mark.parametrize("model,method", [("cnn", "gradcam"), ("mlp", "integrated-gradients")])
def test_draw_explains_as_the_cli(page, server, shots, tmp_path, model, method):
    """The Why card: pick a method, draw, and the overlay appears; its map is what `bareprop
    explain --json` computes for the same PNG (to the u8 quantisation the page receives)."""
    import numpy as np

    from bareprop.explain.methods import picture

    go(page, server, "draw")
    page.select_option("#model-select", model)
    page.wait_for_selector("#weights canvas", timeout=WAIT)
    offered = page.eval_on_selector_all("#explain-select option", "os => os.map(o => o.value)")
    assert ("gradcam" in offered) == (model == "cnn") and "saliency" in offered
    page.select_option("#explain-select", method)
    answers = []
    page.on("response", lambda r: answers.append(r) if "explain=" in r.url else None)
    draw_seven(page)
    settled_prediction(page)
    page.wait_for_selector(f'#explain28[data-method="{method}"]', timeout=WAIT)
    # the overlay is the shown prediction's (a throttled prediction may still land after
    # the pen is up: wait until nothing is in flight and both say the same request)
    page.wait_for_function("""() => { const p = document.getElementById('prediction');
        const w = document.getElementById('explain28');
        return p.dataset.busy === '0' && w.dataset.seq && w.dataset.seq === p.dataset.seq; }""",
                           timeout=WAIT)
    why = answers[-1].json()["explanation"]
    assert why["method"] == method and why["shown"] == [28, 28]
    q = np.frombuffer(base64.b64decode(why["u8"]), np.uint8).reshape(28, 28)
    shown = why["min"] + q * (why["max"] - why["min"]) / 255

    png = tmp_path / "drawn.png"
    url = page.evaluate("() => document.getElementById('draw-pad').toDataURL('image/png')")
    png.write_bytes(base64.b64decode(url.split(",", 1)[1]))
    cli = json.loads(bareprop("explain", server.runs / model, png, "--method", method,
                              "--json").stdout)[0]
    want = picture(np.array(cli["attribution"])[None])[0]
    assert why["target"] == int(cli["target"])
    np.testing.assert_allclose(shown, want, atol=(why["max"] - why["min"]) / 500 + 1e-6)
    painted = page.evaluate("""() => { const c = document.getElementById('explain28');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        return new Set(Array.from(d.filter((_, i) => i % 4 === 0))).size; }""")
    assert painted > 10                                  # a picture, not a blank canvas
    page.screenshot(path=str(shots / f"draw-why-{model}-{method}.png"), full_page=True)
    # back to none: no explanation is asked for, and the card says how to get one
    page.select_option("#explain-select", "")
    assert page.locator("#explain28").get_attribute("data-method") is None
