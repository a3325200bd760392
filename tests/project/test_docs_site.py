"""The documentation site: `mkdocs build --strict` passes (no broken link, anchor or
API reference), the generated CLI and API pages cover every command, flag and public
name (the API page with a one-line summary each and no internals in its table of
contents), every derivation names a test that exists, and the built home and derivations
pages, rendered in headless Chromium, show typeset math and loaded images."""
import functools
import http.server
import os
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from conftest import ROOT

pytest.importorskip("mkdocs")
pytest.importorskip("material")
pytest.importorskip("mkdocstrings_handlers.python")

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT / "src"),
                                                       os.environ.get("PYTHONPATH")]))}
    r = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-q",
                        "-f", str(ROOT / "mkdocs.yml"), "-d", str(out)],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    return out


def _text(html: str) -> str:
    return re.sub(r"<[^>]+>", " ", html)


def test_strict_build_writes_every_page_of_the_nav(site):
    import yaml

    class Loader(yaml.SafeLoader):       # mkdocs.yml holds a !!python/object tag
        pass
    Loader.add_multi_constructor("tag:yaml.org,2002:python/", lambda *a: None)
    nav = yaml.load((ROOT / "mkdocs.yml").read_text(), Loader=Loader)["nav"]
    pages = [next(iter(entry.values())) for entry in nav]
    assert {"index.md", "cli.md", "api.md", "backprop.md", "format.md", "results.md",
            "benchmarks.md", "getting-started.md", "notebooks.md"} <= set(pages)
    for page in pages:
        if (ROOT / "docs" / page).exists():     # web/distributed/interop arrive with their code
            built = site / ("index.html" if page == "index.md" else f"{page[:-3]}/index.html")
            assert built.is_file(), page


def test_pages_load_nothing_from_outside_the_site(site):
    # offline and private: no CDN, no web fonts; links (<a>) may point anywhere
    for page in site.rglob("*.html"):
        html = page.read_text()
        assert not re.findall(r'<(?:script|link|img)\b[^>]*(?:src|href)="(?:https?:)?//', html), page


def test_cli_page_has_every_command_and_flag(site):
    import argparse

    from bareprop.cli.main import build_parser

    html = (site / "cli" / "index.html").read_text()
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    assert len(sub.choices) >= 6
    for name, cmd in sub.choices.items():
        assert f'id="bareprop-{name}"' in html, name
        section = html.split(f'id="bareprop-{name}"', 1)[1].split('<h2 id="bareprop-', 1)[0]
        for action in cmd._actions:
            if action.help == argparse.SUPPRESS:        # hidden on purpose (internal flags)
                continue
            for flag in action.option_strings:
                assert f"<code>{flag}" in section, f"{name} {flag}"
            if action.help and action.option_strings:
                words = " ".join(cmd._get_formatter()._expand_help(action).split())[:30]
                assert words.split()[0] in _text(section), f"{name} {action.option_strings}"


def test_api_page_documents_every_public_name(site):
    import bareprop

    html = (site / "api" / "index.html").read_text()
    for name in bareprop.__all__:
        # the table links the name (autorefs resolved it, or the strict build failed) to
        # an entry rendered on the page
        link = re.search(rf'href="#(bareprop[\w.]*\.{name})"', html)
        assert link, f"{name} is not linked from the table"
        assert f'id="{link.group(1)}"' in html, f"{name}'s entry is missing"


def _toc(html: str) -> list[tuple[str, str]]:
    """[(anchor, text)] of a built page's table of contents (Material's secondary nav)."""
    start = html.index('<nav class="md-nav md-nav--secondary"')
    depth = 0
    for m in re.finditer(r"<nav\b|</nav>", html[start:]):
        depth += 1 if m.group(0) == "<nav" else -1
        if depth == 0:
            break
    toc = html[start:start + m.end()]
    return [(a, " ".join(t.split())) for a, t in re.findall(
        r'<a href="#([^"]*)" class="md-nav__link">\s*<span class="md-ellipsis">(.*?)</span>',
        toc, re.S)]


