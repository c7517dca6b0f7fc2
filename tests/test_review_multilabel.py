"""The review app in a multi-label project (classification.multi_label), in-process: label sets saved
encoded, per-label queues and counts, and the per-label probabilities in the API and the page."""

from __future__ import annotations

import json
import re

import pytest
from starlette.testclient import TestClient

from labelloop.labels import decode_set, encode_set
from labelloop.review import multi, queues
from labelloop.review.app import create_app
from labelloop.review.records import multi_label_of
from labelloop.store import NewChunk
from tests.helpers.review_multilabel_project import ML_CLASSES, THRESHOLDS, make_multilabel_project
from tests.helpers.review_project import XSS_TEXT, make_project

pytestmark = pytest.mark.unit

BASE = "http://127.0.0.1:8420"


@pytest.fixture()
def project(tmp_path):
    return make_multilabel_project(tmp_path)


def _client(store):
    app = create_app(store)
    client = TestClient(app, base_url=BASE)
    client.headers["X-CSRF-Token"] = app.state.csrf_token
    return client


@pytest.fixture()
def client(project):
    with _client(project.store) as c:
        yield c


def human(store, cid):
    labs = store.labels("human", chunk_ids=[cid])
    return (labs[0].label, labs[0].status) if labs else None


def label(client, cid, action, **extra):
    return client.post("/api/label", json={"chunk_id": cid, "action": action, "reviewer": "ana", **extra})


def plain(project):
    """Chunks the LLM labeled without a deliberate mistake."""
    return [c for c in sorted(project.truth) if c not in project.flipped and c not in project.unlabeled]


def test_accept_takes_the_llm_set_and_none_of_them_is_a_set(client, project):
    store = project.store
    cid = next(c for c in plain(project) if len(project.llm[c]) == 2)
    r = label(client, cid, "accept")
    assert r.status_code == 200
    assert r.json()["labels"] == project.llm[cid] and r.json()["state"] == "submitted"
    assert human(store, cid) == (encode_set(project.llm[cid], ML_CLASSES), "ok")
    empty = next(c for c in plain(project) if project.llm[c] == [])
    assert label(client, empty, "accept").json()["labels"] == []
    assert human(store, empty) == ("[]", "ok")  # "none of them" is an answer, not a missing label


def test_correct_saves_the_set_in_class_order_then_none_then_discard_and_undo_each(client, project):
    store, cid = project.store, plain(project)[0]
    r = label(client, cid, "correct", labels=["tech", "business", "tech"])
    assert r.status_code == 200 and r.json()["labels"] == ["business", "tech"]
    assert human(store, cid) == ('["business", "tech"]', "ok")
    r = label(client, cid, "correct", labels=[])
    assert r.json()["state"] == "submitted" and r.json()["labels"] == []
    assert human(store, cid) == ("[]", "ok")
    r = label(client, cid, "discard")
    assert r.json()["state"] == "discarded" and r.json()["labels"] is None
    assert human(store, cid) == (None, "discarded")
    reviews = store.reviews()
    assert [(rv.action, rv.label) for rv in reviews] == [
        ("correct", '["business", "tech"]'), ("correct", "[]"), ("discard", None)]
    assert reviews[2].previous == {"label": "[]", "status": "ok"}
    undone = client.post("/api/undo", json={"reviewer": "ana"}).json()["outcomes"][0]
    assert undone["labels"] == [] and undone["state"] == "submitted"
    client.post("/api/undo", json={"reviewer": "ana"})
    assert human(store, cid) == ('["business", "tech"]', "ok")
    assert client.post("/api/undo", json={"reviewer": "ana"}).json()["outcomes"][0]["state"] == "pending"
    assert human(store, cid) is None


