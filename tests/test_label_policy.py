"""Which label counts, everywhere (labelloop.labels): evaluation, the end-of-run files, Accept, the counts.

Each test here failed while a module answered the question on its own (issue 24, section 1).
"""

from __future__ import annotations

import io
import re

import numpy as np
import pytest
import yaml
from starlette.testclient import TestClient

from labelloop import labels as policy
from labelloop.config import parse_config
from labelloop.loop import outputs, scoring
from labelloop.loop.finish import _write_truth, chunks_to_predict
from labelloop.loop.label_errors import Flags, rank_test
from labelloop.loop.training import round_data
from labelloop.review.actions import apply, undo
from labelloop.review.app import create_app
from labelloop.store import NewChunk, Store

pytestmark = pytest.mark.unit
CLASSES = ["business", "sports"]
BASE = "http://127.0.0.1:8420"


def config(tmp_path):
    (tmp_path / "in").mkdir(exist_ok=True)
    return parse_config({"classification": {"classes": CLASSES, "desc": "News by topic."},
                         "path": {"input_dir": "in", "output_dir": "out"}}, base_dir=tmp_path)


def project(tmp_path, n_test: int = 4, n_train: int = 4):
    """Test chunks the large model calls business, train chunks the small model calls sports."""
    store = Store(tmp_path / "labelloop.db")
    store.add_document("d", "0" * 64, None, [NewChunk(f"text {i}", "d", i) for i in range(n_test + n_train)])
    ids = [c.id for c in store.chunks()]
    test, train = ids[:n_test], ids[n_test:]
    store.assign_split(test, "test", iteration=0)
    store.assign_split(train, "train", iteration=1)
    for cid in test:
        store.set_label(cid, policy.LARGE, "business", confidence=0.9, rules_version=1)
    for cid in train:
        store.set_label(cid, policy.SMALL, "sports", confidence=0.8, rules_version=1)
    store.set_meta("classes", CLASSES)
    return store, test, train


# ------------------------------------------------------------------ evaluation


def test_a_discarded_test_chunk_leaves_the_evaluation(tmp_path):
    store, test, _train = project(tmp_path)
    apply(store, test[0], "discard", reviewer="ana")
    data = round_data(store, 1)
    assert [c.id for c in data.test] == test[1:]
    metrics = scoring.score(config(tmp_path), data.test_labels, ["business"] * len(data.test))
    assert metrics.n == 3 and metrics.accuracy == 1.0
    assert data.gold == []  # a discard is no gold label


def test_a_corrected_test_chunk_is_scored_against_the_persons_label(tmp_path):
    store, test, _train = project(tmp_path)
    apply(store, test[0], "correct", "sports", reviewer="ana")
    data = round_data(store, 1)
    assert [c.id for c in data.test] == test
    assert data.test_labels == ["sports", "business", "business", "business"]
    assert data.test_sources == [policy.HUMAN, policy.LARGE, policy.LARGE, policy.LARGE]
    # A student that predicts what the person said is right everywhere, though the large model disagrees.
    person = {test[0]: "sports"}
    predicted = [person.get(c.id, "business") for c in data.test]
    assert scoring.score(config(tmp_path), data.test_labels, predicted).accuracy == 1.0
    # Gold accuracy still uses people's labels alone.
    assert [c.id for c in data.gold] == [test[0]] and data.gold_labels == ["sports"]


def test_a_persons_test_label_is_never_ranked_as_a_label_error():
    """The student's held-out probabilities contradict two test labels; only the large model's is flagged."""
    rng = np.random.default_rng(0)
    train_labels = ["business", "sports"] * 15
    train_probs = np.array([[0.95, 0.05] if lab == "business" else [0.05, 0.95] for lab in train_labels])
    train_probs = np.clip(train_probs + rng.normal(0, 0.01, train_probs.shape), 0.01, 0.99)
    train = (list(range(100, 130)), train_labels, train_probs)
    test = ([1, 2, 3], ["business", "business", "sports"], np.array([[0.02, 0.98], [0.02, 0.98], [0.05, 0.95]]))
    everything = Flags()
    rank_test(everything, train, test, CLASSES)
    assert set(everything.test_flagged) == {1, 2}  # both contradicted labels, without knowing who gave them
    flags = Flags()
    rank_test(flags, train, test, CLASSES, [policy.HUMAN, policy.LARGE, policy.LARGE])
    assert flags.test_flagged == [2]


# ------------------------------------------------------------------ the end-of-run files


def test_the_truth_file_gives_the_label_that_counts(tmp_path):
    store, test, _train = project(tmp_path)
    apply(store, test[0], "correct", "sports", reviewer="ana")
    apply(store, test[1], "discard", reviewer="ana")
    store.set_label(test[2], policy.LARGE, None, status=policy.UNLABELED, raw="no idea")
    cfg = config(tmp_path)
    _write_truth(cfg, store, cfg.output_dir)
    rows = {r["chunk_id"]: r for r in yaml.safe_load(outputs.truth_path(cfg.output_dir).read_text())}
    got = {cid: (r["label"], r["label_source"], r["status"], r["llm_label"], r["human_label"])
           for cid, r in rows.items()}
    assert got == {
        test[0]: ("sports", policy.HUMAN, policy.OK, "business", "sports"),
        test[1]: (None, None, policy.DISCARDED, "business", None),
        test[2]: (None, None, policy.UNLABELED, None, None),
        test[3]: ("business", policy.LARGE, policy.OK, "business", None),
    }
    assert rows[test[2]]["raw"] == "no idea"


