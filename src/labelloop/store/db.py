"""The project file: one SQLite database per project; this package is the only place SQL is written.

Every write goes through `Store.write()` (the call log and embeddings cache are parts of
Store kept in calls.py and embeddings.py), which takes a process-wide lock and an
IMMEDIATE transaction, so the loop and the review app can share the file (WAL
mode, busy timeout) without "database is locked" failures.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from labelloop import labels as policy
from labelloop.errors import StoreError
from labelloop.store.calls import CallLogTable
from labelloop.store.embeddings import EmbeddingTable
from labelloop.store.migrations import LATEST, current_version, migrate
from labelloop.store.records import (
    Chunk, Iteration, Label, NewChunk, Review, Rules, to_json, from_json, text_hash,
)

_WRITE_LOCKS: dict[str, threading.RLock] = {}
_LOCKS_GUARD = threading.Lock()


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


class Store(CallLogTable, EmbeddingTable):
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
        key = str(self.path.resolve())
        with _LOCKS_GUARD:
            self._lock = _WRITE_LOCKS.setdefault(key, threading.RLock())
        conn = self._conn
        version = current_version(conn)
        if version > LATEST:
            raise StoreError(
                f"{self.path} has schema version {version}, newer than this labelloop "
                f"understands ({LATEST}); upgrade labelloop"
            )
        with self._lock:
            migrate(conn, migrate_to)

    # ------------------------------------------------------------ plumbing

    @property
    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=60, isolation_level=None, check_same_thread=False)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA busy_timeout=60000")
            _enable_wal(conn)
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=ON")
            self._local.conn = conn
        return conn

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """The single write path: one writer per process, IMMEDIATE transaction across processes."""
        with self._lock:
            conn = self._conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            else:
                conn.execute("COMMIT")

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
        with self.write() as conn:
            conn.execute(
                "INSERT INTO meta(key, value) VALUES (?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (key, to_json(value)),
            )

    # ------------------------------------------------------------ documents & chunks

    def document_seen(self, source: str, sha256: str) -> bool:
        rows = self._rows("SELECT sha256 FROM documents WHERE source = ?", (source,))
        return bool(rows) and rows[0][0] == sha256

    def add_document(
        self,
        source: str,
        sha256: str,
        size: int | None,
        chunks: Iterable[NewChunk],
        status: str = "ok",
        message: str | None = None,
    ) -> tuple[int, int]:
        """Record a document and its chunks in one transaction; return (new, duplicate) counts."""
        new = dup = 0
        with self.write() as conn:
            for chunk in chunks:
                h = text_hash(chunk.text)
                cur = conn.execute(
                    "INSERT INTO chunks(hash, text, source, position, n_tokens, metadata) "
                    "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(hash) DO NOTHING",
                    (h, chunk.text, chunk.source, chunk.position, chunk.n_tokens, to_json(chunk.metadata or None)),
                )
                if cur.rowcount:
                    new += 1
                else:
                    conn.execute("UPDATE chunks SET count = count + 1 WHERE hash = ?", (h,))
                    dup += 1
            conn.execute(
                "INSERT INTO documents(source, sha256, size, n_chunks, status, message) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(source) DO UPDATE SET sha256 = excluded.sha256, "
                "size = excluded.size, n_chunks = documents.n_chunks + excluded.n_chunks, "
                "status = excluded.status, message = excluded.message, ingested_at = datetime('now')",
                (source, sha256, size, new + dup, status, message),
            )
        return new, dup

    def add_ingest_problem(self, path: str, severity: str, message: str) -> None:
        with self.write() as conn:
            conn.execute(
                "INSERT INTO ingest_problems(path, severity, message) VALUES (?, ?, ?)",
                (path, severity, message),
            )

    def ingest_problems(self) -> list[dict]:
        return [dict(r) for r in self._rows("SELECT path, severity, message, created_at FROM ingest_problems ORDER BY id")]

    def _chunk(self, row: sqlite3.Row) -> Chunk:
        return Chunk(
            id=row["id"], hash=row["hash"], text=row["text"], source=row["source"],
            position=row["position"], n_tokens=row["n_tokens"], count=row["count"],
            metadata=from_json(row["metadata"]) or {}, split=row["split"],
            split_iteration=row["split_iteration"],
        )

    def chunks(self, split: str | None | type(...) = ..., ids: Sequence[int] | None = None) -> list[Chunk]:
        """All chunks in insertion order; split=None selects unassigned chunks, ... selects all."""
        sql, params = "SELECT * FROM chunks", []
        where = []
        if split is None:
            where.append("split IS NULL")
        elif split is not ...:
            where.append("split = ?")
            params.append(split)
        if ids is not None:
            where.append(f"id IN ({','.join('?' * len(ids))})")
            params.extend(ids)
        if where:
            sql += " WHERE " + " AND ".join(where)
        return [self._chunk(r) for r in self._rows(sql + " ORDER BY id", params)]

    def chunk(self, chunk_id: int) -> Chunk:
        rows = self._rows("SELECT * FROM chunks WHERE id = ?", (chunk_id,))
        if not rows:
            raise StoreError(f"no chunk with id {chunk_id}")
        return self._chunk(rows[0])

    def assign_split(self, chunk_ids: Sequence[int], split: str, iteration: int | None = None) -> None:
        with self.write() as conn:
            conn.executemany(
                "UPDATE chunks SET split = ?, split_iteration = ? WHERE id = ? AND split IS NULL",
                [(split, iteration, cid) for cid in chunk_ids],
            )

    # ------------------------------------------------------------ rules

    def add_rules(self, text: str, author: str, model: str | None = None, call_id: int | None = None) -> Rules:
        with self.write() as conn:
            version = conn.execute("SELECT COALESCE(MAX(version), 0) + 1 FROM rules").fetchone()[0]
            conn.execute(
                "INSERT INTO rules(version, text, author, model, call_id) VALUES (?, ?, ?, ?, ?)",
                (version, text, author, model, call_id),
            )
        return self.rules(version)

    def rules(self, version: int | None = None) -> Rules | None:
        """One rules version, or the latest when version is None."""
        if version is None:
            rows = self._rows("SELECT * FROM rules ORDER BY version DESC LIMIT 1")
        else:
            rows = self._rows("SELECT * FROM rules WHERE version = ?", (version,))
        if not rows:
            return None
        return self._rules(rows[0])

    def all_rules(self) -> list[Rules]:
        return [self._rules(r) for r in self._rows("SELECT * FROM rules ORDER BY version")]

    @staticmethod
    def _rules(r: sqlite3.Row) -> Rules:
        return Rules(r["id"], r["version"], r["text"], r["author"], r["model"], r["created_at"], r["call_id"])

    # ------------------------------------------------------------ labels

    def set_label(
        self,
        chunk_id: int,
        source: str,
        label: str | None,
        *,
        confidence: float | None = None,
        status: str = "ok",
        iteration: int | None = None,
        rules_version: int | None = None,
        call_id: int | None = None,
        raw: str | None = None,
        reason: str | None = None,
        probs: dict | None = None,
    ) -> None:
        """Insert or replace the one label a source holds for a chunk."""
        self.set_labels([dict(
            chunk_id=chunk_id, source=source, label=label, confidence=confidence, status=status,
            iteration=iteration, rules_version=rules_version, call_id=call_id, raw=raw,
            reason=reason, probs=probs,
        )])

    def set_labels(self, labels: Iterable[dict]) -> None:
        rows = [
            (
                d["chunk_id"], d["source"], d.get("label"), d.get("confidence"), d.get("status", "ok"),
                d.get("iteration"), d.get("rules_version"), d.get("call_id"), d.get("raw"),
                d.get("reason"), to_json(d.get("probs")),
            )
            for d in labels
        ]
        with self.write() as conn:
            conn.executemany(
                "INSERT INTO labels(chunk_id, source, label, confidence, status, iteration, rules_version, "
                "call_id, raw, reason, probs) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT(chunk_id, source) DO UPDATE SET label = excluded.label, "
                "confidence = excluded.confidence, status = excluded.status, iteration = excluded.iteration, "
                "rules_version = excluded.rules_version, call_id = excluded.call_id, raw = excluded.raw, "
                "reason = excluded.reason, probs = excluded.probs, updated_at = datetime('now')",
                rows,
            )

    def delete_label(self, chunk_id: int, source: str) -> None:
        with self.write() as conn:
            conn.execute("DELETE FROM labels WHERE chunk_id = ? AND source = ?", (chunk_id, source))

    def _label(self, r: sqlite3.Row) -> Label:
        return Label(
            id=r["id"], chunk_id=r["chunk_id"], source=r["source"], label=r["label"],
            confidence=r["confidence"], status=r["status"], iteration=r["iteration"],
            rules_version=r["rules_version"], call_id=r["call_id"], raw=r["raw"], reason=r["reason"],
            probs=from_json(r["probs"]), updated_at=r["updated_at"],
        )

    def labels(self, source: str | None = None, chunk_ids: Sequence[int] | None = None) -> list[Label]:
        sql, params, where = "SELECT * FROM labels", [], []
        if source is not None:
            where.append("source = ?")
            params.append(source)
        if chunk_ids is not None:
            where.append(f"chunk_id IN ({','.join('?' * len(chunk_ids))})")
            params.extend(chunk_ids)
        if where:
            sql += " WHERE " + " AND ".join(where)
        return [self._label(r) for r in self._rows(sql + " ORDER BY chunk_id", params)]

    def labels_by_chunk(self, source: str) -> dict[int, Label]:
        return {lab.chunk_id: lab for lab in self.labels(source)}

    def labels_of_chunks(self, chunk_ids: Sequence[int] | None = None) -> dict[int, dict[str, Label]]:
        """Every label of each chunk, keyed by chunk id, then source."""
        out: dict[int, dict[str, Label]] = {}
        for lab in self.labels(chunk_ids=chunk_ids):
            out.setdefault(lab.chunk_id, {})[lab.source] = lab
        return out

    def final_labels(self, chunk_ids: Sequence[int] | None = None) -> dict[int, Label]:
        """The label that counts for each chunk (labelloop.labels.final); chunks without one are left out."""
        out = {}
        for cid, by_source in self.labels_of_chunks(chunk_ids).items():
            lab = policy.final(by_source)
            if lab is not None:
                out[cid] = lab
        return out

    # ------------------------------------------------------------ iterations

    def start_iteration(self, n: int, train_size: int, test_size: int) -> None:
        with self.write() as conn:
            conn.execute(
                "INSERT INTO iterations(n, train_size, test_size) VALUES (?, ?, ?) "
                "ON CONFLICT(n) DO UPDATE SET train_size = excluded.train_size, "
                "test_size = excluded.test_size, status = 'running'",
                (n, train_size, test_size),
            )

    def finish_iteration(self, n: int, **values: Any) -> None:
        allowed = {
            "accuracy", "accuracy_low", "accuracy_high", "macro_f1", "gold_accuracy", "gold_size",
            "metrics", "seconds", "llm_calls", "model_path", "stop_reason",
        }
        unknown = set(values) - allowed
        if unknown:
            raise ValueError(f"unknown iteration fields {sorted(unknown)}")
        if "metrics" in values:
            values["metrics"] = to_json(values["metrics"])
        sets = ", ".join(f"{k} = ?" for k in values)
        with self.write() as conn:
            conn.execute(
                f"UPDATE iterations SET {sets}{', ' if sets else ''}status = 'done', "
                "finished_at = datetime('now') WHERE n = ?",
                (*values.values(), n),
            )

    def set_stop_reason(self, n: int, reason: str) -> None:
        with self.write() as conn:
            conn.execute("UPDATE iterations SET stop_reason = ? WHERE n = ?", (reason, n))

    def iterations(self) -> list[Iteration]:
        return [
            Iteration(
                n=r["n"], train_size=r["train_size"], test_size=r["test_size"], accuracy=r["accuracy"],
                accuracy_low=r["accuracy_low"], accuracy_high=r["accuracy_high"], macro_f1=r["macro_f1"],
                gold_accuracy=r["gold_accuracy"], gold_size=r["gold_size"], metrics=from_json(r["metrics"]) or {},
                seconds=r["seconds"], llm_calls=r["llm_calls"], model_path=r["model_path"],
                status=r["status"], stop_reason=r["stop_reason"],
            )
            for r in self._rows("SELECT * FROM iterations ORDER BY n")
        ]

    # ------------------------------------------------------------ reviews

    def add_review(
        self, chunk_id: int, action: str, label: str | None, previous: dict | None, reviewer: str | None = None
    ) -> int:
        with self.write() as conn:
            cur = conn.execute(
                "INSERT INTO reviews(chunk_id, action, label, previous, reviewer) VALUES (?, ?, ?, ?, ?)",
                (chunk_id, action, label, to_json(previous), reviewer),
            )
            return cur.lastrowid

    def record_review(
        self, chunk_id: int, action: str, label: str | None, status: str, reviewer: str | None = None
    ) -> tuple[int, dict | None]:
        """A person's label and its review row, in one transaction; returns (review id, previous state)."""
        with self.write() as conn:
            row = conn.execute(
                "SELECT label, status FROM labels WHERE chunk_id = ? AND source = ?", (chunk_id, policy.HUMAN)
            ).fetchone()
            previous = {"label": row["label"], "status": row["status"]} if row else None
            conn.execute(
                "INSERT INTO labels(chunk_id, source, label, status) VALUES (?, ?, ?, ?) "
                "ON CONFLICT(chunk_id, source) DO UPDATE SET label = excluded.label, status = excluded.status, "
                "confidence = NULL, updated_at = datetime('now')",
                (chunk_id, policy.HUMAN, label, status),
            )
            cur = conn.execute(
                "INSERT INTO reviews(chunk_id, action, label, previous, reviewer) VALUES (?, ?, ?, ?, ?)",
                (chunk_id, action, label, to_json(previous), reviewer),
            )
            return cur.lastrowid, previous

    def reviews(self) -> list[Review]:
        return [
            Review(r["id"], r["chunk_id"], r["action"], r["label"], from_json(r["previous"]), r["reviewer"], r["created_at"])
            for r in self._rows("SELECT * FROM reviews ORDER BY id")
        ]

    # ------------------------------------------------------------ runs

    def start_run(self, command: str) -> int:
        with self.write() as conn:
            return conn.execute("INSERT INTO runs(command) VALUES (?)", (command,)).lastrowid

    def finish_run(self, run_id: int, status: str, message: str | None = None) -> None:
        with self.write() as conn:
            conn.execute(
                "UPDATE runs SET status = ?, message = ?, finished_at = datetime('now') WHERE id = ?",
                (status, message, run_id),
            )

    def runs(self) -> list[dict]:
        return [dict(r) for r in self._rows("SELECT * FROM runs ORDER BY id")]

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
