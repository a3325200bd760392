"""A real `bareprop sweep` on the Runs page, in Debian's Chromium through Playwright: the sweep
is one group row (not a run per trial); opened, its trials are a table and one chart overlays
their validation accuracy per epoch, the best highlighted and a pruned trial grey; a ticked trial
joins the comparison charts as any run. Saved as runs-sweep.png ($BAREPROP_SCREENSHOTS, else the
test's tmp folder)."""
import json

import pytest

from synthetic import write_dataset
from webpage import CHROMIUM, WAIT, Server, open_page, bareprop, browser, shots  # noqa: F401 (fixtures)

pytest.importorskip("playwright.sync_api")
pytestmark = pytest.mark.skipif(not CHROMIUM, reason="needs Debian's chromium (apt-get install chromium)")

GREY = "rgb(148, 163, 184)"         # sweeps.js's colour of a pruned or failed trial


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("web-sweep")
    data, runs = root / "data", root / "runs"
    write_dataset(data / "mnist", n_train=800)
    bareprop("sweep", "--data-dir", data, "--no-verify", "--epochs", "2", "--hidden", "32",
             "--space", "lr=log(1e-3,1e-1)", "--trials", "3", "--out", runs / "mysweep")
    # the synthetic set is too easy for the median rule to prune anything in two epochs: trial 2 is
    # marked pruned after the fact, with a reason holding markup (shown as text, never parsed)
    path = runs / "mysweep" / "sweep.json"
    record = json.loads(path.read_text())
    record["trials"][2].update(state="pruned", reason="<b>pruned</b> after epoch 1", value=None)
    path.write_text(json.dumps(record))
    srv = Server(runs, data)
    yield srv
    srv.close()


@pytest.fixture
def page(browser, server):
    with open_page(browser, server) as pg:
        yield pg


def test_a_sweep_is_a_group_whose_trials_open_in_one_chart(page, server, shots):
    page.goto(f"{server.app}#runs")
    row = page.locator('#runs-body tr.sweep-row[data-sweep="mysweep"]')
    row.wait_for(timeout=WAIT)
    assert page.locator("#runs-body tr").count() == 1           # one entry, no trial listed as a run
    text = row.text_content()
    assert "sweep" in text and "3/3 trials" in text and "1 pruned" in text and "finished" in text
    assert page.locator("#runs-count").text_content() == "1 sweep"
    assert row.locator("a.link").get_attribute("href") == "api/sweeps/mysweep/report"

    row.locator("button.toggle").click()
    panel = page.locator('#runs-body tr.sweep-panel[data-sweep="mysweep"]')
    panel.locator(".sweep-chart canvas").first.wait_for(timeout=WAIT)
    assert row.locator("button.toggle").get_attribute("aria-expanded") == "true"
    chart = panel.locator(".sweep-chart")
    assert chart.get_attribute("data-series") == "3" and chart.get_attribute("data-points") == "2"
    trials = panel.locator("table.trials tbody tr")
    assert trials.count() == 3
    best = server.api("/api/sweeps/mysweep")["best"]
    assert panel.locator("table.trials tr.best").get_attribute("data-id") == best["id"]
    assert best["command"] in panel.text_content()
    # the pruned trial: its reason as text, its curve grey; the best one's legend says so
    pruned = panel.locator('table.trials tr[data-id="mysweep/trials/0002"]')
    assert "<b>pruned</b> after epoch 1" in pruned.text_content() and panel.locator("b").count() == 0
    legend = page.evaluate("""() => [...document.querySelectorAll('.sweep-chart .u-legend .u-series')].slice(1)
        .map((s) => [s.querySelector('.u-label').textContent, getComputedStyle(s.querySelector('.u-marker')).borderColor])""")
    assert [label.split()[0] for label, _ in legend] == ["0000", "0001", "0002"]
    assert dict((label.split()[0], colour) for label, colour in legend)["0002"] == GREY
    assert "(best)" in next(label for label, _ in legend if label.startswith(best["id"][-4:]))

    # a trial is a run: ticked, its curves join the comparison below (fetched by its trial id)
    trials.nth(1).locator("input.pick").check()
    page.wait_for_function("""() => { const l = document.querySelector('#cmp-acc .u-legend');
        return !!l && l.textContent.includes('mysweep/trials/0001'); }""", timeout=WAIT)
    assert page.locator("#cmp-acc").get_attribute("data-points") == "2"
    href = trials.nth(1).locator("a.link").get_attribute("href")
    assert href == "api/runs/mysweep/trials/0001/report"
    page.screenshot(path=str(shots / "runs-sweep.png"), full_page=True)

    row.locator("button.toggle").click()                       # closed again
    panel.wait_for(state="detached", timeout=WAIT)