def test_api_page_hides_internals_and_summarises_every_name(site):
    import bareprop

    html = (site / "api" / "index.html").read_text()
    toc = _toc(html)
    texts = [text for _, text in toc]
    assert {"Layers", "Losses", "Optimizers", "Training", "Linear", "fit"} <= set(texts)
    internal = [(a, t) for a, t in toc if t.startswith("_") or t in ("extra_repr", "preserves_shape",
                                                                     "spec", "from_spec")]
    assert not internal, internal
    for name in bareprop.__all__:
        row = re.search(rf'<tr>\s*<td><a [^>]*href="#[\w.]*\.{name}"[^>]*>.*?</td>\s*<td>(.*?)</td>',
                        html, re.S)
        assert row, f"{name} has no row in the tables"
        assert _text(row.group(1)).strip(), f"{name} has no one-line summary"


def test_every_backward_is_derived_and_linked_to_its_tests():
    import bareprop.core as core

    text = (ROOT / "docs" / "backprop.md").read_text()
    # every public layer has a backward (input_grad, its own or a shared base's)
    layers = {cls.__name__ for cls in vars(core).values()
              if isinstance(cls, type) and issubclass(cls, core.Module) and cls is not core.Module}
    layers |= {"CrossEntropyLoss", "MSELoss"}
    assert {"Linear", "Conv2d", "MaxPool2d", "BatchNorm2d", "ReLU"} <= layers
    names = {"CrossEntropyLoss": "cross-entropy", "MSELoss": "MSELoss"}
    for layer in sorted(layers):
        assert names.get(layer, layer).lower() in text.lower(), f"{layer} has no derivation"
    links = re.findall(r"\]\(\.\./(tests/[^)]+)\)", text)
    assert len(links) > 20
    for link in links:
        assert (ROOT / link).is_file(), link
    # every section that derives something closes with the tests that prove it
    for section in re.split(r"\n##+ ", text)[1:]:
        if "$$" in section:
            assert "](../tests/" in section, section.splitlines()[0]


def test_getting_started_shows_the_readme_commands():
    readme = (ROOT / "README.md").read_text()
    commands = re.search(r"```bash\n(.*?)```", readme, re.S).group(1)
    assert commands.count("\n") == 2
    assert commands in (ROOT / "docs" / "getting-started.md").read_text()


@pytest.fixture(scope="module")
def served(site):
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    handler = functools.partial(Quiet, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.mark.parametrize("page, min_math", [("", 3), ("backprop/", 15)])
def test_page_renders_math_and_images_in_chromium(served, tmp_path, page, min_math):
    playwright = pytest.importorskip("playwright.sync_api")
    if CHROMIUM is None:
        pytest.skip("no chromium")
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            tab = browser.new_page(viewport={"width": 1280, "height": 1800})
            errors = []
            tab.on("pageerror", lambda exc: errors.append(str(exc)))
            tab.goto(f"{served}/{page}", wait_until="load")
            tab.wait_for_function("document.querySelectorAll('.katex').length > 0",
                                  timeout=20000)
            state = tab.evaluate("""() => ({
                katex: document.querySelectorAll('.arithmatex .katex').length,
                raw: document.querySelectorAll('.arithmatex:not(:has(.katex))').length,
                errors: document.querySelectorAll('.katex-error').length,
                text: document.querySelector('article').innerText,
                images: [...document.querySelectorAll('article img')].map(
                    i => [i.getAttribute('src'), i.complete && i.naturalWidth > 0]),
                font: document.fonts.check('16px KaTeX_Main'),
            })""")
            shots = Path(os.environ.get("BAREPROP_SCREENSHOTS", tmp_path))
            shots.mkdir(parents=True, exist_ok=True)
            tab.screenshot(path=str(shots / f"{page.strip('/') or 'home'}.png"))
        finally:
            browser.close()
    assert not errors, errors
    assert state["katex"] >= min_math and state["raw"] == 0 and state["errors"] == 0, state
    assert "$$" not in state["text"] and "\\(" not in state["text"] and "\\[" not in state["text"]
    assert state["font"], "KaTeX's fonts did not load"
    assert all(ok for _, ok in state["images"]), state["images"]
    if page == "":
        assert state["images"], "the home page shows a figure"