def test_predictions_cover_the_chunks_without_a_label(tmp_path):
    """Not a chunk a person labeled or discarded; yes a chunk whose only LLM reply could not be read."""
    store, _test, train = project(tmp_path, n_test=0, n_train=2)
    store.add_document("e", "1" * 64, None, [NewChunk(f"more {i}", "e", i) for i in range(4)])
    unread, accepted, discarded, fresh = [c.id for c in store.chunks()][2:]
    store.set_label(unread, policy.SMALL, None, status=policy.UNLABELED)
    store.set_label(accepted, policy.STUDENT, "business", confidence=0.7)
    store.assign_split([accepted, discarded], "train", iteration=1)
    apply(store, accepted, "accept", reviewer="ana")
    apply(store, discarded, "discard", reviewer="ana")
    store.set_label(train[0], policy.HUMAN, "business")
    assert [c.id for c in chunks_to_predict(store)] == [unread, fresh]


# ------------------------------------------------------------------ Accept of the student's prediction


@pytest.fixture()
def review(tmp_path):
    store, test, train = project(tmp_path, n_test=1, n_train=2)
    no_llm = train[0]
    store.set_label(no_llm, policy.SMALL, None, status=policy.UNLABELED, raw="?")
    store.set_label(no_llm, policy.STUDENT, "business", confidence=0.8,
                    probs={"business": 0.8, "sports": 0.2})
    app = create_app(store)
    with TestClient(app, base_url=BASE) as client:
        client.headers["X-CSRF-Token"] = app.state.csrf_token
        yield store, client, no_llm, train[1]


def test_accepting_the_students_prediction_says_so_and_is_recorded(review):
    store, client, no_llm, llm_labeled = review
    page = client.get("/queue/pending").text
    buttons = sorted(t.strip() for t in re.findall(r'data-action="accept"[^>]*>([^<]*)<kbd>', page))
    # the chunk without an LLM label offers the student's prediction, and says so; the others their LLM label
    assert buttons == ["Accept student: “business”", "Accept “business”", "Accept “sports”"]
    out = client.post("/api/label", json={"chunk_id": no_llm, "action": "accept", "reviewer": "ana"}).json()
    assert (out["label"], out["state"]) == ("business", "submitted")
    (lab,) = store.labels(policy.HUMAN, chunk_ids=[no_llm])
    assert policy.began_as_student(lab) and lab.reason == policy.ACCEPTED_STUDENT
    assert store.final_labels()[no_llm].source == policy.HUMAN  # a person decided: it counts
    assert client.get(f"/api/records/{no_llm}").json()["human_from_student"] is True
    assert "accepted from the student" in client.get("/queue/submitted").text
    client.post("/api/label", json={"chunk_id": llm_labeled, "action": "accept", "reviewer": "ana"})
    (other,) = store.labels(policy.HUMAN, chunk_ids=[llm_labeled])
    assert other.label == "sports" and not policy.began_as_student(other)


def test_a_correction_clears_the_student_origin_and_undo_restores_it(review):
    store, _client, no_llm, _llm_labeled = review
    apply(store, no_llm, "accept", reviewer="ana")
    apply(store, no_llm, "correct", "sports", reviewer="ana")
    (lab,) = store.labels(policy.HUMAN, chunk_ids=[no_llm])
    assert lab.label == "sports" and not policy.began_as_student(lab)
    undo(store, "ana")
    (lab,) = store.labels(policy.HUMAN, chunk_ids=[no_llm])
    assert lab.label == "business" and policy.began_as_student(lab)


# ------------------------------------------------------------------ labelloop status


def test_status_counts_the_labels_that_count(tmp_path):
    from rich.console import Console

    from labelloop.project.status import counting_summary, render_status

    store, test, train = project(tmp_path)
    apply(store, test[0], "correct", "sports", reviewer="ana")
    apply(store, test[1], "discard", reviewer="ana")
    store.set_label(train[0], policy.SMALL, None, status=policy.UNLABELED)
    store.set_label(train[1], policy.STUDENT, "business", confidence=0.6)
    store.set_label(train[1], policy.SMALL, None, status=policy.UNLABELED)
    apply(store, train[1], "accept", reviewer="ana")
    assert counting_summary(store) == {
        "label from human": 2, "label from llm-large": 2, "label from llm-small": 2,
        "no label (discarded)": 1, "no label (unlabeled)": 1,
        "human labels accepted from the student": 1, "test chunks scored": 3,
    }
    console = Console(file=io.StringIO(), width=200)
    console.print(render_status(store))
    assert re.search(r"human labels accepted from the student\W+1\b", console.file.getvalue())