def test_bad_corrections_name_the_value_and_the_fix(client, project):
    cid = plain(project)[0]
    r = label(client, cid, "correct", label="tech")
    assert r.status_code == 400 and "needs `labels`" in r.json()["error"] and "[] for none" in r.json()["error"]
    r = label(client, cid, "correct", labels="tech")
    assert r.status_code == 400 and "'tech'" in r.json()["error"] and "list of class names" in r.json()["error"]
    r = label(client, cid, "correct", labels=["tech", "weather"])
    assert r.status_code == 400 and "['weather']" in r.json()["error"] and str(ML_CLASSES) in r.json()["error"]
    assert human(project.store, cid) is None
    store = project.store
    store.add_document("lonely.txt", "h", 3, [NewChunk(text="A lonely chunk.", source="lonely.txt", position=0)])
    lonely = store.chunks()[-1].id
    store.assign_split([lonely], "train")
    store.set_label(lonely, "llm-small", None, status="unlabeled", reason="timeout")
    r = label(client, lonely, "accept")
    assert r.status_code == 409 and "no suggestion" in r.json()["error"] and "none of them" in r.json()["error"]
    assert label(client, lonely, "correct", labels=["sports"]).json()["labels"] == ["sports"]


def test_unlabeled_llm_reply_suggests_the_students_set(client, project):
    cid = sorted(project.unlabeled)[0]
    rec = client.get(f"/api/records/{cid}").json()
    assert rec["suggestion_source"] == "student" and rec["suggestion_labels"] == project.student[cid]
    card = _card(client, cid)
    assert re.search(r'data-role="save"[^>]*>Accept student: “', card)  # the button says whose set it takes
    assert label(client, cid, "accept").json()["labels"] == project.student[cid]
    assert client.get(f"/api/records/{cid}").json()["human_from_student"] is True
    assert "accepted from the student" in _card(client, cid, "submitted")


def _card(client, cid: int, queue: str = "pending") -> str:
    """The HTML of one record's card in a queue, whatever its page."""
    for page in range(1, 100):
        text = client.get(f"/queue/{queue}?page={page}").text
        start = text.find(f'id="record-{cid}"')
        if start >= 0:
            return text[start:text.index("</article>", start)]
        if "next-page" not in text:
            raise AssertionError(f"record {cid} is not in the {queue} queue")
    raise AssertionError("too many pages")


def test_api_shows_every_label_with_llm_student_and_threshold(client, project):
    cid = next(iter(project.flipped))
    rec = client.get(f"/api/records/{cid}").json()
    assert rec["multi_label"] is True
    assert rec["llm"]["labels"] == project.llm[cid] and rec["student"]["labels"] == project.student[cid]
    assert [row["label"] for row in rec["per_label"]] == ML_CLASSES
    assert [row["key"] for row in rec["per_label"]] == [1, 2, 3, 4]
    for row in rec["per_label"]:
        c = row["label"]
        assert row["llm"] == (c in project.llm[cid]) and row["student"] == (c in project.student[cid])
        assert row["student_prob"] == project.student_probs[cid][c] and row["threshold"] == THRESHOLDS[c]
        assert row["disagree"] == (c == project.flipped[cid])
    assert rec["human"] is None
    label(client, cid, "correct", labels=project.truth[cid])
    after = client.get(f"/api/records/{cid}").json()
    assert after["human"]["labels"] == project.truth[cid]
    assert [row["human"] for row in after["per_label"]] == [c in project.truth[cid] for c in ML_CLASSES]
    session = client.get("/api/session").json()
    assert session["multi_label"] is True and session["thresholds"] == THRESHOLDS


def test_page_shows_toggles_probabilities_and_thresholds(client, project):
    cid = next(iter(project.flipped))
    page = client.get("/queue/disagreements").text
    assert 'data-multi-label="1"' in page and 'id="classes-data">' + json.dumps(ML_CLASSES) in page
    card = page[page.index(f'id="record-{cid}"'):]
    card = card[:card.index("</article>")]
    for i, c in enumerate(ML_CLASSES, start=1):
        pressed = "true" if c in project.llm[cid] else "false"  # the page starts from the suggestion
        assert re.search(rf'class="toggle[^"]*" data-action="toggle" data-label="{c}" aria-pressed="{pressed}">'
                         rf'<span class="box" aria-hidden="true"></span><kbd>{i}</kbd> {c}</button>', card), c
        prob = project.student_probs[cid][c]
        assert f'data-p="{prob}" data-t="{THRESHOLDS[c]}"' in card
        assert f"· t {THRESHOLDS[c]:.2f}" in card
    wrong = project.flipped[cid]
    assert re.search(rf'<tr class="disagree" data-label="{wrong}">', card)
    assert card.count('<tr class="disagree"') == 1
    assert 'data-action="none">None of them <kbd>0</kbd>' in card and 'data-action="discard"' in card
    assert 'class="classbtn' not in page  # no single-class buttons: labels are toggled
    assert "Pending: LLM says" in page and "Student vs LLM, by label" in page and "Pending by class" not in page
    assert "<kbd>0</kbd></td><td>none of them" in page  # the keys dialog
    assert "&lt;script&gt;window.__xss" in client.get("/queue/pending?cls=business").text
    assert client.get(f"/api/records/{project.xss_id}").json()["text"] == XSS_TEXT


