"""Debian's Chromium, driven by Playwright (no browser download: the system binary)."""

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from playwright.sync_api import Page, sync_playwright

from tests.harness.environment import need

CHROMIUM = Path("/usr/bin/chromium")
# As root, with this machine's closed network: no sandbox, and none of Chromium's background
# connections (refused here, many at a time).
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@contextmanager
def chromium_page(width: int = 1000, height: int = 640) -> Iterator[Page]:
    """A page of a headless Chromium, its viewport width x height; skip without one (fail
    under CI=true)."""
    need(CHROMIUM.exists(), f"{CHROMIUM} not found (apt-get install chromium)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=FLAGS
        )
        try:
            yield browser.new_page(viewport={"width": width, "height": height})
        finally:
            browser.close()
