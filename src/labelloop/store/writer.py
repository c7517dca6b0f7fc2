"""The one writer of a project file in a process: a thread that runs every write, queued (as datasette does).

Callers hand it a function of a connection and wait for the result (`run`), or await it without
blocking an event loop (`future`). Jobs that queue up while one transaction commits go into the
next transaction together, each inside its own savepoint, so one job's failure undoes only its
own statements. A job's result is delivered only after its transaction commits: whoever waits
for a write has it on disk (WAL), so a kill afterwards loses nothing it was told was written.
Across processes, BEGIN IMMEDIATE and the busy timeout keep writers apart.
"""

from __future__ import annotations

import asyncio
import atexit
import os
import queue
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")
Op = Callable[[sqlite3.Connection], Any]

IDLE_S = 2.0  # an idle writer closes its connection and ends; the next write starts a new one
MAX_JOBS = 512  # jobs in one transaction at most

_WRITERS: dict[tuple[int, str], Writer] = {}
_WRITERS_GUARD = threading.Lock()


def writer_for(path: Path, connect: Callable[[], sqlite3.Connection]) -> Writer:
    """The process's writer for a project file (one per file, shared by every Store on it)."""
    key = (os.getpid(), str(path.resolve()))  # a forked child starts its own
    with _WRITERS_GUARD:
        writer = _WRITERS.get(key)
        if writer is None:
            writer = _WRITERS[key] = Writer(path, connect)
        return writer


