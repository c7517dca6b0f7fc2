"""Documents, chunks and ingest problems: what ingest writes and the loop reads.

A part of `Store` (labelloop.store.db), kept in its own module; it writes only through `Store.write(op)`.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterable, Sequence

from labelloop import labels as policy
from labelloop.errors import StoreError
from labelloop.store.records import Added, Chunk, Dropped, NewChunk, from_json, text_hash, to_json
from labelloop.store.sql import member_of


class ChunkTable:
    """Store methods over documents, chunks and ingest_problems (mixed into Store: _rows, write)."""

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
        *,
        ingest_pass: str | None = None,
        last_part: bool = True,
    ) -> Added:
        """Record a file's chunks in one transaction; the last part of a pass drops what the file no longer holds.

        A pass is one reading of the file (ingest_pass; by default this call alone). Each chunk
        records how often each file holds it (chunk_files); when the last part is in, the file's
        occurrences from earlier passes are retired, and a chunk no file holds any more is deleted
        with its labels and reviews. A chunk whose text is unchanged keeps its id and labels.
        """
        ingest_pass = ingest_pass or uuid.uuid4().hex

        def op(conn: sqlite3.Connection) -> Added:
            new = dup = unchanged = 0
            for chunk in chunks:
                chunk_id, count = conn.execute(
                    "INSERT INTO chunks(hash, text, source, position, n_tokens, metadata) "
                    "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(hash) DO UPDATE SET count = count + 1 RETURNING id, count",
                    (text_hash(chunk.text), chunk.text, chunk.source, chunk.position, chunk.n_tokens,
                     to_json(chunk.metadata or None)),
                ).fetchone()
                held = conn.execute(
                    "SELECT n, pass FROM chunk_files WHERE file = ? AND chunk_id = ?", (source, chunk_id)
                ).fetchone()
                if held is None:
                    conn.execute("INSERT INTO chunk_files(file, chunk_id, n, pass) VALUES (?, ?, 1, ?)",
                                 (source, chunk_id, ingest_pass))
                elif held["pass"] == ingest_pass:
                    conn.execute("UPDATE chunk_files SET n = n + 1 WHERE file = ? AND chunk_id = ?", (source, chunk_id))
                else:  # held by an earlier reading of this file: its old occurrences give way to this one
                    conn.execute("UPDATE chunks SET count = count - ? WHERE id = ?", (held["n"], chunk_id))
                    conn.execute("UPDATE chunk_files SET n = 1, pass = ? WHERE file = ? AND chunk_id = ?",
                                 (ingest_pass, source, chunk_id))
                    unchanged += 1
                    continue
                if count == 1:
                    new += 1
                else:
                    dup += 1
            dropped = _retire_stale(conn, source, ingest_pass) if last_part else Dropped()
            n_chunks = conn.execute("SELECT COALESCE(SUM(n), 0) FROM chunk_files WHERE file = ? AND pass = ?",
                                    (source, ingest_pass)).fetchone()[0]
            conn.execute(
                "INSERT INTO documents(source, sha256, size, n_chunks, status, message) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(source) DO UPDATE SET sha256 = excluded.sha256, "
                "size = excluded.size, n_chunks = excluded.n_chunks, "
                "status = excluded.status, message = excluded.message, ingested_at = datetime('now')",
                (source, sha256, size, n_chunks, status, message),
            )
            return Added(new=new, duplicate=dup, unchanged=unchanged, dropped=dropped)

        return self.write(op)

    def retire_file(self, source: str, ingest_pass: str = "") -> Dropped:
        """Forget a file's chunk occurrences from passes other than ingest_pass (a file now empty)."""
        def op(conn: sqlite3.Connection):
            return _retire_stale(conn, source, ingest_pass)
        return self.write(op)

    def add_ingest_problem(self, path: str, severity: str, message: str) -> None:
        def op(conn: sqlite3.Connection):
            conn.execute(
                "INSERT INTO ingest_problems(path, severity, message) VALUES (?, ?, ?)",
                (path, severity, message),
            )
        return self.write(op)

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
            condition, param = member_of("id", ids)
            where.append(condition)
            params.append(param)
        if where:
            sql += " WHERE " + " AND ".join(where)
        return [self._chunk(r) for r in self._rows(sql + " ORDER BY id", params)]

    def chunk(self, chunk_id: int) -> Chunk:
        rows = self._rows("SELECT * FROM chunks WHERE id = ?", (chunk_id,))
        if not rows:
            raise StoreError(f"no chunk with id {chunk_id}")
        return self._chunk(rows[0])

    def assign_split(self, chunk_ids: Sequence[int], split: str, iteration: int | None = None) -> None:
        def op(conn: sqlite3.Connection):
            conn.executemany(
                "UPDATE chunks SET split = ?, split_iteration = ? WHERE id = ? AND split IS NULL",
                [(split, iteration, cid) for cid in chunk_ids],
            )
        return self.write(op)


def _retire_stale(conn: sqlite3.Connection, file: str, ingest_pass: str) -> Dropped:
    """Retire a file's occurrences from earlier passes and delete the chunks no file holds any more."""
    stale = conn.execute("SELECT chunk_id, n FROM chunk_files WHERE file = ? AND pass != ?",
                         (file, ingest_pass)).fetchall()
    if not stale:
        return Dropped()
    conn.executemany("UPDATE chunks SET count = count - ? WHERE id = ?", [(r["n"], r["chunk_id"]) for r in stale])
    conn.execute("DELETE FROM chunk_files WHERE file = ? AND pass != ?", (file, ingest_pass))
    condition, param = member_of("id", [r["chunk_id"] for r in stale])
    gone = [r[0] for r in conn.execute(f"SELECT id FROM chunks WHERE {condition} AND count <= 0", (param,))]
    if not gone:
        return Dropped()
    condition, param = member_of("chunk_id", gone)
    held = conn.execute(f"SELECT chunk_id, source, label FROM labels WHERE {condition}", (param,)).fetchall()
    labeled = {r["chunk_id"] for r in held if r["source"] in policy.PRECEDENCE and r["label"] is not None}
    reviewed = {r["chunk_id"] for r in held if r["source"] == policy.HUMAN}
    for table in ("labels", "reviews", "chunk_files"):
        conn.execute(f"DELETE FROM {table} WHERE {condition}", (param,))
    condition, param = member_of("id", gone)
    conn.execute(f"DELETE FROM chunks WHERE {condition}", (param,))
    return Dropped(len(gone), len(labeled), len(reviewed))
