"""The call log: every LLM request and response, the cache that makes a re-run repeat no paid call.

A part of `Store` (labelloop.store.db), kept in its own module; it writes only through `Store.write(op)`.
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from typing import Any

from labelloop.store.records import LLMCall, from_json, to_json


class CallLogTable:
    """Store methods over the llm_calls table (mixed into Store, which provides _rows, write and get_meta)."""

    def cached_call(self, key: str) -> LLMCall | None:
        rows = self._rows(
            "SELECT * FROM llm_calls WHERE key = ? AND status = 'ok' ORDER BY id LIMIT 1", (key,)
        )
        return self._call(rows[0]) if rows else None

    def log_call(
        self,
        key: str,
        backend: str,
        request: dict,
        response: Any,
        *,
        status: str = "ok",
        model: str | None = None,
        purpose: str | None = None,
        error: str | None = None,
        prompt_tokens: int | None = None,
        completion_tokens: int | None = None,
        cost: float | None = None,
        latency_s: float | None = None,
        attempts: int = 1,
        faults: dict | None = None,
    ) -> int:
        def op(conn: sqlite3.Connection):
            cur = conn.execute(
                "INSERT INTO llm_calls(key, purpose, backend, model, request, response, status, error, "
                "prompt_tokens, completion_tokens, cost, latency_s, attempts, faults) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (key, purpose, backend, model, to_json(request), to_json(response), status, error,
                 prompt_tokens, completion_tokens, cost, latency_s, attempts, to_json(faults or {})),
            )
            return cur.lastrowid
        return self.write(op)

    def _call(self, r: sqlite3.Row) -> LLMCall:
        return LLMCall(
            id=r["id"], key=r["key"], purpose=r["purpose"], backend=r["backend"], model=r["model"],
            request=from_json(r["request"]), response=from_json(r["response"]), status=r["status"],
            error=r["error"], prompt_tokens=r["prompt_tokens"], completion_tokens=r["completion_tokens"],
            cost=r["cost"], latency_s=r["latency_s"], attempts=r["attempts"], faults=from_json(r["faults"]) or {},
        )

    def calls(self, purpose: str | None = None) -> list[LLMCall]:
        if purpose is None:
            rows = self._rows("SELECT * FROM llm_calls ORDER BY id")
        else:
            rows = self._rows("SELECT * FROM llm_calls WHERE purpose = ? ORDER BY id", (purpose,))
        return [self._call(r) for r in rows]

    def call_stats(self) -> dict:
        row = self._rows(
            "SELECT COUNT(*) AS calls, SUM(status = 'ok') AS ok, SUM(status = 'error') AS errors, "
            "COALESCE(SUM(prompt_tokens), 0) AS prompt_tokens, "
            "COALESCE(SUM(completion_tokens), 0) AS completion_tokens, "
            "COALESCE(SUM(cost), 0.0) AS cost, COALESCE(SUM(latency_s), 0.0) AS latency_s, "
            "COALESCE(SUM(attempts), 0) AS attempts FROM llm_calls"
        )[0]
        stats = {k: (row[k] or 0) for k in row.keys()}
        faults: Counter[str] = Counter()
        for (value,) in self._rows("SELECT faults FROM llm_calls WHERE faults IS NOT NULL AND faults != '{}'"):
            faults.update(from_json(value))
        stats["faults"] = dict(faults)
        stats["cache_hits"] = int(self.get_meta("cache_hits", 0))
        return stats

    def count_cache_hit(self, n: int = 1) -> None:
        def op(conn: sqlite3.Connection):
            conn.execute(
                "INSERT INTO meta(key, value) VALUES ('cache_hits', ?) ON CONFLICT(key) "
                "DO UPDATE SET value = CAST(value AS INTEGER) + excluded.value",
                (str(n),),
            )
        return self.write(op)
