"""A report page rendered in headless Chromium: the DOM after its load handler ran, which
records on <body> whether every embedded figure decoded (report.PAGE's script)."""
import re
import shutil
import subprocess

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def images_loaded(page, profile) -> tuple[str, str]:
    """(data-images-ok, data-images-loaded) of the rendered ``page`` (a path), using the
    folder ``profile`` for Chromium's profile; needs CHROMIUM (skip the test without it)."""
    dom = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
                          "--disable-background-networking", "--disable-component-update",
                          "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
                          "--virtual-time-budget=5000", "--dump-dom", page.as_uri()],
                         capture_output=True, text=True, timeout=120).stdout
    ok = re.search(r'data-images-ok="(\w+)"', dom)
    loaded = re.search(r'data-images-loaded="([\d/]+)"', dom)
    return (ok.group(1) if ok else "missing", loaded.group(1) if loaded else "missing")
