"""The project file: one SQLite database per project; this package is the only place SQL is written.

Store is assembled from one mixin per table group (chunks.py, labels.py, reviews.py, rules.py,
runs.py, calls.py, embeddings.py); this module holds the connection core. Every write is a
function of a connection handed to `Store.write()`, which runs it on the process's one writer
thread for the file (writer.py); reads use a connection per thread. WAL mode and a busy timeout
let the loop and the review app share the file without "database is locked" failures.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from labelloop.errors import StoreError
from labelloop.store.calls import CallLogTable
from labelloop.store.chunks import ChunkTable
from labelloop.store.embeddings import EmbeddingTable
from labelloop.store.labels import LabelTable
from labelloop.store.migrations import LATEST, current_version, migrate
from labelloop.store.records import from_json, to_json
from labelloop.store.reviews import ReviewTable
from labelloop.store.rules import RulesTable
from labelloop.store.runs import RunTable
from labelloop.store.writer import writer_for

T = TypeVar("T")
_MIGRATE_LOCK = threading.Lock()


def connect(path: Path) -> sqlite3.Connection:
    """A connection with the project's settings: rows by name, WAL, a long busy timeout, foreign keys."""
    conn = sqlite3.connect(path, timeout=60, isolation_level=None, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA busy_timeout=60000")
    _enable_wal(conn)
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA foreign_keys=ON")
    return conn


def _enable_wal(conn: sqlite3.Connection, attempts: int = 200) -> None:
    """Switch a file to WAL once. SQLite answers "locked" without waiting when two processes
    switch a new file at the same moment, so retry briefly instead of failing."""
    for attempt in range(attempts):
        try:
            if conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal":
                return
            conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == attempts - 1:
                raise
            time.sleep(0.01 + 0.002 * attempt)


class Store(ChunkTable, LabelTable, ReviewTable, RulesTable, RunTable, CallLogTable, EmbeddingTable):
    """Typed reads and writes over `<output_dir>/labelloop.db`."""

    def __init__(self, path: str | Path, *, create: bool = True, migrate_to: int | None = None):
        self.path = Path(path)
        if not create and not self.path.exists():
            raise StoreError(
                f"no project file at {str(self.path)!r}; run `labelloop ingest CONFIG` or "
                "`labelloop run CONFIG` first, or pass the run's output_dir"
            )
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._writer = writer_for(self.path, lambda: connect(self.path))
        conn = self._conn
        version = current_version(conn)
        if version > LATEST:
            raise StoreError(
                f"{self.path} has schema version {version}, newer than this labelloop "
                f"understands ({LATEST}); upgrade labelloop"
            )
        with _MIGRATE_LOCK:
            migrate(conn, migrate_to)

    # ------------------------------------------------------------ plumbing

    @property
    def _conn(self) -> sqlite3.Connection:
        """This thread's connection; inside a write job, the writer's (so a job reads what it wrote)."""
        conn = self._writer.current() or getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = connect(self.path)
        return conn

    def write(self, op: Callable[[sqlite3.Connection], T]) -> T:
        """The single write path: op runs in a transaction on the file's writer thread; returns its result."""
        return self._writer.run(op)

    async def write_async(self, method: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Await a Store write method run on the writer thread, without blocking the event loop.

        The result comes after the commit; a cancelled caller does not cancel a write already queued.
        """
        return await self._writer.run_async(lambda _conn: method(*args, **kwargs))

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        return self._conn.execute(sql, params).fetchall()

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    def integrity_check(self) -> str:
        return self._rows("PRAGMA integrity_check")[0][0]

    @property
    def schema_version(self) -> int:
        return current_version(self._conn)

    # ------------------------------------------------------------ meta

    def get_meta(self, key: str, default: Any = None) -> Any:
        rows = self._rows("SELECT value FROM meta WHERE key = ?", (key,))
        return from_json(rows[0][0]) if rows else default

    def set_meta(self, key: str, value: Any) -> None:
        def op(conn: sqlite3.Connection):
            conn.execute(
                "INSERT INTO meta(key, value) VALUES (?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (key, to_json(value)),
            )
        return self.write(op)

    # ------------------------------------------------------------ status

    def counts(self) -> dict:
        """Counts for `labelloop status`."""
        one = lambda sql: self._rows(sql)[0][0]  # noqa: E731
        by_source: dict[str, dict[str, int]] = {}
        for r in self._rows(
            "SELECT source, COALESCE(label, '(' || status || ')') AS label, COUNT(*) AS n "
            "FROM labels GROUP BY source, label, status ORDER BY source, label"
        ):
            by_source.setdefault(r["source"], {})[r["label"]] = r["n"]
        return {
            "documents": one("SELECT COUNT(*) FROM documents"),
            "documents_with_problems": one("SELECT COUNT(*) FROM documents WHERE status != 'ok'"),
            "ingest_problems": one("SELECT COUNT(*) FROM ingest_problems"),
            "chunks": one("SELECT COUNT(*) FROM chunks"),
            "duplicate_chunks": one("SELECT COALESCE(SUM(count - 1), 0) FROM chunks"),
            "test_chunks": one("SELECT COUNT(*) FROM chunks WHERE split = 'test'"),
            "train_chunks": one("SELECT COUNT(*) FROM chunks WHERE split = 'train'"),
            "unlabeled": one("SELECT COUNT(*) FROM labels WHERE status = 'unlabeled'"),
            "labels": by_source,
            "reviews": one("SELECT COUNT(*) FROM reviews"),
            "rules_versions": one("SELECT COUNT(*) FROM rules"),
            "iterations": one("SELECT COUNT(*) FROM iterations WHERE status = 'done'"),
            "runs": one("SELECT COUNT(*) FROM runs"),
            "interrupted_runs": one("SELECT COUNT(*) FROM runs WHERE status = 'running'"),
            "llm": self.call_stats(),
        }
