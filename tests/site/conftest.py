"""The site checks read the built site, not temporary folders: they run after `make site`
(in `make test`, on the site built from the fast-mode runs) and need Chromium."""

import functools
import http.server
import os
import shutil
import threading
from pathlib import Path

import pytest

from helpers.infra.config import build_dir

SITE = Path(os.environ.get("SITE_DIR") or build_dir("site"))
CHROMIUM = os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which(
    "chromium-browser")


@pytest.fixture(autouse=True)
def isolated_dirs():
    """Replaces the unit tests' fixture of the same name: these tests read the real site."""


@pytest.fixture(scope="session")
def site_dir():
    if not (SITE / "index.html").exists():
        pytest.fail(f"No site in {SITE}: build it first with `make site`")
    return SITE


@pytest.fixture(scope="session")
def server(site_dir):
    """The site served on 127.0.0.1 at a free port; yields its base URL."""
    handler = functools.partial(_QuietHandler, directory=str(site_dir))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="session")
def browser():
    if CHROMIUM is None:
        message = ("Chromium not found: the browser checks of the site are skipped (install "
                   "Debian's `chromium`, or set CHROMIUM to its path)")
        if os.environ.get("CI"):
            pytest.fail(message + "; CI must run them")
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update",
                  "--disable-sync"])
        yield browser
        browser.close()
