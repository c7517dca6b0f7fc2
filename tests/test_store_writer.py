"""The store's one writer: writes off the event loop, batched, each job's failure its own, results after commit."""

from __future__ import annotations

import asyncio
import sqlite3
import threading

import pytest

from labelloop.store import NewChunk, Store

pytestmark = pytest.mark.unit


def hold_writer(store: Store) -> tuple[threading.Event, threading.Event]:
    """Queue a job that keeps the writer busy until released; returns (started, release)."""
    started, release = threading.Event(), threading.Event()

    def op(_conn: sqlite3.Connection) -> None:
        started.set()
        release.wait(10)

    threading.Thread(target=store.write, args=(op,), daemon=True).start()
    assert started.wait(10)
    return started, release


def test_the_event_loop_runs_while_a_write_waits(tmp_path):
    store = Store(tmp_path / "labelloop.db")
    _, release = hold_writer(store)
    ticks = 0

    async def main() -> int:
        nonlocal ticks
        write = asyncio.ensure_future(store.write_async(store.set_meta, "k", 1))
        while not write.done():
            ticks += 1
            if ticks == 20:
                release.set()  # the loop kept running while the write was queued
            await asyncio.sleep(0.005)
        await write
        return ticks

    assert asyncio.run(main()) >= 20
    assert store.get_meta("k") == 1


def test_jobs_queued_together_commit_together_and_fail_alone(tmp_path):
    store = Store(tmp_path / "labelloop.db")
    store.add_document("a", "h", 1, [NewChunk("x", "a", 0)])
    cid = store.chunks()[0].id
    _, release = hold_writer(store)
    futures = [
        store._writer.submit(lambda c: store.set_label(cid, "llm-small", "pos")),
        store._writer.submit(lambda c: (c.execute("INSERT INTO meta(key, value) VALUES ('half', '1')"),
                                        store.set_label(cid + 99, "human", "neg"))),  # no such chunk: fails
        store._writer.submit(lambda c: store.set_meta("after", 2)),
    ]
    release.set()
    assert futures[0].result(10) is None and futures[2].result(10) is None
    with pytest.raises(sqlite3.IntegrityError):
        futures[1].result(10)
    assert store.get_meta("half") is None  # the failed job's own statements are undone
    assert [lab.label for lab in store.labels()] == ["pos"] and store.get_meta("after") == 2


def test_a_write_method_reads_what_it_wrote_inside_its_job(tmp_path):
    store = Store(tmp_path / "labelloop.db")
    rules = asyncio.run(store.write_async(store.add_rules, "1. be brief", author="human"))
    assert rules is not None and rules.version == 1


def test_a_replaced_project_file_gets_the_writes(tmp_path):
    db = tmp_path / "labelloop.db"
    Store(db).set_meta("old", 1)
    for suffix in ("", "-wal", "-shm"):
        db.with_name(db.name + suffix).unlink(missing_ok=True)
    store = Store(db)
    store.set_meta("new", 2)
    assert (store.get_meta("old"), store.get_meta("new")) == (None, 2)
