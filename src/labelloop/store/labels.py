"""Labels: one row per chunk and source; which one counts is asked of labelloop.labels.

A part of `Store` (labelloop.store.db), kept in its own module; it writes only through `Store.write(op)`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence

from labelloop import labels as policy
from labelloop.store.records import Label, from_json, to_json
from labelloop.store.sql import member_of


class LabelTable:
    """Store methods over the labels table (mixed into Store, which provides _rows and write)."""

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
        def op(conn: sqlite3.Connection):
            conn.executemany(
                "INSERT INTO labels(chunk_id, source, label, confidence, status, iteration, rules_version, "
                "call_id, raw, reason, probs) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT(chunk_id, source) DO UPDATE SET label = excluded.label, "
                "confidence = excluded.confidence, status = excluded.status, iteration = excluded.iteration, "
                "rules_version = excluded.rules_version, call_id = excluded.call_id, raw = excluded.raw, "
                "reason = excluded.reason, probs = excluded.probs, updated_at = datetime('now')",
                rows,
            )
        return self.write(op)

    def delete_label(self, chunk_id: int, source: str) -> None:
        def op(conn: sqlite3.Connection):
            conn.execute("DELETE FROM labels WHERE chunk_id = ? AND source = ?", (chunk_id, source))
        return self.write(op)

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
            condition, param = member_of("chunk_id", chunk_ids)
            where.append(condition)
            params.append(param)
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
