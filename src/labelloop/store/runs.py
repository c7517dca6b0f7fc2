"""Iterations and runs: one row per loop round and one per `labelloop run` invocation.

A part of `Store` (labelloop.store.db), kept in its own module; it writes only through `Store.write(op)`.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from labelloop.store.records import Iteration, from_json, to_json


class RunTable:
    """Store methods over the iterations and runs tables (mixed into Store, which provides _rows and write)."""

    def start_iteration(self, n: int, train_size: int, test_size: int) -> None:
        def op(conn: sqlite3.Connection):
            conn.execute(
                "INSERT INTO iterations(n, train_size, test_size) VALUES (?, ?, ?) "
                "ON CONFLICT(n) DO UPDATE SET train_size = excluded.train_size, "
                "test_size = excluded.test_size, status = 'running'",
                (n, train_size, test_size),
            )
        return self.write(op)

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
        def op(conn: sqlite3.Connection):
            conn.execute(
                f"UPDATE iterations SET {sets}{', ' if sets else ''}status = 'done', "
                "finished_at = datetime('now') WHERE n = ?",
                (*values.values(), n),
            )
        return self.write(op)

    def set_stop_reason(self, n: int, reason: str) -> None:
        def op(conn: sqlite3.Connection):
            conn.execute("UPDATE iterations SET stop_reason = ? WHERE n = ?", (reason, n))
        return self.write(op)

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

    def start_run(self, command: str) -> int:
        def op(conn: sqlite3.Connection):
            return conn.execute("INSERT INTO runs(command) VALUES (?)", (command,)).lastrowid
        return self.write(op)

    def finish_run(self, run_id: int, status: str, message: str | None = None) -> None:
        def op(conn: sqlite3.Connection):
            conn.execute(
                "UPDATE runs SET status = ?, message = ?, finished_at = datetime('now') WHERE id = ?",
                (status, message, run_id),
            )
        return self.write(op)

    def runs(self) -> list[dict]:
        return [dict(r) for r in self._rows("SELECT * FROM runs ORDER BY id")]
