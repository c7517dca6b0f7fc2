"""Headless Chromium for the review app's browser tests: the marks, the browser, a page that records problems.

A test module does `from tests.helpers.browser import BROWSER_MARKS, browser, page, ...` and sets
`pytestmark = BROWSER_MARKS`; the `browser` and `page` fixtures are then found by pytest in that module.
"""

from __future__ import annotations

from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]

BROWSER_MARKS = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(),
                       reason=f"needs Debian's Chromium at {CHROMIUM}: apt-get install -y chromium (make setup)"),
]
playwright_api = pytest.importorskip("playwright.sync_api", reason="needs the `playwright` package (dev extra)")
expect = playwright_api.expect


@pytest.fixture(scope="module")
def browser():
    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield b
        b.close()


def new_page(browser, width: int = 1360, height: int = 940):
    """(context, page) whose dialogs, console errors and page errors land in page.problems."""
    context = browser.new_context(viewport={"width": width, "height": height}, device_scale_factor=1)
    pg = context.new_page()
    pg.set_default_timeout(10_000)
    pg.problems = []  # dialogs (alert) and console errors (CSP violations, JS errors)
    pg.on("dialog", lambda d: (pg.problems.append(f"dialog: {d.message}"), d.dismiss()))
    pg.on("console", lambda m: pg.problems.append(f"console: {m.text} {m.location}") if m.type == "error" else None)
    pg.on("pageerror", lambda e: pg.problems.append(f"pageerror: {e}"))
    return context, pg


@pytest.fixture()
def page(browser):
    context, pg = new_page(browser)
    yield pg
    context.close()


def human(store, cid):
    """(label, status) of a chunk's human label in SQLite, or None."""
    labs = store.labels("human", chunk_ids=[cid])
    return (labs[0].label, labs[0].status) if labs else None


def card(pg, i):
    """The i-th record card on the page."""
    return pg.locator("article.record").nth(i)
