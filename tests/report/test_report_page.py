"""The report as a reader meets it: rendered in headless Chromium at 1280 px, the headline,
the curves and the confusion matrix are on the first screen, the histograms' tick labels
are readable, the settings table holds what differs from the preset (the rest folded,
values as typed), an MPI run says its processes and allreduce time, and the page holds
no script. Screenshots go to $BAREPROP_SCREENSHOTS (else the test's folder)."""
import json
import os
import re
import shutil
from pathlib import Path

import pytest

from bareprop import plots
from bareprop.cli.main import main

from browser import ARGS, CHROMIUM
from synthetic import write_dataset

pytest.importorskip("matplotlib")

# an --arch CNN with eleven layers: eleven activation panels, six gradient panels
ARCH = ("conv(4,3) relu maxpool(2) conv(4,3) relu maxpool(2) flatten linear(16) relu "
        "dropout(0.5) linear(10)")
SCREEN = 1000          # px: what "the first screen" means here (a 1280 x 1000 window)
MIN_LABEL_PX = 8       # the smallest tick label a reader is asked to read


def _tick_points(fig) -> float | None:
    """The smallest tick label of ``fig``, in points, as drawn (None: it has none)."""
    fig.canvas.draw()
    sizes = [t.get_fontsize() for ax in fig.axes if ax.axison
             for t in (ax.get_xticklabels() + ax.get_yticklabels()
                       + ax.get_yticklabels(minor=True)) if t.get_text()]
    return min(sizes, default=None)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """(run folder, data, {figure file: (smallest tick label in points, figure width in
    inches)}) of a CLI-trained CNN run's report; the sizes are read off each figure as
    plots saves it."""
    tmp = tmp_path_factory.mktemp("report")
    data = write_dataset(tmp / "mnist")
    run = tmp / "run"
    assert main(["train", "--data-dir", str(data), "--no-verify", "--quiet", "--arch", ARCH,
                 "--epochs", "4", "--batch-size", "32", "--val-fraction", "0.2",
                 "--inspect-epochs", "1", "4",
                 "--out", str(run)]) == 0
    figures, save = {}, plots._save

    def spy(fig, path, dpi):
        figures[Path(path).name] = (_tick_points(fig), fig.get_figwidth())
        save(fig, path, dpi)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(plots, "_save", spy)
        assert main(["report", str(run), "--data-dir", str(data)]) == 0
    return run, data, figures


def test_the_page_leads_with_the_results_and_holds_no_script(built):
    page = (built[0] / "report.html").read_text()
    titles = re.findall(r"<h2>([^<]*)</h2>", page)
    assert titles[:4] == ["Loss and accuracy", "Confusion matrix", "Per-class accuracy",
                          "Settings"], titles
    headline = page.split("<h2>", 1)[0]
    assert re.search(r'<p class="big">test accuracy 0\.\d{4}</p>', headline)
    for stat in ("test loss", "val accuracy", "epochs", "parameters", "processes"):
        assert f'<span class="k">{stat}</span>' in headline, stat
    # self-contained, and nothing that runs: no script, no event handler, no outside URL
    assert "<script" not in page.lower() and not re.search(r"\son[a-z]+\s*=", page, re.I)
    assert not re.search(r'(?:src|href)="(?:https?:)?//', page) and "@import" not in page
    # the web app's look: its accent and font stack, in the page's own stylesheet
    css = (Path(plots.__file__).parent / "web" / "static" / "style.css").read_text()
    for token in ("#4f46e5", "#f5f6fa", 'font-family: Inter, "Segoe UI", system-ui'):
        assert token in css and token in page, token


def test_settings_show_what_differs_from_the_preset_the_rest_folded(built):
    page = (built[0] / "report.html").read_text()
    section = page.split("<h2>Settings</h2>", 1)[1].split("</section>", 1)[0]
    shown, folded = section.split("<details>", 1)
    rows = dict(re.findall(r"<td class=k>(--[\w-]+)</td><td>([^<]*)</td>", shown))
    assert rows == {"--data-dir": str(built[1]), "--arch": ARCH, "--epochs": "4",
                    "--batch-size": "32", "--val-fraction": "0.2", "--inspect-epochs": "1 4",
                    "--verify": "no"}
    assert "&quot;" not in section and "null" not in section     # values as typed, not JSON
    assert "<td class=k>--lr</td><td>0.003</td>" in folded      # every used setting, folded
    assert "<td class=k>--momentum</td>" not in section         # adam never reads it ...
    assert re.search(r"Not read by this run[^<]*--momentum", folded)     # ... said apart
    assert "<td class=k>--hidden</td>" not in section           # an --arch run's MLP flags


