"""A report page rendered in headless Chromium (through Playwright): whether every embedded
figure decoded. The report holds no script of its own (its Content-Security-Policy allows
none), so the check runs from outside, as a test's evaluation."""
import shutil

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
COUNT = """() => { const imgs = Array.from(document.images);
  const ok = imgs.filter((i) => i.complete && i.naturalWidth > 0).length;
  return [ok === imgs.length ? 'true' : 'false', ok + '/' + imgs.length]; }"""


def images_loaded(page, profile) -> tuple[str, str]:
    """('true' when every image decoded, 'decoded/all') of the rendered ``page`` (a path),
    using the folder ``profile`` for Chromium's profile; needs CHROMIUM and Playwright
    (skip the test without them)."""
    import pytest

    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        context = p.chromium.launch_persistent_context(str(profile), executable_path=CHROMIUM,
                                                       headless=True, args=ARGS)
        try:
            tab = context.new_page()
            tab.goto(page.as_uri(), wait_until="load", timeout=120_000)
            ok, loaded = tab.evaluate(COUNT)
        finally:
            context.close()
    return ok, loaded