def test_every_queue_renders_with_its_count(client, project):
    counts = client.get("/api/counts").json()["queues"]
    assert list(counts) == [q.name for q in queues.MULTI_QUEUES] and "uncertain" in counts
    for q in counts:
        page = client.get(f"/queue/{q}")
        assert page.status_code == 200, q
        assert re.search(rf'data-queue="{q}">{counts[q]}<', page.text), q
        assert page.text.count('class="record ') == min(counts[q], queues.PAGE_SIZE), q
    assert counts["pending"] == len(project.truth)
    for path in ("/progress", "/rules", "/api/queue/uncertain"):
        assert client.get(path).status_code == 200, path


def test_per_label_queues_and_counts(client, project):
    data = client.get("/api/counts").json()
    expected = {c: sum(c in (project.llm[i] if project.llm[i] is not None else project.student[i])
                       for i in project.truth) for c in ML_CLASSES}
    assert data["classes"] == expected
    wrong = [w for w in project.flipped.values()]
    assert data["disagreements_by_label"] == {c: wrong.count(c) for c in ML_CLASSES}
    for c in ML_CLASSES:
        says = client.get(f"/api/queue/pending?cls={c}").json()["records"]
        assert len(says) == expected[c] and all(c in r["suggestion_labels"] for r in says)
        differ = {r["id"] for r in client.get(f"/api/queue/disagreements?cls={c}").json()["records"]}
        assert differ == {cid for cid, w in project.flipped.items() if w == c}
    page = client.get("/queue/disagreements?cls=sports").text
    assert "Only records where they differ on “sports”." in page
    assert re.search(r'<a href="/queue/disagreements\?cls=sports" class="on"', page)
    cid = next(cid for cid, w in project.flipped.items() if w == "sports")
    label(client, cid, "correct", labels=project.truth[cid])
    after = client.get("/api/counts").json()
    assert after["disagreements_by_label"]["sports"] == wrong.count("sports") - 1
    assert after["queues"]["pending"] == len(project.truth) - 1


def test_queues_hold_what_they_promise(client, project):
    dis = client.get("/api/queue/disagreements").json()["records"]
    assert {r["id"] for r in dis} == set(project.flipped)
    issues = client.get("/api/queue/label-issues").json()
    assert {r["id"] for r in issues["records"]} == set(project.flipped)
    assert issues["note"] == "ranked by iteration 1's student"
    unsure = client.get("/api/queue/uncertain").json()
    assert unsure["note"] is None  # the round stored its thresholds
    assert {r["id"] for r in unsure["records"]} == set(project.uncertain)
    for r in unsure["records"]:
        near = project.uncertain[r["id"]]
        row = next(x for x in r["per_label"] if x["label"] == near)
        assert abs(row["student_prob"] - row["threshold"]) < multi.NEAR_THRESHOLD
    near_tech = {cid for cid, c in project.uncertain.items() if c == "tech"}
    assert {r["id"] for r in client.get("/api/queue/uncertain?cls=tech").json()["records"]} == near_tech
    low = client.get("/api/queue/low-confidence").json()["records"]
    assert {r["id"] for r in low[:len(project.unlabeled)]} == project.unlabeled  # unreadable replies first
    assert {r["id"] for r in low} == project.unlabeled | set(project.flipped)  # unsure of the wrong label


