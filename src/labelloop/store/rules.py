"""Rules versions: the labeling instructions, one numbered row per version.

A part of `Store` (labelloop.store.db), kept in its own module; it writes only through `Store.write(op)`.
"""

from __future__ import annotations

import sqlite3

from labelloop.store.records import Rules


class RulesTable:
    """Store methods over the rules table (mixed into Store, which provides _rows and write)."""

    def add_rules(self, text: str, author: str, model: str | None = None, call_id: int | None = None) -> Rules:
        def op(conn: sqlite3.Connection):
            version = conn.execute("SELECT COALESCE(MAX(version), 0) + 1 FROM rules").fetchone()[0]
            conn.execute(
                "INSERT INTO rules(version, text, author, model, call_id) VALUES (?, ?, ?, ?, ?)",
                (version, text, author, model, call_id),
            )
            return version

        return self.rules(self.write(op))

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