class Writer:
    """A queue of write jobs and the thread that runs them."""

    def __init__(self, path: Path, connect: Callable[[], sqlite3.Connection]):
        self.path = path
        self._connect = connect
        self._jobs: queue.SimpleQueue[tuple[Op, Future] | None] = queue.SimpleQueue()
        self._guard = threading.Lock()
        self._thread: threading.Thread | None = None
        self._local = threading.local()
        self._pending: dict[asyncio.AbstractEventLoop, list[tuple[Op, asyncio.Future]]] = {}

    def current(self) -> sqlite3.Connection | None:
        """The writer's connection when called from inside a job, else None."""
        return getattr(self._local, "conn", None)

    def run(self, op: Callable[[sqlite3.Connection], T]) -> T:
        """Run op in a write transaction and return its result; a job that writes again joins its own transaction."""
        conn = self.current()
        if conn is not None:
            return op(conn)
        return self.submit(op).result()

    def submit(self, op: Op) -> Future:
        """Queue op; the future resolves after its transaction commits."""
        if self.current() is not None:
            raise RuntimeError("a write job cannot queue another and wait for it; call the write directly")
        fut: Future = Future()
        with self._guard:
            self._jobs.put((op, fut))
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name=f"labelloop-writer:{self.path.name}",
                                                daemon=True)
                self._thread.start()
        return fut

    async def run_async(self, op: Callable[[sqlite3.Connection], T]) -> T:
        """Await op's result without blocking the event loop.

        Writes awaited in the same turn of the loop travel to the writer as one job (an op that
        fails, fails alone) and come back with one wake-up of the loop, so many concurrent writers
        cost the two threads one hand-over, not one each. A cancelled caller does not cancel its write.
        """
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        pending = self._pending.get(loop)
        if pending is None:
            pending = self._pending[loop] = []
            loop.call_soon(self._send_pending, loop)
        pending.append((op, fut))
        return await fut  # cancelling the caller cancels fut only: its write is queued all the same

    def _send_pending(self, loop: asyncio.AbstractEventLoop) -> None:
        batch = self._pending.pop(loop, [])

        def deliver(outcomes: list[tuple[Any, BaseException | None]] | BaseException) -> None:
            for i, (_op, fut) in enumerate(batch):
                if fut.done():
                    continue
                result, exc = (None, outcomes) if isinstance(outcomes, BaseException) else outcomes[i]
                if exc is None:
                    fut.set_result(result)
                else:
                    fut.set_exception(exc)

        def done(job: Future) -> None:
            if not loop.is_closed():
                loop.call_soon_threadsafe(deliver, job.exception() or job.result())

        self.submit(lambda conn: _all(conn, [op for op, _fut in batch])).add_done_callback(done)

    def stop(self, timeout: float = 30.0) -> None:
        """Finish the queued jobs and end the thread (at exit, so nothing queued is lost)."""
        with self._guard:
            thread = self._thread
            if thread is not None:
                self._jobs.put(None)
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def _loop(self) -> None:
        conn, ident = None, None
        try:
            while True:
                try:
                    job = self._jobs.get(timeout=IDLE_S)
                except queue.Empty:
                    with self._guard:  # a submit holds the guard while it puts, so none is missed
                        if self._jobs.empty():
                            self._thread = None
                            return
                    continue
                batch = []
                while job is not None:
                    batch.append(job)
                    if len(batch) >= MAX_JOBS:
                        break
                    try:
                        job = self._jobs.get_nowait()
                    except queue.Empty:
                        job = None
                if batch:
                    conn, ident = self._fresh(conn, ident)
                    self._commit(conn, batch)
                if job is None and not batch:  # stop() asked
                    with self._guard:
                        if self._jobs.empty():
                            self._thread = None
                            return
        finally:
            self._local.conn = None
            if conn is not None:
                conn.close()

    def _fresh(self, conn: sqlite3.Connection | None, ident: tuple | None) -> tuple[sqlite3.Connection, tuple]:
        """The connection, reopened when the file was replaced since (a test or a user removed it)."""
        try:
            st = os.stat(self.path)
            now = (st.st_dev, st.st_ino)
        except FileNotFoundError:
            now = None
        if conn is None or now is None or now != ident:
            if conn is not None:
                conn.close()
            conn = self._connect()
            st = os.stat(self.path)
            now = (st.st_dev, st.st_ino)
        self._local.conn = conn
        return conn, now

    @staticmethod
    def _commit(conn: sqlite3.Connection, batch: list[tuple[Op, Future]]) -> None:
        jobs = [(op, fut) for op, fut in batch if fut.set_running_or_notify_cancel()]
        if not jobs:
            return
        done: list[tuple[Future, Any, BaseException | None]] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
            for op, fut in jobs:
                conn.execute("SAVEPOINT job")
                try:
                    result = op(conn)
                except BaseException as exc:  # the job's own failure: undo its statements, report it to its caller
                    conn.execute("ROLLBACK TO job")
                    conn.execute("RELEASE job")
                    done.append((fut, None, exc))
                else:
                    conn.execute("RELEASE job")
                    done.append((fut, result, None))
            conn.execute("COMMIT")
        except BaseException as exc:  # the transaction failed (busy, disk full): every job in it failed
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            for _op, fut in jobs:
                fut.set_exception(exc)
            return
        for fut, result, exc in done:
            if exc is None:
                fut.set_result(result)
            else:
                fut.set_exception(exc)


def _all(conn: sqlite3.Connection, ops: list[Op]) -> list[tuple[Any, BaseException | None]]:
    """Run a batch's ops; if one fails, undo them all and run each in its own savepoint, so it fails alone."""
    conn.execute("SAVEPOINT ops")
    try:
        results: list[tuple[Any, BaseException | None]] = [(op(conn), None) for op in ops]
    except Exception:
        conn.execute("ROLLBACK TO ops")
        conn.execute("RELEASE ops")
        return [_each(conn, op) for op in ops]
    conn.execute("RELEASE ops")
    return results


def _each(conn: sqlite3.Connection, op: Op) -> tuple[Any, BaseException | None]:
    """One op of a batched job, in its own savepoint: (result, None) or (None, its exception)."""
    conn.execute("SAVEPOINT one")
    try:
        result = op(conn)
    except Exception as exc:  # handed to that op's caller; the others in the job go on
        conn.execute("ROLLBACK TO one")
        conn.execute("RELEASE one")
        return None, exc
    conn.execute("RELEASE one")
    return result, None


@atexit.register
def _stop_all() -> None:
    with _WRITERS_GUARD:
        writers = list(_WRITERS.values())
    for writer in writers:
        writer.stop()
