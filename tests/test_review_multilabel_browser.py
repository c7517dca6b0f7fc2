"""The multi-label review app in headless Chromium (Playwright): number keys toggle labels, 0 clears them,
Enter saves the selection; the label sets land in SQLite encoded. Also the README screenshot."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from labelloop.labels import decode_set, encode_set
from labelloop.review.app import create_app
from labelloop.store import NewChunk
from tests.helpers.review_multilabel_project import ML_CLASSES, make_multilabel_project
from tests.helpers.browser import BROWSER_MARKS, browser, card, expect, human, new_page, page  # noqa: F401 (fixtures)
from tests.helpers.review_project import live_server

ROOT = Path(__file__).resolve().parents[1]

pytestmark = BROWSER_MARKS


@pytest.fixture()
def served(tmp_path):
    project = make_multilabel_project(tmp_path)
    with live_server(create_app(project.store)) as url:
        yield project, url




def card_of(pg, cid):
    return pg.locator(f"#record-{cid}")


def wait_state(pg, cid, state):
    pg.wait_for_selector(f'#record-{cid}[data-state="{state}"]')


def pressed(pg, cid) -> list[str]:
    """The labels a record's toggles show selected."""
    return card_of(pg, cid).locator('button.toggle[aria-pressed="true"]').evaluate_all(
        "els => els.map(e => e.dataset.label)")


def suggestion(pg, cid) -> list[str]:
    return decode_set(card_of(pg, cid).get_attribute("data-suggestion"))


def flipped(labels: list[str], *keys: int) -> list[str]:
    """`labels` with the classes behind number keys toggled, in class order."""
    chosen = set(labels) ^ {ML_CLASSES[k - 1] for k in keys}
    return [c for c in ML_CLASSES if c in chosen]


def start(pg, url, path="/queue/pending"):
    pg.goto(url + path)
    pg.fill("#reviewer", "pw")
    pg.locator("#reviewer").dispatch_event("change")
    pg.locator("body").click(position={"x": 5, "y": 300})


def test_number_keys_toggle_zero_clears_enter_saves(served, page):
    project, url = served
    store = project.store
    start(page, url)
    ids = [int(card(page, i).get_attribute("data-id")) for i in range(5)]
    assert "active" in card(page, 0).get_attribute("class")

    first = suggestion(page, ids[0])
    assert pressed(page, ids[0]) == first  # the page starts from the LLM's set
    page.keyboard.press("Enter")  # nothing changed: accept the LLM's set
    wait_state(page, ids[0], "submitted")
    assert human(store, ids[0]) == (encode_set(first, ML_CLASSES), "ok")

    want = flipped(suggestion(page, ids[1]), 1, 3)
    page.keyboard.press("1")
    page.keyboard.press("3")
    assert pressed(page, ids[1]) == want and human(store, ids[1]) is None  # toggling alone saves nothing
    expect(card_of(page, ids[1]).locator('[data-role="save"]')).to_contain_text("Save")
    page.keyboard.press("Enter")
    wait_state(page, ids[1], "submitted")
    assert human(store, ids[1]) == (encode_set(want, ML_CLASSES), "ok")
    shown = card_of(page, ids[1]).locator("[data-role=human] .chip")
    expect(shown).to_have_text(want or ["none of them"])

    page.keyboard.press("2")
    page.keyboard.press("0")  # none of them: clears every label, whatever was toggled
    assert pressed(page, ids[2]) == []
    page.keyboard.press("Enter")
    wait_state(page, ids[2], "submitted")
    assert human(store, ids[2]) == ("[]", "ok")
    expect(card_of(page, ids[2]).locator("[data-role=human]")).to_have_text("none of them")

    page.keyboard.press("2")
    page.keyboard.press("2")  # toggled back: the LLM's set again, so Enter accepts it
    page.keyboard.press("Enter")
    wait_state(page, ids[3], "submitted")
    assert human(store, ids[3]) == (encode_set(suggestion(page, ids[3]), ML_CLASSES), "ok")

    page.keyboard.press("4")
    page.keyboard.press("Backspace")  # discard keeps working; the toggles do not matter
    wait_state(page, ids[4], "discarded")
    assert human(store, ids[4]) == (None, "discarded")
    page.keyboard.press("u")
    wait_state(page, ids[4], "pending")
    assert human(store, ids[4]) is None and pressed(page, ids[4]) == suggestion(page, ids[4])

    actions = [r.action for r in store.reviews()]
    assert actions[:2] == ["accept", "correct"] and actions[3:] == ["accept", "discard", "undo"]
    assert actions[2] == ("accept" if suggestion(page, ids[2]) == [] else "correct")
    assert {r.reviewer for r in store.reviews()} == {"pw"}
    expect(page.locator("#sum-reviewed")).to_have_text("4")
    assert page.locator('[data-queue="submitted"]').inner_text() == "4"
    page.keyboard.press("?")
    assert page.locator("#keys").is_visible() and "none of them" in page.locator("#keys").inner_text()
    page.keyboard.press("Escape")
    assert page.problems == []


