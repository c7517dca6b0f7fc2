"""Reviews: what a person did to a chunk, with the label it replaced, so an undo can restore it.

A part of `Store` (labelloop.store.db), kept in its own module; it writes only through `Store.write(op)`.
"""

from __future__ import annotations

import sqlite3
from labelloop import labels as policy
from labelloop.store.records import Review, from_json, to_json


class ReviewTable:
    """Store methods over the reviews table (mixed into Store, which provides _rows and write)."""

    def add_review(
        self, chunk_id: int, action: str, label: str | None, previous: dict | None, reviewer: str | None = None
    ) -> int:
        def op(conn: sqlite3.Connection):
            cur = conn.execute(
                "INSERT INTO reviews(chunk_id, action, label, previous, reviewer) VALUES (?, ?, ?, ?, ?)",
                (chunk_id, action, label, to_json(previous), reviewer),
            )
            return cur.lastrowid
        return self.write(op)

    def record_review(
        self, chunk_id: int, action: str, label: str | None, status: str, reviewer: str | None = None,
        reason: str | None = None,
    ) -> tuple[int, dict | None]:
        """A person's label (with its reason, e.g. labelloop.labels.ACCEPTED_STUDENT) and its review row, in one
        transaction; returns (review id, previous state)."""
        def op(conn: sqlite3.Connection):
            row = conn.execute(
                "SELECT label, status, reason FROM labels WHERE chunk_id = ? AND source = ?", (chunk_id, policy.HUMAN)
            ).fetchone()
            previous = {k: row[k] for k in ("label", "status", "reason") if k != "reason" or row[k]} if row else None
            conn.execute(
                "INSERT INTO labels(chunk_id, source, label, status, reason) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT(chunk_id, source) DO UPDATE SET label = excluded.label, status = excluded.status, "
                "reason = excluded.reason, confidence = NULL, updated_at = datetime('now')",
                (chunk_id, policy.HUMAN, label, status, reason),
            )
            cur = conn.execute(
                "INSERT INTO reviews(chunk_id, action, label, previous, reviewer) VALUES (?, ?, ?, ?, ?)",
                (chunk_id, action, label, to_json(previous), reviewer),
            )
            return cur.lastrowid, previous
        return self.write(op)

    def reviews(self) -> list[Review]:
        return [
            Review(r["id"], r["chunk_id"], r["action"], r["label"], from_json(r["previous"]), r["reviewer"], r["created_at"])
            for r in self._rows("SELECT * FROM reviews ORDER BY id")
        ]
