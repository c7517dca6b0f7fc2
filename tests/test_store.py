"""The project store: migrations, single write path, typed reads and writes."""

from __future__ import annotations

import sqlite3
import threading

import numpy as np
import pytest

from labelloop.errors import StoreError
from labelloop.store import Dropped, NewChunk, Store, text_hash
from labelloop.store.migrations import LATEST, MIGRATIONS

pytestmark = pytest.mark.unit


def test_blank_database_gets_every_migration(tmp_path):
    store = Store(tmp_path / "labelloop.db")
    assert store.schema_version == LATEST == MIGRATIONS[-1][0]
    tables = {r[0] for r in store._rows("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"chunks", "rules", "llm_calls", "labels", "iterations", "reviews", "documents", "runs"} <= tables
    assert store._rows("PRAGMA journal_mode")[0][0] == "wal"
    assert store.integrity_check() == "ok"


def test_upgrade_from_previous_schema_keeps_data(tmp_path):
    db = tmp_path / "labelloop.db"
    old = Store(db, migrate_to=LATEST - 1)
    assert old.schema_version == LATEST - 1
    old.close()
    with sqlite3.connect(db) as conn:  # rows as the previous labelloop wrote them
        conn.execute("INSERT INTO documents(source, sha256, size, n_chunks, status) VALUES ('a.txt', 'h1', 10, 1, 'ok')")
        conn.execute("INSERT INTO chunks(hash, text, source, position) VALUES ('x', 'hello world', 'a.txt', 0)")
    new = Store(db)
    assert new.schema_version == LATEST
    assert [c.text for c in new.chunks()] == ["hello world"]
    run_id = new.start_run("run cfg.yaml")
    assert new.runs()[0]["id"] == run_id


def test_upgrade_to_chunk_files_lets_a_changed_file_drop_its_stale_chunks(tmp_path):
    db = tmp_path / "labelloop.db"
    Store(db, migrate_to=2).close()
    with sqlite3.connect(db) as conn:
        for source, sha in (("a.jsonl", "h1"), ("b.txt", "h2")):
            conn.execute("INSERT INTO documents(source, sha256, size, n_chunks, status) VALUES (?, ?, 1, 1, 'ok')",
                         (source, sha))
        rows = [(text_hash(t), t, source, 0, count) for t, source, count in (
            ("kept", "a.jsonl#L1", 1), ("stale", "a.jsonl#L2", 1), ("shared", "a.jsonl#L3", 2), ("other", "b.txt", 1))]
        conn.executemany("INSERT INTO chunks(hash, text, source, position, count) VALUES (?, ?, ?, ?, ?)", rows)
    store = Store(db)
    added = store.add_document("a.jsonl", "h3", 1, [NewChunk("kept", "a.jsonl#L1", 0)])
    # 'shared' was also in a file the old schema did not record, so it stays; 'stale' goes.
    assert (added.unchanged, added.dropped.chunks) == (1, 1)
    assert sorted(c.text for c in store.chunks()) == ["kept", "other", "shared"]


def test_newer_schema_is_refused(tmp_path):
    db = tmp_path / "labelloop.db"
    Store(db).close()
    conn = sqlite3.connect(db)
    conn.execute(f"PRAGMA user_version = {LATEST + 5}")
    conn.close()
    with pytest.raises(StoreError, match="upgrade labelloop"):
        Store(db)


def test_missing_project_file_says_what_to_do(tmp_path):
    with pytest.raises(StoreError, match="labelloop run"):
        Store(tmp_path / "nope" / "labelloop.db", create=False)


def test_duplicate_chunks_stored_once_with_count(tmp_path):
    store = Store(tmp_path / "labelloop.db")
    added = store.add_document("a.txt", "h", 1, [NewChunk("same", "a.txt", 0), NewChunk("same", "a.txt", 1)])
    assert (added.new, added.duplicate) == (1, 1)
    added = store.add_document("b.txt", "h2", 1, [NewChunk("same", "b.txt", 0), NewChunk("other", "b.txt", 1)])
    assert (added.new, added.duplicate) == (1, 1)
    chunks = {c.text: c for c in store.chunks()}
    assert chunks["same"].count == 3 and chunks["other"].count == 1
    assert store.counts()["duplicate_chunks"] == 2


def test_final_label_prefers_human_and_drops_discards(tmp_path):
    store = Store(tmp_path / "labelloop.db")
    store.add_document("a", "h", 1, [NewChunk(t, "a", i) for i, t in enumerate(["x", "y", "z", "w"])])
    ids = [c.id for c in store.chunks()]
    store.set_label(ids[0], "llm-small", "pos", confidence=0.9)
    store.set_label(ids[1], "llm-small", "pos")
    store.set_label(ids[1], "human", "neg")
    store.set_label(ids[2], "llm-small", "pos")
    store.set_label(ids[2], "human", None, status="discarded")
    store.set_label(ids[3], "llm-small", None, status="unlabeled", raw="??", reason="no class in reply")
    final = store.final_labels()
    assert {cid: lab.label for cid, lab in final.items()} == {ids[0]: "pos", ids[1]: "neg"}
    assert final[ids[1]].source == "human"
    assert store.counts()["unlabeled"] == 1


def test_label_upsert_keeps_one_label_per_source(tmp_path):
    store = Store(tmp_path / "labelloop.db")
    store.add_document("a", "h", 1, [NewChunk("x", "a", 0)])
    cid = store.chunks()[0].id
    store.set_label(cid, "llm-small", "a", rules_version=1)
    store.set_label(cid, "llm-small", "b", rules_version=2)
    labels = store.labels("llm-small")
    assert len(labels) == 1 and labels[0].label == "b" and labels[0].rules_version == 2


def test_call_log_is_a_cache_and_counts_faults(tmp_path):
    store = Store(tmp_path / "labelloop.db")
    assert store.cached_call("k") is None
    store.log_call("k", "api x", {"q": 1}, None, status="error", error="boom", faults={"http_500": 3})
    assert store.cached_call("k") is None  # failures are logged, never served from cache
    store.log_call("k", "api x", {"q": 1}, {"a": 2}, prompt_tokens=5, completion_tokens=1, cost=0.01,
                   faults={"http_429": 1})
    hit = store.cached_call("k")
    assert hit is not None and hit.response == {"a": 2}
    stats = store.call_stats()
    assert stats["calls"] == 2 and stats["ok"] == 1 and stats["errors"] == 1
    assert stats["faults"] == {"http_500": 3, "http_429": 1}
    assert stats["prompt_tokens"] == 5 and abs(stats["cost"] - 0.01) < 1e-9


def test_rules_are_versioned(tmp_path):
    store = Store(tmp_path / "labelloop.db")
    assert store.rules() is None
    store.add_rules("1. be nice", author="llm-large", model="m")
    r2 = store.add_rules("1. be nicer", author="human")
    assert r2.version == 2 and store.rules().text == "1. be nicer" and store.rules(1).author == "llm-large"


def test_embeddings_round_trip(tmp_path):
    store = Store(tmp_path / "labelloop.db")
    vec = np.arange(4, dtype=np.float32)
    store.put_embeddings({"a": vec})
    got = store.get_embeddings(["a", "missing"])
    assert list(got) == ["a"] and np.array_equal(got["a"], vec)


def test_concurrent_writers_lose_nothing(tmp_path):
    db = tmp_path / "labelloop.db"
    store = Store(db)
    store.add_document("a", "h", 1, [NewChunk(f"t{i}", "a", i) for i in range(50)])
    ids = [c.id for c in store.chunks()]
    errors: list[BaseException] = []

    def writer(source: str) -> None:
        try:
            own = Store(db)  # its own connection, as a second process would have
            for cid in ids:
                own.set_label(cid, source, "x")
                own.add_review(cid, "accept", "x", None)
        except BaseException as exc:  # pragma: no cover - the assertion below reports it
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(s,)) for s in ("llm-small", "human", "student")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(store.labels()) == 150 and len(store.reviews()) == 150


def test_a_new_reading_of_a_file_replaces_the_old_one(tmp_path):
    store = Store(tmp_path / "labelloop.db")
    store.add_document("a", "h1", 1, [NewChunk(t, "a", i) for i, t in enumerate(["x", "y", "x"])])
    store.add_document("b", "h2", 1, [NewChunk("y", "b", 0)])
    x, y = (c.id for c in store.chunks())
    store.set_label(x, "human", "pos")
    store.set_label(y, "llm-large", "neg")
    # a killed pass left part of its chunks; the next pass of the same file counts them once
    store.add_document("a", "incomplete:h3", 1, [NewChunk("x", "a", 0), NewChunk("z", "a", 1)],
                       status="incomplete", ingest_pass="killed", last_part=False)
    added = store.add_document("a", "h3", 1, [NewChunk("x", "a", 0), NewChunk("z", "a", 1)], ingest_pass="p2")
    assert (added.new, added.duplicate, added.unchanged, added.dropped.chunks) == (0, 0, 2, 0)
    assert {c.text: c.count for c in store.chunks()} == {"x": 1, "y": 1, "z": 1}  # y: b still holds it
    assert store.labels_by_chunk("human")[x].label == "pos"
    added = store.add_document("b", "h4", 1, [NewChunk("w", "b", 0)])
    assert added.dropped == Dropped(chunks=1, labeled=1, reviewed=0)
    assert sorted(c.text for c in store.chunks()) == ["w", "x", "z"]
    assert y not in store.labels_of_chunks()
    assert store.retire_file("a") == Dropped(chunks=2, labeled=1, reviewed=1)  # the file emptied
    assert [c.text for c in store.chunks()] == ["w"]


def test_id_lists_of_any_length(tmp_path):
    store = Store(tmp_path / "labelloop.db")
    store.add_document("a", "h", 1, [NewChunk(t, "a", i) for i, t in enumerate(["x", "y"])])
    ids = [c.id for c in store.chunks()]
    store.set_label(ids[1], "human", "pos")
    many = [*range(100_000, 140_000), ids[1], ids[0]]  # more than SQLite binds in one statement
    assert [c.id for c in store.chunks(ids=many)] == ids
    assert [lab.chunk_id for lab in store.labels(chunk_ids=np.array(many))] == [ids[1]]
    store.put_embeddings({"k": np.ones(2, dtype=np.float32)})
    assert list(store.get_embeddings([f"n{i}" for i in range(40_000)] + ["k"])) == ["k"]