def test_bulk_accept_a_label_page_stores_each_llm_set(client, project):
    store = project.store
    page = client.get("/api/queue/pending?cls=tech").json()
    ids = [r["id"] for r in page["records"]]
    r = client.post("/api/bulk-accept", json={"chunk_ids": ids, "reviewer": "ana"}).json()
    assert r["accepted"] == len(ids)
    for cid in ids:
        sug = project.llm[cid] if project.llm[cid] is not None else project.student[cid]
        assert human(store, cid) == (encode_set(sug, ML_CLASSES), "ok")
    assert client.get("/api/counts").json()["classes"]["tech"] == 0
    undone = client.post("/api/undo", json={"reviewer": "ana", "count": len(ids)}).json()["outcomes"]
    assert len(undone) == len(ids) and all(human(store, i) is None for i in ids)


def test_progress_counts_exact_sets_and_each_label(client, project):
    kept = plain(project)[0]
    fixed = next(iter(project.flipped))
    label(client, kept, "accept")
    label(client, fixed, "correct", labels=project.truth[fixed])
    p = client.get("/api/counts").json()["progress"]
    assert (p["reviewed"], p["compared"], p["agreed"]) == (2, 2, 1)
    rows = {row["class"]: row for row in p["by_class"]}
    assert list(rows) == [*ML_CLASSES, multi.NONE_OF_THEM]
    wrong = project.flipped[fixed]
    if wrong in project.truth[fixed]:  # the LLM missed it: recall suffers
        assert rows[wrong]["kept"] >= 1 and rows[wrong]["llm_agree"] == rows[wrong]["kept"] - 1
    else:  # the LLM added it: precision suffers
        assert rows[wrong]["llm_said"] >= 1 and rows[wrong]["llm_said_agree"] == rows[wrong]["llm_said"] - 1
    for c in project.truth[kept]:
        assert rows[c]["llm_agree"] >= 1 and rows[c]["recall"] is not None
    page = client.get("/progress").text
    assert "exact label set on 1 of 2" in page and "Reviewed with label" in page


def test_without_thresholds_the_app_shows_none_and_says_so(tmp_path):
    project = make_multilabel_project(tmp_path, thresholds=None)
    with _client(project.store) as c:
        rec = c.get(f"/api/records/{sorted(project.truth)[0]}").json()
        assert all(row["threshold"] is None for row in rec["per_label"])
        page = c.get("/queue/pending").text
        assert "data-t=" not in page and "· t " not in page
        note = c.get("/api/queue/uncertain").json()["note"]
        assert "no per-label thresholds" in note and "0.5" in note
        assert c.get("/api/session").json()["thresholds"] == {}


def test_a_single_label_project_keeps_its_queues_and_api(tmp_path):
    project = make_project(tmp_path)
    with _client(project.store) as c:
        assert "multi_label" not in c.get("/api/session").json()
        counts = c.get("/api/counts").json()
        assert list(counts) == ["queues", "classes", "progress"] and list(counts["queues"]) == queues.QUEUE_NAMES
        assert c.get("/queue/uncertain").status_code == 404
        page = c.get("/queue/pending").text
        assert "data-multi-label" not in page and 'class="toggle' not in page and "Pending by class" in page
        cid = sorted(project.truth)[0]
        out = c.post("/api/label", json={"chunk_id": cid, "action": "correct", "label": "tech"}).json()
        assert "labels" not in out and human(project.store, cid) == ("tech", "ok")


def test_label_sets_read_back_from_the_store(project):
    """The encoded sets the app writes are the labels the rest of labelloop reads (labels.decode_set)."""
    with _client(project.store) as c:
        cid = plain(project)[1]
        label(c, cid, "correct", labels=["sports", "politics"])
    assert decode_set(human(project.store, cid)[0]) == ["politics", "sports"]


def test_the_mode_is_the_runs_classification_multi_label(project):
    store = project.store
    assert multi_label_of(store) is True
    store.set_meta("multi_label", None)  # an older project file: the student-input contract still says so
    assert multi_label_of(store) is True
    store.set_meta("multi_label", False)
    assert multi_label_of(store) is False