def test_buttons_toggle_clear_and_save_a_disagreement(served, page):
    project, url = served
    store = project.store
    start(page, url, "/queue/disagreements")
    cid = int(card(page, 0).get_attribute("data-id"))
    wrong = project.flipped[cid]
    before = page.locator('[data-class-disagree="' + wrong + '"]').inner_text()
    card_of(page, cid).locator(f'button.toggle[data-label="{wrong}"]').click()  # fix the LLM's mistake
    assert pressed(page, cid) == project.truth[cid]
    card_of(page, cid).locator('[data-role="save"]').click()
    wait_state(page, cid, "submitted")
    assert human(store, cid) == (encode_set(project.truth[cid], ML_CLASSES), "ok")
    expect(page.locator('[data-class-disagree="' + wrong + '"]')).to_have_text(str(int(before) - 1))

    other = int(card(page, 1).get_attribute("data-id"))
    card_of(page, other).locator('button[data-action="none"]').click()
    assert pressed(page, other) == []
    card_of(page, other).locator('[data-role="save"]').click()
    wait_state(page, other, "submitted")
    assert human(store, other) == ("[]", "ok")
    assert page.problems == []


def test_a_record_without_suggestion_needs_a_choice(served, page):
    project, url = served
    store = project.store
    store.add_document("lonely.txt", "h", 3, [NewChunk(text="A lonely chunk.", source="lonely.txt", position=0)])
    lonely = store.chunks()[-1].id
    store.assign_split([lonely], "train")
    store.set_label(lonely, "llm-small", None, status="unlabeled", reason="timeout")
    start(page, url, "/queue/low-confidence")
    card_of(page, lonely).click(position={"x": 8, "y": 8})
    assert card_of(page, lonely).locator('[data-role="save"]').is_disabled()
    page.keyboard.press("Enter")
    expect(page.locator("#toast.error")).to_contain_text("No suggestion")
    assert human(store, lonely) is None
    page.keyboard.press("4")
    page.keyboard.press("Enter")
    wait_state(page, lonely, "submitted")
    assert human(store, lonely) == ('["tech"]', "ok")
    assert page.problems == []


def test_screenshot_of_the_multilabel_screen(served, browser):
    project, url = served
    store = project.store
    ids = sorted(project.truth)
    for cid in ids[:3]:
        store.set_label(cid, "human", encode_set(project.truth[cid], ML_CLASSES))
        store.add_review(cid, "correct", encode_set(project.truth[cid], ML_CLASSES), None, "ana")
    context, page = new_page(browser, width=1200, height=900)
    try:
        page.goto(f"{url}/queue/disagreements")
        page.fill("#reviewer", "ana")
        page.locator("body").click(position={"x": 5, "y": 600})
        cid = int(card(page, 0).get_attribute("data-id"))
        page.keyboard.press(str(ML_CLASSES.index(project.flipped[cid]) + 1))  # a selection being made
        page.wait_for_timeout(300)
        out = ROOT / "tests" / "artifacts" / "review-multilabel.png"
        out.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(out))
        docs = ROOT / "docs" / "review-multilabel.png"
        shutil.copyfile(out, docs)
        assert out.stat().st_size > 20_000
        assert page.problems == []
    finally:
        context.close()
