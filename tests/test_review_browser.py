"""The review app in headless Chromium (Playwright): keyboard review, bulk accept, undo, XSS, screenshot."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from labelloop.review.app import create_app
from tests.helpers.browser import BROWSER_MARKS, browser, card, expect, human, new_page, page  # noqa: F401 (fixtures)
from tests.helpers.review_project import CLASSES, RULES_TEXT, XSS_TEXT, live_server, make_project

ROOT = Path(__file__).resolve().parents[1]

pytestmark = BROWSER_MARKS


@pytest.fixture()
def served(tmp_path):
    project = make_project(tmp_path)
    with live_server(create_app(project.store)) as url:
        yield project, url




def wait_state(pg, cid, state):
    pg.wait_for_selector(f'#record-{cid}[data-state="{state}"]')


def test_keyboard_review_accept_correct_discard_undo(served, page):
    project, url = served
    store = project.store
    page.goto(f"{url}/queue/pending")
    page.fill("#reviewer", "pw")
    page.locator("#reviewer").dispatch_event("change")
    page.locator("body").click(position={"x": 5, "y": 300})
    ids = [int(card(page, i).get_attribute("data-id")) for i in range(4)]
    assert "active" in card(page, 0).get_attribute("class")

    suggestion = card(page, 0).get_attribute("data-suggestion")
    page.keyboard.press("Enter")
    wait_state(page, ids[0], "submitted")
    assert human(store, ids[0]) == (suggestion, "ok")

    page.keyboard.press("2")  # the next record is active now
    wait_state(page, ids[1], "submitted")
    assert human(store, ids[1]) == (CLASSES[1], "ok")

    page.keyboard.press("Backspace")
    wait_state(page, ids[2], "discarded")
    assert human(store, ids[2]) == (None, "discarded")

    page.keyboard.press("u")
    wait_state(page, ids[2], "pending")
    assert human(store, ids[2]) is None
    assert "active" in card(page, 2).get_attribute("class")

    page.keyboard.press("ArrowUp")
    assert "active" in card(page, 1).get_attribute("class")
    page.keyboard.press("3")
    expect(page.locator(f"#record-{ids[1]} [data-role=human]")).to_have_text(CLASSES[2])
    assert human(store, ids[1]) == (CLASSES[2], "ok")
    assert [r.reviewer for r in store.reviews()] == ["pw"] * 5
    expect(page.locator("#sum-reviewed")).to_have_text("2")
    assert page.locator('[data-queue="submitted"]').inner_text() == "2"

    page.keyboard.press("?")
    assert page.locator("#keys").is_visible()
    page.keyboard.press("Escape")
    assert not page.locator("#keys").is_visible()
    page.keyboard.press("r")
    rules = page.locator("#rules-dialog .rules-text")
    assert rules.is_visible() and rules.inner_text() == RULES_TEXT  # markup in the rules shows as text
    page.keyboard.press("Escape")
    assert page.problems == []


def test_bulk_accept_a_filtered_page(served, page):
    project, url = served
    store = project.store
    page.goto(f"{url}/queue/pending?cls=sports")
    ids = [int(x) for x in page.locator("article.record").evaluate_all("els => els.map(e => e.dataset.id)")]
    assert len(ids) > 3
    page.click("#bulk-button")
    for cid in ids:
        wait_state(page, cid, "submitted")
    assert all(human(store, cid) == ("sports", "ok") for cid in ids)
    expect(page.locator('[data-class="sports"]')).to_have_text("0")
    page.keyboard.press("u")  # one undo takes back the whole bulk action
    for cid in ids:
        wait_state(page, cid, "pending")
    assert all(human(store, cid) is None for cid in ids)
    assert page.problems == []


def test_xss_payloads_render_as_text(served, page):
    project, url = served
    page.goto(f"{url}/queue/pending?cls=business")
    record = page.locator(f"#record-{project.xss_id}")
    assert record.locator(".text").inner_text() == XSS_TEXT
    assert record.locator(".text img, .text script").count() == 0
    assert "onerror=alert(3)" in record.locator(".src").inner_text()
    record.click(position={"x": 8, "y": 8})
    page.keyboard.press("Enter")
    wait_state(page, project.xss_id, "submitted")
    assert page.evaluate("window.__xss") is None
    page.goto(f"{url}/rules")
    assert RULES_TEXT in page.locator("textarea").input_value()
    page.fill("textarea", RULES_TEXT + "\nTie-break: <i>sports</i> wins.")
    page.click("button[type=submit]")
    expect(page.locator("p.ok")).to_have_text("Saved as version 2.")
    latest = project.store.rules()
    assert (latest.version, latest.author) == (2, "human") and latest.text.endswith("<i>sports</i> wins.")
    assert page.evaluate("window.__xss") is None
    assert page.problems == []  # no alert() fired, no CSP violation, no JS error


def test_screenshot_of_the_main_screen(served, page):
    project, url = served
    store = project.store
    ids = [c.id for c in store.chunks()]
    for cid in ids[:3]:
        store.set_label(cid, "human", project.truth[cid])
        store.add_review(cid, "correct", project.truth[cid], None, "ana")
    store.set_label(ids[3], "human", None, status="discarded")
    page.goto(f"{url}/queue/disagreements")
    page.fill("#reviewer", "ana")
    page.locator("body").click(position={"x": 5, "y": 600})
    page.keyboard.press("ArrowDown")
    page.wait_for_timeout(400)  # let the smooth scroll settle
    out = ROOT / "tests" / "artifacts" / "review.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(out))
    docs = ROOT / "docs" / "review.png"
    docs.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(out, docs)
    assert out.stat().st_size > 20_000
    assert page.problems == []
