"""In-process tests of every review route (Starlette TestClient over the ASGI app)."""

from __future__ import annotations

import re

import pytest
from starlette.testclient import TestClient

from labelloop.errors import LabelloopError, StoreError
from labelloop.review import queues
from labelloop.review.app import create_app, serve
from labelloop.review.highlight import Segment, split_by_spans
from labelloop.review.records import load
from labelloop.store import NewChunk
from tests.helpers.review_project import CLASSES, RULES_TEXT, XSS_TEXT, make_project

pytestmark = pytest.mark.unit

BASE = "http://127.0.0.1:8420"


@pytest.fixture()
def project(tmp_path):
    return make_project(tmp_path)


@pytest.fixture()
def client(project):
    app = create_app(project.store)
    with TestClient(app, base_url=BASE) as c:
        c.headers["X-CSRF-Token"] = app.state.csrf_token
        yield c


def human(store, cid):
    labs = store.labels("human", chunk_ids=[cid])
    return (labs[0].label, labs[0].status) if labs else None


def test_pages_render_with_counts(client, project):
    r = client.get("/", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/queue/pending"
    counts = client.get("/api/counts").json()["queues"]
    for q in queues.QUEUE_NAMES:
        page = client.get(f"/queue/{q}")
        assert page.status_code == 200, q
        assert re.search(rf'data-queue="{q}">{counts[q]}<', page.text), q
        assert page.text.count('class="record ') == min(counts[q], queues.PAGE_SIZE)
    assert counts["pending"] == len(project.truth)
    assert counts["disagreements"] > 0 and counts["low-confidence"] > 0
    page2 = client.get("/queue/pending?page=2")
    assert page2.text.count('class="record ') == len(project.truth) - queues.PAGE_SIZE
    sports = client.get("/queue/pending?cls=sports")
    n_sports = client.get("/api/counts").json()["classes"]["sports"]
    assert sports.text.count('class="record ') == min(n_sports, queues.PAGE_SIZE)
    for path in ("/rules", "/progress", "/static/review.js", "/static/review.css"):
        assert client.get(path).status_code == 200, path
    # The student sees 48 tokens (meta student_max_tokens); the rest of a long text is marked.
    assert '<mark class="cut"' in client.get("/queue/pending").text
    missing = client.get("/queue/nope")
    assert missing.status_code == 404 and "unknown queue" in missing.text


def test_untrusted_text_is_escaped_everywhere(client, project):
    page = client.get("/queue/pending?page=1&cls=business").text + client.get("/queue/pending?page=2").text
    assert "&lt;script&gt;window.__xss" in page
    assert "<script>window.__xss" not in page and 'onerror="window' not in page
    assert "inbox/&lt;img src=x onerror=alert(3)&gt;.txt" in page
    rules = client.get("/rules")
    assert "&lt;script&gt;alert(&#34;rules&#34;)&lt;/script&gt;" in rules.text
    assert '<script>alert("rules")' not in rules.text
    assert "script-src 'self'" in rules.headers["content-security-policy"]
    assert rules.headers["x-frame-options"] == "DENY"
    record = client.get(f"/api/records/{project.xss_id}").json()
    assert record["text"] == XSS_TEXT  # the API hands back data; the page's JS uses textContent


def test_accept_correct_discard_then_undo_each(client, project):
    store, cid = project.store, sorted(project.truth)[0]
    suggestion = load(store, [cid]).by_id[cid].suggestion[0]
    body = {"chunk_id": cid, "reviewer": "ana"}
    r = client.post("/api/label", json={**body, "action": "accept"})
    assert r.status_code == 200 and r.json()["label"] == suggestion and r.json()["state"] == "submitted"
    other = next(c for c in CLASSES if c != suggestion)
    assert client.post("/api/label", json={**body, "action": "correct", "label": other}).json()["label"] == other
    assert human(store, cid) == (other, "ok")
    assert client.post("/api/label", json={**body, "action": "discard"}).json()["state"] == "discarded"
    assert human(store, cid) == (None, "discarded")
    reviews = store.reviews()
    assert [r.action for r in reviews] == ["accept", "correct", "discard"]
    assert reviews[0].previous is None and reviews[1].previous == {"label": suggestion, "status": "ok"}
    assert reviews[2].previous == {"label": other, "status": "ok"} and reviews[2].reviewer == "ana"
    assert client.post("/api/undo", json={"reviewer": "ana"}).json()["outcomes"][0]["state"] == "submitted"
    assert human(store, cid) == (other, "ok")
    client.post("/api/undo", json={"reviewer": "ana"})
    assert human(store, cid) == (suggestion, "ok")
    client.post("/api/undo", json={"reviewer": "ana"})
    assert human(store, cid) is None
    assert client.post("/api/undo", json={"reviewer": "ana"}).json()["outcomes"] == []
    assert [r.action for r in store.reviews()].count("undo") == 3


def test_undo_only_undoes_my_actions_and_keeps_a_later_save(client, project):
    store, cid = project.store, sorted(project.truth)[1]
    client.post("/api/label", json={"chunk_id": cid, "action": "correct", "label": "tech", "reviewer": "ana"})
    client.post("/api/label", json={"chunk_id": cid, "action": "correct", "label": "sports", "reviewer": "ben"})
    out = client.post("/api/undo", json={"reviewer": "ana"}).json()["outcomes"]
    assert out[0]["message"] and "someone else" in out[0]["message"]
    assert human(store, cid) == ("sports", "ok")  # ben's later save wins, ana's undo does not erase it
    client.post("/api/undo", json={"reviewer": "ben"})
    assert human(store, cid) == ("tech", "ok")


def test_bulk_accept_a_filtered_page_and_undo_it(client, project):
    store = project.store
    page = client.get("/api/queue/pending?cls=tech").json()
    ids = [r["id"] for r in page["records"]]
    assert ids and all(r["suggestion"] == "tech" for r in page["records"])
    r = client.post("/api/bulk-accept", json={"chunk_ids": ids, "reviewer": "ana"})
    assert r.status_code == 200 and r.json()["accepted"] == len(ids)
    assert all(human(store, i) == ("tech", "ok") for i in ids)
    assert client.get("/api/counts").json()["classes"]["tech"] == 0
    again = client.post("/api/bulk-accept", json={"chunk_ids": ids[:2], "reviewer": "ana"}).json()
    assert again["accepted"] == 0 and all("already submitted" in o["message"] for o in again["outcomes"])
    undone = client.post("/api/undo", json={"reviewer": "ana", "count": len(ids)}).json()["outcomes"]
    assert sorted(o["chunk_id"] for o in undone) == sorted(ids)
    assert all(human(store, i) is None for i in ids)


def test_queues_hold_what_they_promise(client, project):
    dis = client.get("/api/queue/disagreements").json()["records"]
    assert dis and all(r["student"]["label"] != r["llm"]["label"] for r in dis)
    confs = [r["student"]["confidence"] for r in dis]
    assert confs == sorted(confs, reverse=True)
    issues = client.get("/api/queue/label-issues").json()
    assert issues["note"] == "ranked by iteration 1's student"  # the loop's stored ranking, read as is
    flagged = {r["id"] for r in issues["records"]}
    assert project.flipped <= flagged  # every deliberately wrong LLM label is found
    assert len(flagged) < len(project.truth) / 2
    low = client.get("/api/queue/low-confidence").json()["records"]
    assert {r["id"] for r in low[:len(project.unlabeled)]} == project.unlabeled
    assert all(r["llm"]["confidence"] is None or r["llm"]["confidence"] < queues.LOW_CONFIDENCE for r in low)
    cid = dis[0]["id"]
    client.post("/api/label", json={"chunk_id": cid, "action": "discard"})
    counts = client.get("/api/counts").json()["queues"]
    assert counts["discarded"] == 1 and counts["disagreements"] == len(dis) - 1
    assert [r["id"] for r in client.get("/api/queue/discarded").json()["records"]] == [cid]
    assert client.get("/api/queue/nope").status_code == 404


def test_progress_reports_agreement_by_class(client, project):
    flipped = sorted(project.flipped)[0]
    right = next(c for c in sorted(project.truth) if c not in project.flipped | project.unlabeled
                 and c != project.xss_id)
    client.post("/api/label", json={"chunk_id": flipped, "action": "correct", "label": project.truth[flipped]})
    client.post("/api/label", json={"chunk_id": right, "action": "accept"})
    p = client.get("/api/counts").json()["progress"]
    assert (p["reviewed"], p["total"], p["compared"], p["agreed"]) == (2, len(project.truth), 2, 1)
    assert p["agreement"] == 0.5
    row = {r["class"]: r for r in p["by_class"]}[project.truth[flipped]]
    assert row["kept"] >= 1 and row["recall"] is not None and row["recall"] < 1
    page = client.get("/progress").text
    assert "50%" in page and "2 of 37 records reviewed" in page


def test_rules_are_shown_and_edited_as_a_new_version(client, project):
    app_csrf = client.headers["X-CSRF-Token"]
    assert client.get("/api/rules").json()["version"] == 1
    form = {"text": "Sports beats business when both fit.", "csrf_token": app_csrf}
    del client.headers["X-CSRF-Token"]
    r = client.post("/rules", data=form, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/rules?saved=2"
    latest = project.store.rules()
    assert (latest.version, latest.author, latest.text) == (2, "human", form["text"])
    assert client.post("/rules", data={"text": "x"}, follow_redirects=False).status_code == 403
    empty = client.post("/rules", data={"text": "  ", "csrf_token": app_csrf})
    assert empty.status_code == 400 and "empty" in empty.text
    client.headers["X-CSRF-Token"] = app_csrf
    assert client.post("/api/rules", json={"text": RULES_TEXT + "\nMore."}).json()["version"] == 3
    assert client.post("/api/rules", json={"text": RULES_TEXT + "\nMore."}).json()["version"] == 3
    assert "Saved as version 3" in client.get("/rules?saved=3").text


def test_writes_need_the_csrf_token_and_same_origin(client, project):
    cid = sorted(project.truth)[0]
    body = {"chunk_id": cid, "action": "accept"}
    csrf = client.headers.pop("X-CSRF-Token")
    assert client.post("/api/label", json=body).status_code == 403
    assert client.post("/api/label", json=body, headers={"X-CSRF-Token": "wrong"}).status_code == 403
    evil = client.post("/api/label", json=body, headers={"X-CSRF-Token": csrf, "Origin": "http://evil.example"})
    assert evil.status_code == 403 and "Origin" in evil.json()["error"]
    site = client.post("/api/label", json=body, headers={"X-CSRF-Token": csrf, "Sec-Fetch-Site": "cross-site"})
    assert site.status_code == 403
    assert human(project.store, cid) is None
    ok = client.post("/api/label", json=body, headers={"X-CSRF-Token": csrf, "Origin": BASE,
                                                       "Sec-Fetch-Site": "same-origin"})
    assert ok.status_code == 200
    assert client.get("/api/session").json()["csrf_token"] == csrf


def test_without_a_token_only_loopback_host_names_are_served(project):
    with TestClient(create_app(project.store), base_url="http://evil.example:8420") as c:
        r = c.get("/queue/pending")
        assert r.status_code == 400 and "not allowed" in r.text
    with TestClient(create_app(project.store), base_url="http://localhost:8420") as c:
        assert c.get("/queue/pending").status_code == 200


def test_token_is_checked_on_every_request(project):
    app = create_app(project.store, token="s3cret-token")
    with TestClient(app, base_url="http://192.168.1.20:8420") as c:
        for path in ("/queue/pending", "/api/counts", "/static/review.js", "/rules"):
            r = c.get(path)
            assert r.status_code == 401 and "token" in r.text, path
        assert c.get("/api/counts", params={"token": "wrong"}).status_code == 401
        assert c.get("/api/counts", headers={"Authorization": "Bearer nope"}).status_code == 401
        assert c.get("/api/counts", headers={"Authorization": "Bearer s3cret-token"}).status_code == 200
        # A bearer request is not a browser form: no CSRF token needed.
        cid = sorted(project.truth)[0]
        r = c.post("/api/label", json={"chunk_id": cid, "action": "accept"},
                   headers={"Authorization": "Bearer s3cret-token"})
        assert r.status_code == 200
        r = c.get("/queue/pending?token=s3cret-token&page=2", follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/queue/pending?page=2"
        cookie = r.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie
        assert c.get("/queue/pending").status_code == 200  # the cookie now carries it
        # the cookie alone does not make a write: a browser write still needs the CSRF token
        assert c.post("/api/label", json={"chunk_id": cid, "action": "discard"}).status_code == 403
        r = c.post("/api/label", json={"chunk_id": cid, "action": "discard"},
                   headers={"X-CSRF-Token": app.state.csrf_token})
        assert r.status_code == 200


def test_bad_requests_get_clear_errors_not_500(client, project):
    cid = sorted(project.truth)[0]
    r = client.post("/api/label", content=b"{not json", headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and "JSON" in r.json()["error"]
    assert client.post("/api/label", json=[1, 2]).status_code == 400
    assert "chunk_id" in client.post("/api/label", json={"action": "accept"}).json()["error"]
    r = client.post("/api/label", json={"chunk_id": cid, "action": "explode"})
    assert r.status_code == 400 and "accept" in r.json()["error"]
    r = client.post("/api/label", json={"chunk_id": cid, "action": "correct", "label": "weather"})
    assert r.status_code == 400 and "weather" in r.json()["error"]
    assert client.post("/api/label", json={"chunk_id": 99999, "action": "accept"}).status_code == 404
    assert client.post("/api/bulk-accept", json={"chunk_ids": "all"}).status_code == 400
    assert client.post("/api/undo", json={"count": 0}).status_code == 400
    assert client.get("/api/records/99999").status_code == 404
    lonely_chunk = NewChunk(text="A lonely chunk.", source="lonely.txt", position=0)
    project.store.add_document("lonely.txt", "h", 3, [lonely_chunk])
    lonely = project.store.chunks()[-1].id
    project.store.assign_split([lonely], "train")
    project.store.set_label(lonely, "llm-small", None, status="unlabeled", reason="timeout")
    r = client.post("/api/label", json={"chunk_id": lonely, "action": "accept"})
    assert r.status_code == 409 and "no suggestion" in r.json()["error"]
    assert client.post("/api/label", json={"chunk_id": lonely, "action": "correct", "label": "tech"}).status_code == 200


def test_serve_refuses_a_public_host_without_a_token(tmp_path, monkeypatch):
    monkeypatch.delenv("LABELLOOP_REVIEW_TOKEN", raising=False)
    with pytest.raises(LabelloopError, match="--token"):
        serve(tmp_path, host="0.0.0.0", port=1)
    with pytest.raises(StoreError, match="no project file"):
        serve(tmp_path / "missing", host="127.0.0.1", port=1)


def test_truncation_spans_become_cut_segments():
    text = "kept part and the cut tail"
    assert split_by_spans(text, [(0, 9)]) == [Segment("kept part"), Segment(" and the cut tail", kept=False)]
    assert split_by_spans(text, [(0, 4), (22, 26)]) == [
        Segment("kept"), Segment(" part and the cut ", kept=False), Segment("tail")]
    assert split_by_spans(text, []) == [Segment(text, kept=False)]