def test_settings_helpers():
    from bareprop.report import changed_settings, settings_rows, unused_settings

    cfg = {"dataset": "mnist", "preset": "default", "optimizer": "adam", "lr": 0.003,
           "momentum": 0.0, "schedule": "onecycle", "gamma": 0.1, "epochs": 2,
           "hidden": [128], "activation": ["relu"], "log": [], "clip_delta": None,
           "nesterov": False, "out": "runs/x"}
    assert set(unused_settings(cfg)) == {"momentum", "gamma", "nesterov"}
    assert dict(settings_rows(cfg))["hidden"] == "128" and dict(settings_rows(cfg))["log"] == "none"
    # the preset's own values, the output folder and the preset's name are not "changes"
    assert changed_settings(cfg) == ("preset default", [("--epochs", "2", "10")])
    # a preset bareprop does not know: compared with the defaults
    label, rows = changed_settings({**cfg, "preset": "mine", "lr": 0.001})
    assert label == "bareprop's defaults" and ("--lr", "0.001", "0.001") not in rows
    assert ("--optimizer", "adam", "adam") not in rows and ("--epochs", "2", "10") in rows


def test_an_mpi_run_says_its_processes_and_allreduce_time(built, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(built[0], run)
    metrics = json.loads((run / "metrics.json").read_text())
    metrics["processes"] = 3
    for e in metrics["history"]:
        e["allreduce_seconds"], e["seconds"] = 0.25, 2.0
    (run / "metrics.json").write_text(json.dumps(metrics))
    assert main(["report", str(run), "--data-dir", str(built[1])]) == 0
    page = (run / "report.html").read_text()
    headline = page.split("<h2>", 1)[0]
    assert '<span class="k">processes</span><span class="v">3</span>' in headline
    assert '<span class="k">allreduce</span><span class="v">1.0 s, 12% of training</span>' \
        in headline
    epochs = page.split("<h2>Metrics per epoch</h2>", 1)[1].split("</section>", 1)[0]
    assert "<th>allreduce seconds</th>" in epochs and epochs.count("<td>0.25</td>") == 4


def test_in_chromium_at_1280px_the_first_screen_and_readable_histograms(built, tmp_path):
    """Where the headline, curves and confusion matrix sit in a 1280 x 1000 window, and
    the histograms' tick labels as shown: points x (shown width / figure width in
    inches) / 72, whatever the figure's dpi."""
    sync_api = pytest.importorskip("playwright.sync_api")
    if CHROMIUM is None:
        pytest.skip("chromium not installed (apt-get install chromium)")
    run, _, figures = built
    shots = Path(os.environ.get("BAREPROP_SCREENSHOTS", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            tab = browser.new_page(viewport={"width": 1280, "height": SCREEN})
            tab.goto((run / "report.html").as_uri(), wait_until="load")
            boxes = tab.evaluate("""() => {
                const box = (el) => { if (!el) return null;
                    const r = el.getBoundingClientRect();
                    return {top: r.top + scrollY, bottom: r.bottom + scrollY, width: r.width,
                            natural: el.naturalWidth || 0, ok: el.complete === undefined
                            || (el.complete && el.naturalWidth > 0)}; };
                const img = (alt) => box(document.querySelector(`img[alt="${alt}"]`));
                return {headline: box(document.querySelector('.big')),
                        stats: box(document.querySelector('.stats')),
                        curves: img('Loss and accuracy'), confusion: img('Confusion matrix'),
                        activations: img('Histograms of activations'),
                        gradients: img('Histograms of gradients'),
                        page: document.documentElement.scrollWidth};
            }""")
            tab.screenshot(path=str(shots / "report-first-screen.png"))
            tab.screenshot(path=str(shots / "report-full.png"), full_page=True)
        finally:
            browser.close()
    problems = []           # every one of them, so a failure shows the whole picture
    if boxes["page"] > 1280:
        problems.append("the page scrolls sideways")
    if not boxes["headline"] or boxes["headline"]["bottom"] > 300:
        problems.append(f"headline: {boxes['headline']}")
    if not boxes["stats"] or boxes["stats"]["bottom"] > SCREEN:
        problems.append(f"headline numbers: {boxes['stats']}")
    # the curves whole, and the confusion matrix begun, on the first screen
    if boxes["curves"]["bottom"] > SCREEN or not boxes["curves"]["ok"]:
        problems.append(f"curves: {boxes['curves']}")
    if boxes["confusion"]["top"] > SCREEN - 200 or not boxes["confusion"]["ok"]:
        problems.append(f"confusion matrix: {boxes['confusion']}")
    for kind in ("activations", "gradients"):
        points, inches = figures[f"{kind}.png"]
        shown = points * boxes[kind]["width"] / inches / 72
        if shown < MIN_LABEL_PX:
            problems.append(f"{kind}: tick labels {shown:.1f} px on screen")
    assert not problems, problems
