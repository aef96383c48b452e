"""Driving the dashboard in a real browser: Debian's Chromium through Playwright.

Nothing is downloaded at run time: the browser is the system's (``apt-get install
chromium``), never one ``playwright install`` fetches. Without it (or without the
``playwright`` package) the browser tests skip, except under CI, where they must run.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

CHROMIUM = Path("/usr/bin/chromium")
VIEWPORT = {"width": 1366, "height": 768}  # a laptop screen
EXPECTED_NOISE = ("Failed to load resource", "WebSocket connection to")
WAIT_MS = 20_000  # a bound for a stuck test, never a measurement


def require_browser() -> None:
    """Skip (fail under CI) when the browser or Playwright is missing."""
    problem = None
    if not CHROMIUM.is_file():
        problem = f"{CHROMIUM} is missing (apt-get install chromium)"
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            problem = "the playwright package is missing (pip install 'playwright>=1.50')"
    if problem is None:
        return
    if os.environ.get("CI"):
        pytest.fail(f"CI must run the browser tests: {problem}")
    pytest.skip(problem)


@contextmanager
def chromium() -> Iterator[Browser]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        try:
            yield browser
        finally:
            browser.close()


@contextmanager
def open_page(browser: Browser) -> Iterator[tuple[Page, list[str]]]:
    """A fresh page (its own storage), and the errors the page logged: script errors and
    Content-Security-Policy refusals both land there. The browser's own notes on answers
    that were not 2xx (a 422 the page shows, the WebSocket refused before a key) are
    expected and left out."""
    context = browser.new_context(viewport=VIEWPORT)  # type: ignore[arg-type]
    context.set_default_timeout(WAIT_MS)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(f"{error}"))
    page.on(
        "console",
        lambda message: (
            errors.append(message.text)
            if message.type == "error" and not message.text.startswith(EXPECTED_NOISE)
            else None
        ),
    )
    try:
        yield page, errors
    finally:
        context.close()
